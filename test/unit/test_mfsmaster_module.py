"""_modules/mfsmaster.py with cmd.run_all replaying real captured mfsmaster/mfscli outputs (fixtures/mfs),
real files for DATA_PATH checks and real sockets for the probe; `lab` tests drive a real private mfsmaster."""

import csv
import fcntl
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from salt.exceptions import CommandExecutionError

from unit_support import FakeCommands, HungMaster, load_salt_module
from test_mfs_parse import LIVE, Server

MFS = Path(__file__).parent / "fixtures" / "mfs"
INDEX = {row["file"]: row for row in csv.DictReader(open(MFS / "index.tsv"), delimiter="\t")}
ME = pwd.getpwuid(os.getuid()).pw_name


def fixture(name):
    """(stdout, stderr, rc) of a captured command, e.g. "mfsmaster-test__running"."""
    return (MFS / f"{name}.txt", MFS / f"{name}.stderr.txt", int(INDEX[f"{name}.txt"]["exit_code"]))


class Master:
    """A config + DATA_PATH (copied from a captured one) and the module loaded with fake commands."""

    def __init__(self, tmp_path, data="data-kill9", port=9421, user=ME):
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.data = tmp_path / "data"
        if data:
            shutil.copytree(MFS / data, self.data)
        else:
            self.data.mkdir()
        self.cfg = str(tmp_path / "mfsmaster.cfg")
        Path(self.cfg).write_text(f"WORKING_USER = {user}\nDATA_PATH = {self.data}\nMATOCL_LISTEN_HOST = 127.0.0.1\n"
                                  f"MATOCL_LISTEN_PORT = {port}\n")
        self.fake = FakeCommands(tmp_path, state="down")
        self.mod = load_salt_module("_modules/mfsmaster.py", salt={"cmd.run_all": self.fake.run_all},
                                    opts={"mfsmaster.cfg": self.cfg})
        self.mod.STOP_GRACE_S = 0.3
        self.mod.LOCK_RETRY_S = 0.5

    def on(self, args, captured, state="*", next_state=None):
        out, err, rc = fixture(captured)
        self.fake.on(" ".join(["mfsmaster", "-c", self.cfg] + args) if args[0] != "-a" else
                     " ".join(["mfsmaster", "-a", "-c", self.cfg] + args[1:]),
                     stdout=out, stderr=err, rc=rc, state=state, next_state=next_state)

    def updown(self):
        """`mfsmaster test` answers per state: "up" running, "down" not running."""
        self.on(["test"], "mfsmaster-test__running", state="up")
        self.on(["test"], "mfsmaster-test__stopped", state="down")
        return self


@pytest.fixture
def master(tmp_path):
    return Master(tmp_path).updown()


# ---- running / health ------------------------------------------------------------------------------------

def test_running(master):
    assert master.mod.running() is False
    master.fake.set_state("up")
    assert master.mod.running() is True
    assert master.fake.calls == ["mfsmaster -c %s test" % master.cfg] * 2


def test_a_passing_mfsmaster_test_is_no_master(master):
    """With no master running, a concurrent `mfsmaster test` holds the lock for a moment and the next test names it
    (measured: exit 0, `mfsmaster pid: <the prober>`). A process whose command line ends in `test` is no master."""
    procs = {verb: subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", verb])
             for verb in ("test", "start")}
    try:
        seen = {}
        for verb, proc in procs.items():
            master.fake.on(f"mfsmaster -c {master.cfg} test", stderr=f"mfsmaster pid: {proc.pid}\n", state="down")
            seen[verb] = master.mod.health(port=1, timeout=0.2)["pid"]
    finally:
        for proc in procs.values():
            proc.kill()
            proc.wait(timeout=10)
    assert seen == {"test": None, "start": procs["start"].pid}


def test_running_missing_config_raises_with_stderr(master):
    master.on(["test"], "mfsmaster-test__no-cfg", state="down")
    with pytest.raises(CommandExecutionError, match=r"exit code 1: main config file .* not found"):
        master.mod.running()


