import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lab"))

from labfixtures import *  # noqa: E402,F401,F403


import pytest  # noqa: E402

from failover_loop import install_loop  # noqa: E402
from lab import Lab  # noqa: E402


@pytest.fixture(scope="module")
def loop(request):
    """The session lab with the failover loop installed; MFSHA_LAB_REUSE=<name> uses a running lab of that name."""
    reuse = os.environ.get("MFSHA_LAB_REUSE")
    lab = Lab(reuse) if reuse else request.getfixturevalue("lab")
    install_loop(lab)
    return lab
