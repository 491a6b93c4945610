"""Every tier: test helpers live in *_support.py modules (each tier has a conftest.py, and only one of them can be
`conftest` in sys.modules), fixtures in the conftest files."""
import sys

import pytest


@pytest.fixture(scope="session", autouse=True)
def _salt_deferred_log_handler():
    """Salt queues WARNING+ records in a deferred stderr handler and flushes it at exit, after pytest has
    closed its capture streams ('--- Logging error ---' noise). Hand the records over before that."""
    yield
    if "salt._logging.impl" in sys.modules:
        sys.modules["salt._logging.impl"].shutdown_temp_handler()
