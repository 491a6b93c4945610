"""Shared unit-test helpers: fixture paths, loading a custom Salt module bare, and fake commands
that replay captured outputs (in-process for module tests, as executables on PATH for Loaders tests)."""

import importlib.util
import json
import os
import stat
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO.parent / "shared" / "fixtures"  # CI has ../shared beside the clone
if str(REPO / "_utils") not in sys.path:  # _utils are pure Python, imported by tests directly
    sys.path.insert(0, str(REPO / "_utils"))


def fixture_text(relpath):
    """Text of a shared fixture, e.g. fixture_text("drbd/live-9/....txt")."""
    return (FIXTURES / relpath).read_text(encoding="utf-8")


def load_salt_module(relpath, salt=None, opts=None):
    """Import a repo Salt module file (e.g. "_modules/drbd.py") outside the loader, with the dunders it uses."""
    path = REPO / relpath
    spec = importlib.util.spec_from_file_location(f"mfsha_test_{path.parent.name}_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.__salt__ = dict(salt or {})
    mod.__opts__ = dict(opts or {})
    mod.__context__ = {}
    return mod


# One lookup, used in-process and by the fake executables (exec'd from this source): the command line
# (program basename + args) is looked up in the current scenario state, then in "*". A response may
# move the scenario to another state ("next"), e.g. `drbdadm up r0` turns "down" into "up".
_LOOKUP = r'''
def respond(table_path, argv):
    with open(table_path) as fh:
        table = json.load(fh)
    key = " ".join([os.path.basename(argv[0])] + list(argv[1:]))
    with open(table_path + ".calls", "a") as fh:
        fh.write(key + "\n")
    for state in (table["state"], "*"):
        hit = table["responses"].get(state, {}).get(key)
        if hit is not None:
            if hit.get("next"):
                table["state"] = hit["next"]
                with open(table_path, "w") as fh:
                    json.dump(table, fh)
            return hit["rc"], hit["stdout"], hit["stderr"]
    return 127, "", "fake: no response for %r in state %r\n" % (key, table["state"])
'''
_NS = {"json": json, "os": os}
exec(_LOOKUP, _NS)  # noqa: S102 - our own constant source


class FakeCommands:
    """Replays captured outputs for given command lines. on(...) registers responses; run_all is a
    drop-in for __salt__["cmd.run_all"]; install(names) puts executables on a PATH dir for real runs."""

    def __init__(self, tmp_path, state="default"):
        self.dir = Path(tmp_path)
        self.path = str(self.dir / "fake-commands.json")
        self.table = {"state": state, "responses": {}}
        self._save()

    def _save(self):
        with open(self.path, "w") as fh:
            json.dump(self.table, fh)

    def on(self, cmdline, stdout="", stderr="", rc=0, state="*", next_state=None):
        """stdout/stderr: literal text, or a Path whose content is used (a captured fixture)."""
        read = lambda v: v.read_text(encoding="utf-8") if isinstance(v, Path) else v  # noqa: E731
        self.table = json.load(open(self.path))
        self.table["responses"].setdefault(state, {})[cmdline] = {
            "stdout": read(stdout), "stderr": read(stderr), "rc": rc, "next": next_state}
        self._save()
        return self

    @property
    def state(self):
        return json.load(open(self.path))["state"]

    @property
    def calls(self):
        try:
            return Path(self.path + ".calls").read_text().splitlines()
        except FileNotFoundError:
            return []

    def run_all(self, cmd, python_shell=False, stdin=None, **kwargs):
        assert isinstance(cmd, list) and not python_shell, "commands must be argv lists without a shell"
        rc, out, err = _NS["respond"](self.path, cmd)
        return {"retcode": rc, "stdout": out.rstrip("\n"), "stderr": err.rstrip("\n"), "pid": 0}

    def install(self, names, monkeypatch):
        """Executables `names` on a PATH dir that answer from this table (env FAKE_COMMANDS)."""
        bindir = self.dir / "bin"
        bindir.mkdir(exist_ok=True)
        script = (f"#!{sys.executable}\nimport json, os, sys\n{_LOOKUP}\n"
                  "rc, out, err = respond(os.environ['FAKE_COMMANDS'], sys.argv)\n"
                  "sys.stdout.write(out); sys.stderr.write(err); sys.exit(rc)\n")
        for name in names:
            exe = bindir / name
            exe.write_text(script)
            exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
        monkeypatch.setenv("FAKE_COMMANDS", self.path)
        monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
        return bindir


# ==== mfsmaster tests (mfs helper's block; generic, used by test_mfsmaster_*.py) ===========================
import pwd  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import tempfile  # noqa: E402
import types  # noqa: E402

import pytest  # noqa: E402


def salt_loaders(root, **opts):
    """Real Salt loaders (salt-factories) with the repo's _modules/_states/_utils and a private cache."""
    import salt.config
    from saltfactories.utils.functional import Loaders

    root.mkdir(parents=True, exist_ok=True)
    (root / "roots").mkdir(exist_ok=True)
    minion = salt.config.minion_config(None)
    minion.update(
        id="mfsha-unit", file_client="local", file_roots={"base": [str(root / "roots")]},
        module_dirs=[str(REPO / "_modules")], states_dirs=[str(REPO / "_states")], utils_dirs=[str(REPO / "_utils")],
        cachedir=str(root / "cache"), extension_modules=str(root / "extmods"), pki_dir=str(root / "pki"),
        sock_dir=str(root / "sock"), log_file=str(root / "minion.log"), **opts)
    return Loaders(minion)


def _free_ports(count):
    socks = [socket.socket() for _ in range(count)]
    for sock in socks:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in socks]
    for sock in socks:
        sock.close()
    return ports


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
    ml, cs, cl = _free_ports(3)
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


@pytest.fixture(scope="session", autouse=True)
def _salt_deferred_log_handler():
    """Salt queues WARNING+ records in a deferred stderr handler and flushes it at exit, after pytest has
    closed its capture streams ('--- Logging error ---' noise). Hand the records over before that."""
    yield
    if "salt._logging.impl" in sys.modules:
        sys.modules["salt._logging.impl"].shutdown_temp_handler()
