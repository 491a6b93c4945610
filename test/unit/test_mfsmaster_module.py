"""_modules/mfsmaster.py with cmd.run_all replaying real captured mfsmaster/mfscli outputs (fixtures/mfs),
real files for DATA_PATH checks and real sockets for the probe; `lab` tests drive a real private mfsmaster."""

import csv
import errno
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

import mfsha_files
import mfsha_fill
import mfsha_mfs
from unit_support import FakeCommands, HungMaster, load_salt_module, statvfs
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


# ---- filling a changelog hole from a metalogger's copy of the change stream --------------------------------------

def test_changelog_since_reads_complete_entries_once(tmp_path):
    # a metalogger's data dir: the kill -9 capture's full stream, plus a torn last line and an overlapping file
    ml = tmp_path / "ml"
    shutil.copytree(MFS / "data-kill9", ml)
    (ml / "changelog_ml.0.mfs").write_text((MFS / "data-kill9" / "changelog.0.mfs").read_text() + "1417: 17956")
    res = Master(tmp_path / "m").mod.changelog_since(1266, data_path=str(ml))
    assert (res["first"], res["last"], res["count"]) == (1266, 1416, 151)  # not the torn 1417, no duplicates
    assert res["lines"][0].startswith("1266: ") and all(x.endswith("\n") for x in res["lines"])
    assert Master(tmp_path / "n").mod.changelog_since(5000, data_path=str(ml)) == {
        "first": None, "last": None, "count": 0, "lines": []}
    # a metalogger's own copy with a gap: only the run before it (a fill must have no gap of its own)
    text = (ml / "changelog.0.mfs").read_text()
    (ml / "changelog.0.mfs").write_text("".join(x for x in text.splitlines(True) if not x.startswith("1300: ")))
    (ml / "changelog_ml.0.mfs").unlink()
    res = Master(tmp_path / "o").mod.changelog_since(1266, data_path=str(ml))
    assert (res["first"], res["last"], res["count"]) == (1266, 1299, 34)


def test_changelog_since_refuses_two_lines_for_one_change(tmp_path):
    ml = tmp_path / "ml"
    shutil.copytree(MFS / "data-kill9", ml)
    (ml / "changelog_ml.10.mfs").write_text("1300: 1795618038|UNLINK(1,f1):1212\n")
    with pytest.raises(CommandExecutionError, match="change 1300 differs between two changelog lines"):
        Master(tmp_path / "m").mod.changelog_since(1266, data_path=str(ml))


def test_changelog_digests_are_data_paths_own_entries(tmp_path):
    mst = Master(tmp_path, data="data-hole")
    res = mst.mod.changelog_digests(1216)
    versions = [v for v, _ in res["digests"]]
    assert res["data_path"] == str(mst.data)
    assert versions == list(range(1216, 1266)) + list(range(1276, 1417))  # the hole stays a hole
    line = next(x for x in (mst.data / "changelog.0.mfs").read_text().splitlines(True) if x.startswith("1300: "))
    assert dict(res["digests"])[1300] == mfsha_fill.digest(line)


def test_add_changelog_closes_the_hole(tmp_path):
    lines = Master(tmp_path / "ml").mod.changelog_since(1266, data_path=str(MFS / "data-kill9"))["lines"]
    mst = Master(tmp_path / "m", data="data-hole")
    assert mst.mod.data_path_ok()["hole"]["from"] == 1266
    res = mst.mod.add_changelog(lines)
    assert res["ok"] and res["hole"] is None and res["version"] == 1417, res["problems"]
    assert (mst.data / "changelog_ml.0.mfs").read_text() == "".join(lines)
    assert (mst.data / "changelog_ml.0.mfs").stat().st_uid == os.getuid()
    assert sorted(os.listdir(mst.data)) == sorted(os.listdir(MFS / "data-hole") + ["changelog_ml.0.mfs"])


def test_add_changelog_never_follows_a_link_planted_in_data_path(tmp_path):
    """The issue's attack: a compromised mfsmaster plants links where the fill writes, then crashes. The fill
    replaces the links (a rename never follows one) and chowns only its own file, through its fd."""
    lines = Master(tmp_path / "ml").mod.changelog_since(1266, data_path=str(MFS / "data-kill9"))["lines"]
    mst = Master(tmp_path / "m", data="data-hole")
    bait = tmp_path / "passwd"
    bait.write_text("root:x:0:0:root:/root:/bin/sh\n")
    os.chown(bait, 4242, 4242)  # a chown through a link would make it the WORKING_USER's
    names = ("changelog_ml.0.mfs", "changelog_ml.0.mfs.tmp", mfsha_files.tmp_name("changelog_ml.0.mfs"))
    for name in names:
        (mst.data / name).symlink_to(bait)
    assert mst.mod.add_changelog(lines)["version"] == 1417
    assert bait.read_text() == "root:x:0:0:root:/root:/bin/sh\n" and bait.stat().st_uid == 4242
    fill = mst.data / "changelog_ml.0.mfs"
    assert not fill.is_symlink() and fill.read_text() == "".join(lines) and fill.stat().st_uid == os.getuid()
    assert not os.path.lexists(mst.data / names[2])  # the planted temporary link was removed, not followed


