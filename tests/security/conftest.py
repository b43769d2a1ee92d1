"""The security suite: one test (or a small class of them) per finding of the trust audit
(issue 15), each named after the finding it guards. tests/conftest.py provides the databases,
Redis, the clock and the stack; tests/integration/conftest.py's fixtures are shared here."""

from tests.integration.conftest import crm_store, customers_wrote  # noqa: F401 (pytest fixtures)
