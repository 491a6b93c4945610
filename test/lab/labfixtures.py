"""pytest fixtures for tests on the lab. A conftest.py imports them:

    sys.path.insert(0, "<repo>/test/lab"); from labfixtures import *  # noqa

`lab` is one deployed lab per session (setup ~2-3 min); `healthy_lab` heals it before each test.
Set MFSHA_TEST_LAB to run a second session beside this one (namespaces are named after it).
"""
import os
import signal

import pytest

from lab import Lab

__all__ = ["lab", "healthy_lab"]


def _sigterm(signum, frame):
    # `timeout` or a CI cancel: unwind through the fixtures' teardown like Ctrl-C does
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def lab():
    """A lab deployed by `salt 'mfs*' state.apply mfsha` and serving on the VIP; torn down after the session."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (network namespaces, loop devices)")
    signal.signal(signal.SIGTERM, _sigterm)
    lab = Lab(os.environ.get("MFSHA_TEST_LAB", "mfstest"))
    if lab.state.get("created"):
        lab.log(f"lab: tearing down a lab left by an interrupted run ({lab.rundir})")
        lab.down()
    try:
        lab.up()
        yield lab
    finally:
        lab.down()


@pytest.fixture
def healthy_lab(lab):
    """The session lab back in its normal state: every host up, heartbeat joined, one master serving."""
    lab.heal()
    return lab