def test_a_config_that_is_not_roots_regular_file_is_refused(tmp_path):
    mst = Master(tmp_path / "m")
    real = Path(mst.cfg).with_suffix(".real")
    os.rename(mst.cfg, real)
    os.symlink(real, mst.cfg)
    with pytest.raises(CommandExecutionError, match=r"mfsmaster.cfg: is a symlink; refused"):
        mst.mod.data_path_ok()
    os.unlink(mst.cfg)
    os.mkfifo(mst.cfg)
    with pytest.raises(CommandExecutionError, match=r"mfsmaster.cfg: is not a regular file; refused"):
        mst.mod.missing_changes(1417)
    os.unlink(mst.cfg)
    shutil.copy(real, mst.cfg)
    os.chown(mst.cfg, 4242, 4242)  # the storage's owner wrote it: not root's word
    with pytest.raises(CommandExecutionError, match=r"mfsmaster.cfg: belongs to uid 4242"):
        mst.mod.kill()


@pytest.mark.parametrize("lines, why", [
    (["1266: 1795618038|CREATE(1,f60,2,511,18,0,0,0):1271"], "complete changelog lines"),
    (["not a changelog line\n"], "changelog entry"),
    ("1266: x\n", "complete changelog lines"),
])
def test_add_changelog_refuses_what_is_not_a_changelog(tmp_path, lines, why):
    mst = Master(tmp_path, data="data-hole")
    with pytest.raises(CommandExecutionError, match=why):
        mst.mod.add_changelog(lines)
    assert not (mst.data / "changelog_ml.0.mfs").exists()


# ---- a changelog tail lost to a full disk ------------------------------------------------------------------------

def test_missing_changes_compares_data_path_with_the_version_the_master_reported(tmp_path):
    mst = Master(tmp_path / "m")  # the kill -9 capture replays to 1417, what the master reported after replay
    assert mst.mod.missing_changes(1417) is None and mst.mod.missing_changes(1200) is None
    assert mst.mod.missing_changes(1500) == {"from": 1417, "to": 1499, "data_path": str(mst.data)}
    hole = Master(tmp_path / "h", data="data-hole")
    assert hole.mod.missing_changes(1417) is None  # the tail is there: the hole is for `mfsmaster -a` to report
    assert hole.mod.missing_changes(1500)["from"] == 1266  # short of it: read in full, a replay stops at the hole


def test_add_changelog_on_a_full_disk_releases_the_reserve_once(tmp_path, monkeypatch):
    lines = Master(tmp_path / "ml").mod.changelog_since(1266, data_path=str(MFS / "data-kill9"))["lines"]
    mst = Master(tmp_path / "m", data="data-hole")
    (mst.data / mfsha_mfs.RESERVE).write_bytes(b"\0" * 8192)
    real, calls = mfsha_files.write_durably, []

    def full_once(*args, **kwargs):
        calls.append(os.path.basename(args[0]))
        if len(calls) == 1:
            raise OSError(errno.ENOSPC, "No space left on device", args[0])
        return real(*args, **kwargs)
    monkeypatch.setattr(mfsha_files, "write_durably", full_once)
    monkeypatch.setattr(os, "statvfs", statvfs(0))
    assert mst.mod.add_changelog(lines)["version"] == 1417
    assert calls == ["changelog_ml.0.mfs", mfsha_mfs.WAS_FULL, "changelog_ml.0.mfs"]  # the marker, then again
    assert not (mst.data / mfsha_mfs.RESERVE).exists()
    # no reserve left: the error stands, with its path
    monkeypatch.setattr(mfsha_files, "write_durably", lambda *a, **k: (_ for _ in ()).throw(
        OSError(errno.ENOSPC, "No space left on device", a[0])))
    with pytest.raises(CommandExecutionError, match="changelog_ml.0.mfs failed: .*No space left"):
        mst.mod.add_changelog(lines)

