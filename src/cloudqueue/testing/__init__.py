"""Testing utilities shipped with cloudqueue.

- :mod:`cloudqueue.testing.contract`: the contract suite every provider passes.
- :mod:`cloudqueue.testing.faultproxy`: a loopback TCP proxy that cuts connections,
  for reliability tests against local servers.
- :mod:`cloudqueue.testing.secrets`: planting secrets and checking that nothing printed,
  logged or raised shows them.
- :mod:`cloudqueue.testing.storage`: Azurite and the GCS emulator on loopback, for
  claim-check (``offload=``) tests; S3 comes from the SQS plugin's LocalStack runner.
- :mod:`cloudqueue.testing.hostprocess`: what every local-server runner needs (a free
  loopback port, stopping a process group, an install lock, a log tail).
- :mod:`cloudqueue.testing.telemetry`: capturing cloudqueue's spans and metrics in tests.
- :mod:`cloudqueue.testing.worker`: serving a worker app until a condition holds.
- :mod:`cloudqueue.testing.certs`: a throw-away self-signed certificate for loopback servers.
- :mod:`cloudqueue.testing.pytest_plugin`: the ``contract`` marker and a ``memory_url`` fixture.
"""