def test_health_live(tmp_path):
    srv = Server("answer")
    try:
        mst = Master(tmp_path, port=srv.port).updown()
        mst.fake.set_state("up")
        h = mst.mod.health(timeout=1)
    finally:
        srv.close()
    assert h["healthy"] and h["process"] and h["port"] and h["protocol"] and h["errors"] == []
    assert h["pid"] == int(fixture("mfsmaster-test__running")[1].read_text().split(":")[1])
    assert h["version"] == "3.0.117" and h["metadata_version"] == 1417 and 0 < h["latency_s"] < 1
    assert h["address"] == f"127.0.0.1:{srv.port}" and "serving" in h["detail"]


def test_health_hung_master(tmp_path):
    """Hung (running, not answering): `mfsmaster test` reports the pid, TCP is accepted, no answer -> unhealthy."""
    srv = Server("hang")
    try:
        mst = Master(tmp_path, port=srv.port)
        mst.on(["test"], "mfsmaster-test__sigstopped")
        start = time.monotonic()
        h = mst.mod.health(timeout=0.3)
        assert time.monotonic() - start < 1.5
    finally:
        srv.close()
    assert (h["healthy"], h["process"], h["port"], h["protocol"]) == (False, True, True, False)
    assert "no answer within 0.30 s" in h["detail"] and h["stopped"] is False


def test_health_stopped_master_is_known_without_a_probe(tmp_path):
    """SIGSTOPped: the process state says so (a real stopped process); no protocol probe waits for a timeout."""
    srv = Server("hang")
    proc = subprocess.Popen(["sleep", "60"])
    try:
        os.kill(proc.pid, signal.SIGSTOP)
        mst = Master(tmp_path, port=srv.port)
        mst.fake.on(f"mfsmaster -c {mst.cfg} test", stderr=f"mfsmaster pid: {proc.pid}\n")
        time.sleep(0.1)  # the stop is asynchronous
        start = time.monotonic()
        h = mst.mod.health(timeout=5)
        assert time.monotonic() - start < 1
    finally:
        proc.kill()
        proc.wait(timeout=10)
        srv.close()
    assert (h["healthy"], h["process"], h["stopped"], h["protocol"]) == (False, True, True, False)
    assert h["detail"] == f"mfsmaster pid {proc.pid} is stopped (SIGSTOP or a tracer): it cannot answer"


def test_health_dead_master(master):
    h = master.mod.health(port=1, timeout=0.5)  # nothing listens on port 1 here
    assert (h["healthy"], h["process"], h["port"], h["protocol"]) == (False, False, False, False)
    assert h["errors"][0] == "mfsmaster is not running" and "connect: 127.0.0.1:1" in h["errors"][1]


def test_health_bad_config_is_reported_not_raised(tmp_path):
    mst = Master(tmp_path)
    Path(mst.cfg).write_text("GARBAGE\n")
    mst.on(["test"], "mfsmaster-test__stopped")
    h = mst.mod.health()
    assert not h["healthy"] and "bad line 1" in h["detail"]


# ---- metadata_version ------------------------------------------------------------------------------------

def cli(master, captured):
    out, err, rc = fixture(captured)
    master.fake.on("mfscli -H 127.0.0.1 -P 9421 -SIM -s |", stdout=out, stderr=err, rc=rc)


@pytest.mark.parametrize("captured", ["mfscli-SIM__leader", "mfscli-SIM__after-replay"])
def test_metadata_version_running(master, captured):
    cli(master, captured)
    assert master.mod.metadata_version() == LIVE[captured + ".txt"]


@pytest.mark.parametrize("captured,state", [("mfscli-SIM__dead", "DEAD"), ("mfscli-SIM__sigstopped", "BUSY")])
def test_metadata_version_no_master(master, captured, state):
    cli(master, captured)
    with pytest.raises(CommandExecutionError, match=f"Working master servers not found.*127.0.0.1 {state}"):
        master.mod.metadata_version()


def test_metadata_version_mfscli_fails(master):
    cli(master, "mfscli-SIM__unresolvable")
    with pytest.raises(CommandExecutionError, match="exit code 1.*Can't find masters"):
        master.mod.metadata_version()


def test_metadata_version_disk(tmp_path):
    assert Master(tmp_path / "a").mod.metadata_version(source="disk") == 1417
    assert Master(tmp_path / "b", data="data-hole").mod.metadata_version(source="disk") == 1266
    with pytest.raises(CommandExecutionError, match="no metadata.mfs"):
        Master(tmp_path / "c", data=None).mod.metadata_version(source="disk")
    with pytest.raises(CommandExecutionError, match="source must be"):
        Master(tmp_path / "d").mod.metadata_version(source="disc")


