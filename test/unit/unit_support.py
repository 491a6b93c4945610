"""Shared unit-test helpers: fixture paths, loading a custom Salt module bare, and fake commands
that replay captured outputs (in-process for module tests, as executables on PATH for Loaders tests)."""

import importlib.util
import json
import os
import stat
import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "test" / "unit" / "fixtures"  # captured outputs; each subdirectory has a README.md on its origin
if str(REPO / "_utils") not in sys.path:  # _utils are pure Python, imported by tests directly
    sys.path.insert(0, str(REPO / "_utils"))


def fixture_text(relpath):
    """Text of a captured fixture, e.g. fixture_text("drbd/live-9/....txt")."""
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
def store(table_path, table):
    # atomic: a reader in another thread or process (the HungMaster reaper, a fake executable) never sees a
    # half-written table; one temp file per writing thread
    tmp = "%s.%d.%d.tmp" % (table_path, os.getpid(), threading.get_ident())
    with open(tmp, "w") as fh:
        json.dump(table, fh)
    os.replace(tmp, table_path)


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
                store(table_path, table)
            return hit["rc"], hit["stdout"], hit["stderr"]
    return 127, "", "fake: no response for %r in state %r\n" % (key, table["state"])
'''
_NS = {"json": json, "os": os, "threading": threading}
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
        _NS["store"](self.path, self.table)

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

    def set_state(self, state):
        """Move the scenario, as a command with next_state would (also from another thread: no shared state)."""
        with open(self.path) as fh:
            table = json.load(fh)
        table["state"] = state
        _NS["store"](self.path, table)

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
        script = (f"#!{sys.executable}\nimport json, os, sys, threading\n{_LOOKUP}\n"
                  "rc, out, err = respond(os.environ['FAKE_COMMANDS'], sys.argv)\n"
                  "sys.stdout.write(out); sys.stderr.write(err); sys.exit(rc)\n")
        for name in names:
            exe = bindir / name
            exe.write_text(script)
            exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
        monkeypatch.setenv("FAKE_COMMANDS", self.path)
        monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
        return bindir


import socket  # noqa: E402

from salt_support import salt_loaders  # noqa: E402,F401  (re-exported for the unit tests)


def statvfs(free):
    """A stand-in for os.statvfs: `free` bytes (in 4 KiB blocks) left for anyone, root or not."""
    return lambda path: os.statvfs_result((4096, 4096, 1 << 20, free // 4096, free // 4096, 0, 0, 0, 0, 255))


def free_ports(count):
    """`count` TCP ports free on 127.0.0.1 right now."""
    socks = [socket.socket() for _ in range(count)]
    for sock in socks:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in socks]
    for sock in socks:
        sock.close()
    return ports


class HungMaster:
    """Real stand-ins for a SIGSTOPped mfsmaster and its bgsaver: processes named `mfsmaster` holding POSIX locks on
    DATA_PATH/.mfsmaster.lock and .bgwriter.lock, as the real ones do, so mfsmaster.kill finds them through
    /proc/locks and really SIGKILLs them. `mfsmaster test` (FakeCommands, scenario state "hung") names the master's
    pid; once both are dead a watcher reaps them and moves the scenario to "down", as the real lock release would."""

    CODE = ("import ctypes, fcntl, sys, time; ctypes.CDLL(None).prctl(15, b'mfsmaster', 0, 0, 0); "
            "f = open(sys.argv[1], 'a'); fcntl.lockf(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(600)")

    def __init__(self, data_dir, fake, test_cmdline):
        import subprocess
        self.procs = []
        for name in (".mfsmaster.lock", ".bgwriter.lock"):
            p = subprocess.Popen([sys.executable, "-c", self.CODE, str(Path(data_dir) / name)], stdout=subprocess.PIPE,
                                 text=True)
            self.procs.append(p)
            assert p.stdout.readline().strip() == "locked"
        self.pids = [p.pid for p in self.procs]
        fake.on(test_cmdline, stderr=f"mfsmaster pid: {self.pids[0]}\n", rc=0, state="hung")

        def reap():
            for p in self.procs:
                p.wait()
            fake.set_state("down")
        self.watcher = threading.Thread(target=reap, daemon=True)
        self.watcher.start()

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)
