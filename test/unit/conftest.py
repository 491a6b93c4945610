"""Unit-tier fixtures; the helpers they use live in unit_support.py (tests import from there, not from conftest:
every tier has a conftest and only one can be `conftest` in sys.modules)."""
import os
import pwd
import shutil
import signal
import tempfile
import types
from pathlib import Path

import pytest

from unit_support import REPO, free_ports, salt_loaders


# ==== mfsha mfsmaster fixtures ===============================================================================
@pytest.fixture(scope="session")
def mfs_loaders(tmp_path_factory):
    """One set of real loaders for the session (building them syncs and takes seconds); pass cfg explicitly."""
    return salt_loaders(tmp_path_factory.mktemp("mfs-salt"))


@pytest.fixture
def mfs_lab(mfs_loaders):
    """A private, stopped mfsmaster setup on 127.0.0.1 (free ports, temp DATA_PATH seeded with an empty
    filesystem, CHANGELOG_SAVE_MODE 2) and real loaders. Tests append the PIDs they start to .pids; on
    teardown every such PID still alive (or holding the lock) is continued and SIGKILLed."""
    if os.geteuid() != 0 or not shutil.which("mfsmaster") or not Path("/var/lib/mfs/metadata.mfs.empty").exists():
        pytest.skip("needs root and moosefs-master")
    mfs = pwd.getpwnam("mfs")
    base = Path(tempfile.mkdtemp(prefix="mfsha-lab-"))
    base.chmod(0o755)  # WORKING_USER must reach DATA_PATH
    data = base / "data"
    data.mkdir()
    shutil.copy("/var/lib/mfs/metadata.mfs.empty", data / "metadata.mfs")
    for path in (data, data / "metadata.mfs"):
        os.chown(path, mfs.pw_uid, mfs.pw_gid)
    (base / "mfsexports.cfg").write_text("127.0.0.1 / rw,alldirs,maproot=0\n")
    ml, cs, cl = free_ports(3)
    cfg = base / "mfsmaster.cfg"
    cfg.write_text(f"WORKING_USER = mfs\nDATA_PATH = {data}\nEXPORTS_FILENAME = {base}/mfsexports.cfg\n"
                   f"CHANGELOG_SAVE_MODE = 2\nMATOML_LISTEN_HOST = 127.0.0.1\nMATOML_LISTEN_PORT = {ml}\n"
                   f"MATOCS_LISTEN_HOST = 127.0.0.1\nMATOCS_LISTEN_PORT = {cs}\n"
                   f"MATOCL_LISTEN_HOST = 127.0.0.1\nMATOCL_LISTEN_PORT = {cl}\n")
    lab = types.SimpleNamespace(cfg=str(cfg), data=data, port=cl, pids=[], loaders=mfs_loaders)
    try:
        yield lab
    finally:
        import mfsha_mfs
        lock = data / ".mfsmaster.lock"
        holder = mfsha_mfs.lock_holder(str(lock)) if lock.exists() else None
        for pid in set(lab.pids + ([holder] if holder else [])):
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "mfsmaster":
                    os.kill(pid, signal.SIGCONT)
                    os.kill(pid, signal.SIGKILL)
            except (FileNotFoundError, ProcessLookupError):
                pass
        shutil.rmtree(base, ignore_errors=True)
# ==== end of mfsmaster block ===============================================================================