# ---- start / stop / reload -------------------------------------------------------------------------------

def test_start_always_replays(master):
    master.on(["-a", "start"], "mfsmaster-start-a__after-kill9", state="down", next_state="up")
    res = master.mod.start()
    assert master.fake.calls[0] == f"mfsmaster -a -c {master.cfg} start"
    assert res["pid"] == int(fixture("mfsmaster-test__running")[1].read_text().split(":")[1])
    assert res["log"].endswith("mfsmaster daemon initialized properly")


@pytest.mark.parametrize("captured,message", [
    ("mfsmaster-start-a__already-running", "lockfile is already locked by another process"),
    ("mfsmaster-start-a__hole", r"hole in change files \(entries from changelog.1.mfs:1266"),
])
def test_start_failures_carry_stderr(master, captured, message):
    master.on(["-a", "start"], captured, state="down")
    with pytest.raises(CommandExecutionError, match=message):
        master.mod.start()
    tries = master.fake.calls.count(f"mfsmaster -a -c {master.cfg} start")
    # a taken lock may be a passing `mfsmaster test`: tried again (bounded); any other failure is final
    assert tries > 1 if "locked" in message else tries == 1, tries


def test_stop(master):
    master.on(["stop"], "mfsmaster-stop__running", state="up", next_state="down")
    master.fake.set_state("up")
    res = master.mod.stop()
    log = fixture("mfsmaster-stop__running")[1].read_text().strip()
    assert log.startswith("sending SIGTERM to lock owner") and log.endswith("waiting for termination terminated")
    assert res == {"was_running": True, "killed": False, "log": log}
    assert master.mod.stop()["was_running"] is False  # idempotent: no second stop command
    assert master.fake.calls.count(f"mfsmaster -c {master.cfg} stop") == 1


def test_stop_hung_master_needs_kill(master):
    # the captured `mfsmaster stop` of a SIGSTOPped master never finished (timeout killed it: exit 124); kill=True
    # then SIGKILLs the master and its bgsaver (real lock-holding processes) by PID
    master.on(["stop"], "mfsmaster-stop__sigstopped", state="hung")
    hung = HungMaster(master.data, master.fake, f"mfsmaster -c {master.cfg} test")
    try:
        master.fake.set_state("hung")
        with pytest.raises(CommandExecutionError, match=r"(?s)still running after stop: .*waiting for termination"):
            master.mod.stop(timeout=1)
        assert all(p.poll() is None for p in hung.procs)  # no kill without kill=True
        master.mod.STOP_GRACE_S = 5
        res = master.mod.stop(timeout=1, kill=True)
        assert res["killed"] and f"SIGKILL sent to mfsmaster pids {sorted(hung.pids)}" in res["log"], res
        assert [p.wait(timeout=5) for p in hung.procs] == [-signal.SIGKILL] * 2
        assert "kill" not in [c.split()[-1] for c in master.fake.calls]  # never `mfsmaster kill` (polls for ~2 s)
    finally:
        hung.close()


def test_kill_without_a_master_kills_nothing(master):
    assert master.mod.kill() == []


def test_reload(master):
    with pytest.raises(CommandExecutionError, match="not running; nothing to reload"):
        master.mod.reload()
    master.on(["reload"], "mfsmaster-reload__running", state="up")
    master.fake.set_state("up")
    assert master.mod.reload() == {"log": "reload signal has been sent"}


# ---- data_path_ok ----------------------------------------------------------------------------------------

def test_data_path_ok_after_crash(tmp_path):
    res = Master(tmp_path).mod.data_path_ok()
    assert res["ok"] and res["problems"] == []
    assert res["metadata_file"] == "metadata.mfs.back" and res["version"] == 1417 and res["lock_pid"] is None
    assert res["changelogs"]["changelog.0.mfs"] == [1216, 1416]


def test_data_path_hole(tmp_path):
    res = Master(tmp_path, data="data-hole").mod.data_path_ok()
    assert not res["ok"] and res["hole"]["from"] == 1266
    assert res["problems"] == ["changelog hole: changes 1266..1275 missing between changelog.1.mfs and "
                               "changelog.0.mfs; mfsmaster -a will refuse (copy the metaloggers' "
                               "changelog_ml*.mfs into DATA_PATH)"]


