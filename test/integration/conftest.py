"""Fixtures for the tests on the lab (mfshalab, found through pytest.ini's `pythonpath = .`):

`lab` is one deployed lab per session (setup ~2-3 min); `healthy_lab` heals it before each test; `loop` has the
failover loop installed. Set MFSHA_TEST_LAB to run a second session beside this one (namespaces are named after it).
"""
import os
import signal

import pytest

from mfshalab.lab import Lab, raise_interrupt
from mfshalab.loop import install_loop


@pytest.fixture(scope="session")
def lab():
    """A lab deployed by `salt 'mfs*' state.apply mfsha` and serving on the VIP; torn down after the session."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (network namespaces, loop devices)")
    signal.signal(signal.SIGTERM, raise_interrupt)  # unwind through the teardown
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


@pytest.fixture(scope="module")
def loop(request):
    """The session lab with the failover loop installed; MFSHA_LAB_REUSE=<name> uses a running lab of that name."""
    reuse = os.environ.get("MFSHA_LAB_REUSE")
    lab = Lab(reuse) if reuse else request.getfixturevalue("lab")
    install_loop(lab)
    return lab
