"""Testing utilities shipped with cloudqueue.

- :mod:`cloudqueue.testing.contract`: the contract suite every provider passes.
- :mod:`cloudqueue.testing.faultproxy`: a loopback TCP proxy that cuts connections,
  for reliability tests against local servers.
- :mod:`cloudqueue.testing.secrets`: planting secrets and checking that nothing printed,
  logged or raised shows them.
"""
