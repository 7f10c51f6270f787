"""Testing utilities shipped with cloudqueue.

- :mod:`cloudqueue.testing.contract`: the contract suite every provider passes.
- :mod:`cloudqueue.testing.faultproxy`: a loopback TCP proxy that cuts connections,
  for reliability tests against local servers.
"""