def test_data_path_empty_and_missing(tmp_path):
    res = Master(tmp_path / "a", data=None).mod.data_path_ok()
    assert not res["ok"] and res["problems"][0].startswith("no metadata.mfs or metadata.mfs.back")
    mst = Master(tmp_path / "b", data=None)
    mst.data.rmdir()
    assert mst.mod.data_path_ok()["problems"] == [f"DATA_PATH {mst.data} is not a directory"]


def test_data_path_wrong_owner(tmp_path):
    mst = Master(tmp_path, user="nobody")
    problems = mst.mod.data_path_ok()["problems"]
    assert len(problems) == 1 and problems[0].startswith(f"not owned by nobody in {mst.data}: ., changelog.0.mfs")
    Path(mst.cfg).write_text(Path(mst.cfg).read_text().replace("nobody", "no-such-user-x"))
    assert "WORKING_USER no-such-user-x does not exist" in mst.mod.data_path_ok()["problems"]


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_data_path_ignores_files_mfsmaster_does_not_write(tmp_path):
    # DATA_PATH is the /mfsconf mount: ext4's lost+found and mfsha's configs live there, owned by root
    mst = Master(tmp_path)
    nobody = pwd.getpwnam("nobody")
    for name in ("lost+found", "mfsexports.cfg"):
        (mst.data / name).touch()
        os.chown(mst.data / name, nobody.pw_uid, nobody.pw_gid)
    assert mst.mod.data_path_ok()["ok"]
    os.chown(mst.data / "metadata.mfs.back", nobody.pw_uid, nobody.pw_gid)
    assert mst.mod.data_path_ok()["problems"] == [f"not owned by {ME} in {mst.data}: metadata.mfs.back"]


def test_data_path_lock_held_by_other_process(tmp_path):
    mst = Master(tmp_path)
    lock = mst.data / ".mfsmaster.lock"
    lock.write_text("1\n")
    with open(lock, "r+") as fh:
        fcntl.lockf(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        res = mst.mod.data_path_ok()
    assert res["lock_pid"] == os.getpid()
    assert res["problems"] == [f"{lock} is locked by pid {os.getpid()} ({Path('/proc/self/comm').read_text().strip()}"
                               "), not mfsmaster"]
    assert mst.mod.data_path_ok()["ok"]  # released with the file


# ---- lab: a real private mfsmaster -----------------------------------------------------------------------

@pytest.mark.lab
def test_real_master_health_sigstop_and_kill(mfs_lab):
    """Real daemon: healthy, then SIGSTOPped (unhealthy within the probe timeout), stop+kill, restart -a."""
    mod = mfs_lab.loaders.modules.mfsmaster
    cfg = mfs_lab.cfg
    assert mod.data_path_ok(cfg)["ok"] and not mod.running(cfg)
    pid = mod.start(cfg)["pid"]
    mfs_lab.pids.append(pid)
    live, calls = [], []
    for _ in range(5):
        start = time.monotonic()
        live.append(mod.health(cfg, timeout=1.0))
        calls.append(time.monotonic() - start)
    assert all(h["healthy"] for h in live), live
    assert mod.metadata_version(cfg) == live[-1]["metadata_version"]
    assert mod.data_path_ok(cfg)["lock_pid"] == pid
    os.kill(pid, signal.SIGSTOP)
    start = time.monotonic()
    hung = mod.health(cfg, timeout=1.0)
    took = time.monotonic() - start
    assert (hung["healthy"], hung["process"], hung["stopped"], hung["protocol"]) == (False, True, True, False)
    assert took < 0.5  # known from the process state, no probe timeout
    stopped = mod.stop(cfg, timeout=2, kill=True)
    assert stopped["killed"] and not mod.running(cfg)
    assert mod.data_path_ok(cfg)["ok"]  # kill -9 state is recoverable: no hole
    pid2 = mod.start(cfg)["pid"]
    mfs_lab.pids.append(pid2)
    assert mod.health(cfg)["healthy"]
    assert mod.stop(cfg, timeout=20)["killed"] is False and not mod.running(cfg)
    assert mod.data_path_ok(cfg)["metadata_file"] == "metadata.mfs"  # clean stop saved the metadata
    print("\nprobe latency live: %s s; health() call: %s s; SIGSTOP: known stopped after %.3f s" % (
        ", ".join("%.4f" % h["latency_s"] for h in live), ", ".join("%.3f" % c for c in calls), took))
