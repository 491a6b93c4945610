"""MooseFS master control and health for mfsha.

Every command runs through mfsha_cmd (no shell); a failing command raises CommandExecutionError carrying its
output. Parsers and the protocol probe live in _utils/mfsha_mfs.py.
The config path defaults to the minion option `mfsmaster.cfg`, else /mfsconf/mfsmaster.cfg.
"""
import errno
import importlib
import os
import pwd
import signal
import time

import mfsha_cmd  # synced _utils; on sys.path only while the loader imports this module
import mfsha_files
import mfsha_fill
import mfsha_mfs
import mfsha_proc
import mfsha_redact
from salt.exceptions import CommandExecutionError

# A running minion or master keeps a module's first import; the synced _utils of an upgrade must load too (mfsha_mfs
# uses mfsha_files, mfsha_cmd uses mfsha_redact: those first).
for _mod in (mfsha_files, mfsha_mfs, mfsha_fill, mfsha_redact, mfsha_cmd, mfsha_proc):
    importlib.reload(_mod)

__virtualname__ = "mfsmaster"
DEFAULT_CFG = "/mfsconf/mfsmaster.cfg"


def __virtual__():
    return __virtualname__


def _path(cfg):
    return cfg or __opts__.get("mfsmaster.cfg", DEFAULT_CFG)


def _settings(cfg):
    path = _path(cfg)
    try:  # on the storage, in the mfs user's directory: root's own regular file only, never a link (mfsha_files)
        return mfsha_mfs.parse_cfg(mfsha_files.read_regular(path, limit=1 << 20, owned=True))
    except (OSError, ValueError) as exc:
        raise CommandExecutionError("cannot read mfsmaster config {}: {}".format(path, exc)) from None


def _run(args, timeout=10, check=False):
    return mfsha_cmd.run(__salt__["cmd.run_all"], args, timeout=timeout, fail=CommandExecutionError if check else None)


def _test(cfg):
    """pid of the running master or None (`mfsmaster test`: exit 0 `mfsmaster pid: N`, exit 1 not running)."""
    args = ["mfsmaster", "-c", _path(cfg), "test"]
    res = _run(args)
    text = mfsha_cmd.output(res)
    if res["retcode"] == 0 and text.startswith("mfsmaster pid:"):
        pid = int(text.split(":", 1)[1])
        # while no master runs, a concurrent `mfsmaster test` (or stop/kill/...) holds the lock for a moment and is
        # named here: a short-lived command is no master
        return None if mfsha_proc.short_lived(mfsha_proc.cmdline(_proc(pid, "cmdline"))) else pid
    if res["retcode"] == 1 and "is not running" in text:
        return None
    raise CommandExecutionError(mfsha_cmd.failure(args, res))


def short_lived_commands():
    """The commands that are no master when `mfsmaster test` names them (mfsha_proc.SHORT_LIVED), for MFSMaster."""
    return list(mfsha_proc.SHORT_LIVED)


def running(cfg=None):
    """True when the mfsmaster of this config holds its lock (it may still be hung: see health)."""
    return _test(cfg) is not None


def health(cfg=None, host=None, port=None, timeout=1.0):
    """Process, client port and protocol answer of the master, bounded by `timeout` for the network part.

    Returns {"healthy", "process", "pid", "stopped", "port", "protocol", "latency_s", "version",
    "metadata_version", "address", "errors": [..], "detail"}; healthy = process and port and protocol. A hung
    master holds its lock and accepts TCP (kernel backlog) but never answers: protocol False after `timeout`.
    A SIGSTOPped (or traced) one is known at once from its process state: stopped True, no probe."""
    out = {"healthy": False, "process": False, "pid": None, "stopped": False, "port": False, "protocol": False,
           "latency_s": None, "version": None, "metadata_version": None, "address": None, "errors": []}
    try:
        out["pid"] = _test(cfg)
        out["process"] = out["pid"] is not None
        if not out["process"]:
            out["errors"].append("mfsmaster is not running")
        elif _proc_state(out["pid"])[1] in ("T", "t"):
            out["stopped"] = True
            out["errors"].append("mfsmaster pid {} is stopped (SIGSTOP or a tracer): it cannot answer".format(
                out["pid"]))
    except CommandExecutionError as exc:
        out["errors"].append(str(exc))
    if out["stopped"]:
        out["detail"] = "; ".join(out["errors"])
        return out
    if host is None or port is None:
        try:
            def_host, def_port = mfsha_mfs.client_address(_settings(cfg))
        except (CommandExecutionError, ValueError) as exc:
            out["errors"].append(str(exc))
            out["detail"] = "; ".join(out["errors"])
            return out
        host, port = host or def_host, port or def_port
    out["address"] = "{}:{}".format(host, port)
    start = time.monotonic()
    try:
        info = mfsha_mfs.master_info(host, int(port), timeout)
        out.update(port=True, protocol=True, latency_s=info["latency_s"], version=info["version"],
                   metadata_version=info["metadata_version"])
    except mfsha_mfs.ProbeError as exc:
        out["port"] = exc.stage != "connect"
        out["latency_s"] = time.monotonic() - start
        out["errors"].append(str(exc))
    out["healthy"] = out["process"] and out["port"] and out["protocol"]
    out["detail"] = "; ".join(out["errors"]) or "mfsmaster {} serving on {} (pid {}, metadata version {})".format(
        out["version"], out["address"], out["pid"], out["metadata_version"])
    return out


def metadata_version(cfg=None, source="running", host=None, port=None):
    """Next change id of the metadata (int).

    source="running": asks the live master through `mfscli -SIM` (raises when no working master answers;
    mfscli itself exits 0 then). source="disk": what `mfsmaster -a` would restore from DATA_PATH (metadata
    file + contiguous changelogs); same numbering, so the two are comparable."""
    if source == "disk":
        state = _disk(_settings(cfg)["DATA_PATH"])
        if state["metadata_file"] is None:
            raise CommandExecutionError("no metadata.mfs or metadata.mfs.back in DATA_PATH")
        return state["version"]
    if source != "running":
        raise CommandExecutionError("source must be 'running' or 'disk', not {!r}".format(source))
    if host is None or port is None:
        def_host, def_port = mfsha_mfs.client_address(_settings(cfg))
        host, port = host or def_host, port or def_port
    args = ["mfscli", "-H", str(host), "-P", str(port), "-SIM", "-s", "|"]
    res = _run(args, timeout=30, check=True)
    parsed = mfsha_mfs.parse_mfscli(res["stdout"])
    if parsed["leader"] is None:
        states = ", ".join("{} {}".format(r["ip"], r["state"]) for r in parsed["masters"])
        raise CommandExecutionError("no working master at {}:{}: {} ({})".format(
            host, port, "; ".join(parsed["errors"]) or "no leader", states or "no rows"))
    return parsed["leader"]["metadata_version"]


def _disk(data_path):
    try:
        return mfsha_mfs.disk_state(data_path)
    except (OSError, ValueError) as exc:
        raise CommandExecutionError("cannot read metadata in {}: {}".format(data_path, exc)) from None


LOCKED = "lockfile is already locked by another process"
LOCK_RETRY_S = 3  # how long start() tries again while the lock is taken


def start(cfg=None, timeout=120):
    """`mfsmaster -a -c CFG start` (-a replays changelogs after a crash; harmless after a clean stop).
    Returns {"pid", "log"} once the daemon reports `initialized properly`.

    While no master runs, every `mfsmaster test` (health probes of the beacon, heartbeat's status) takes the
    lock for a moment, and a start meeting it fails with `lockfile is already locked`: it is tried again for
    LOCK_RETRY_S; a real master holds the lock longer, and the last failure is raised with its stderr."""
    args = ["mfsmaster", "-a", "-c", _path(cfg), "start"]
    deadline = time.monotonic() + LOCK_RETRY_S
    while True:
        res = _run(args, timeout=timeout)
        if res["retcode"] == 0:
            return {"pid": _test(cfg), "log": mfsha_cmd.output(res)}
        if LOCKED not in mfsha_cmd.output(res) or time.monotonic() > deadline:
            raise CommandExecutionError(mfsha_cmd.failure(args, res))
        time.sleep(0.2)


def stop(cfg=None, timeout=30, kill=False):
    """Stop the master and wait until its process is gone.

    `mfsmaster stop` (SIGTERM; the master saves metadata) is bounded by `timeout`; a SIGSTOPped master
    never finishes it. With kill=True a master still running then gets SIGKILL with its bgsaver (kill();
    the next start replays changelogs with -a). Returns {"was_running", "killed", "log"}; raises if the
    process is still there STOP_GRACE_S after the last command."""
    path = _path(cfg)
    if _test(cfg) is None:
        return {"was_running": False, "killed": False, "log": "mfsmaster is not running"}
    log = mfsha_cmd.output(_run(["mfsmaster", "-c", path, "stop"], timeout=timeout))
    killed = False
    if kill and _test(cfg) is not None:  # stop timed out or failed: no point in a grace period
        pids = _sigkill(cfg)
        log, killed = log + "\nSIGKILL sent to mfsmaster pids {}".format(pids), True
    if not _gone(cfg):
        raise CommandExecutionError("mfsmaster ({}) still running after {}: {}".format(
            path, "SIGKILL" if killed else "stop", log))
    return {"was_running": True, "killed": killed, "log": log}


def kill(cfg=None, timeout=5):
    """SIGKILL, by PID, the master and every mfsmaster process holding a lock in DATA_PATH, then wait until they
    are gone. Returns the PIDs killed (none: nothing to do).

    The locks matter: a SIGSTOPped master's bgsaver child stays stopped after the master dies and keeps
    .bgwriter.lock, so the next `mfsmaster -a` fails (`bgsaver lock exists: EACCES`). Signalling directly is
    also ~2 s faster than `mfsmaster kill`, which polls for the lock owner's end.

    CLI Example: salt mfs1 mfsmaster.kill /mfsconf/mfsmaster.cfg"""
    data_path = _settings(cfg)["DATA_PATH"]
    locks = [os.path.join(data_path, name) for name in (".mfsmaster.lock", ".bgwriter.lock")]
    try:
        found = [_test(cfg)] + [mfsha_mfs.lock_holder(path) for path in locks if os.path.lexists(path)]
    except OSError as exc:  # a lock file that is not a regular file (mfsha_files.UnsafeFile)
        raise CommandExecutionError("cannot tell which mfsmaster holds a lock: {}".format(exc)) from None
    pids = sorted({pid for pid in found if pid and _alive_master(pid)})
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:  # exited meanwhile
            pass
    deadline = time.monotonic() + timeout
    while any(_alive_master(pid) for pid in pids):
        if time.monotonic() > deadline:
            raise CommandExecutionError("mfsmaster processes {} survive SIGKILL for {} s".format(pids, timeout))
        time.sleep(0.05)
    return pids


_sigkill = kill  # for stop(), whose `kill` argument hides this function


STOP_GRACE_S = 5  # after the stop/kill command returned (or timed out), how long the process may linger


def _gone(cfg):
    deadline = time.monotonic() + STOP_GRACE_S
    while _test(cfg) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def reload(cfg=None):
    """`mfsmaster reload` (SIGHUP: re-reads mfsmaster.cfg and mfsexports.cfg). Raises when not running
    (mfsmaster itself would exit 0 with `can't find process`)."""
    if _test(cfg) is None:
        raise CommandExecutionError("mfsmaster ({}) is not running; nothing to reload".format(_path(cfg)))
    res = _run(["mfsmaster", "-c", _path(cfg), "reload"], check=True)
    return {"log": mfsha_cmd.output(res)}


def _changelog_tail(data_path, since):
    """{version: line} of DATA_PATH's changelog files from `since` on (mfsha_mfs.changelog_tail)."""
    files, _ = mfsha_mfs.changelog_files(data_path, lambda fh: fh.read())  # a planted link: missing, as disk_state
    try:
        return mfsha_mfs.changelog_tail(files, int(since))
    except ValueError as exc:
        raise CommandExecutionError("changelogs in {}: {}".format(data_path, exc)) from None


def changelog_since(since, data_path="/var/lib/mfs"):
    """The complete changelog entries with version >= `since` in DATA_PATH's changelog files, one per version and
    without a gap (they end before the first missing version). Run on a metalogger (its changelog_ml*.mfs: its own
    copy of the master's change stream), it is what fills a master's changelog hole. Returns {"first", "last",
    "count", "lines"}; first/last None when there are none. Two different lines for one version raise."""
    tail = _changelog_tail(data_path, since)
    versions = sorted(tail)
    gap = next((i for i in range(1, len(versions)) if versions[i] != versions[i - 1] + 1), len(versions))
    versions = versions[:gap]
    return {"first": versions[0] if versions else None, "last": versions[-1] if versions else None,
            "count": len(versions), "lines": [tail[v] for v in versions]}


def changelog_digests(since, cfg=None):
    """DATA_PATH's own entries from version `since` on, holes and all, for the metalogger fill to compare with
    (mfsha_fill.verdict): {"data_path", "digests": [[version, mfsha_fill.digest(line)], ...]} in version order."""
    data_path = _settings(cfg)["DATA_PATH"]
    tail = _changelog_tail(data_path, since)
    return {"data_path": data_path, "digests": [[v, mfsha_fill.digest(tail[v])] for v in sorted(tail)]}


def missing_changes(version, cfg=None):
    """Does DATA_PATH hold every change before metadata version `version` (what the live master last reported)?
    A full disk or a lost write leaves the changelog's tail missing, and `mfsmaster -a` replays the rest without a
    word. Returns None, or {"from", "to", "data_path"}: the change ids a replay would not reach."""
    data_path, version = _settings(cfg)["DATA_PATH"], int(version)
    last = mfsha_mfs.last_change(data_path)
    if last is not None and last + 1 >= version:
        return None
    have = _disk(data_path)["version"]  # a metadata file newer than the changelogs, or a hole
    if have is not None and have >= version:
        return None
    return {"from": have, "to": version - 1, "data_path": data_path}


FILL = "changelog_ml.0.mfs"  # a metalogger's file name: `mfsmaster -a` merges these with its own changelogs


def add_changelog(lines, cfg=None):
    """Write changelog entries (from a metalogger: changelog_since) into DATA_PATH as changelog_ml.0.mfs, owned by
    WORKING_USER, so that the next `mfsmaster -a` replays them: the hole repair that worked in the lab. Replaces an
    earlier fill (give it every change from the replay start on: mfsmaster -a refused a fill file with a gap of its
    own, lab); refuses anything that is not a complete changelog entry. Returns data_path_ok() afterwards."""
    settings = _settings(cfg)
    data_path, user = settings["DATA_PATH"], settings["WORKING_USER"]
    if not isinstance(lines, list) or not all(isinstance(x, str) and x.endswith("\n") for x in lines):
        raise CommandExecutionError("add_changelog: lines must be complete changelog lines (ending in a newline)")
    try:
        versions = mfsha_mfs.changelog_versions(lines)
    except ValueError as exc:
        raise CommandExecutionError("add_changelog: {}".format(exc)) from None
    if len(versions) != len(lines):
        raise CommandExecutionError("add_changelog: every line must be a `<version>: ...` changelog entry")
    pw = pwd.getpwnam(user)
    path = os.path.join(data_path, FILL)
    for attempt in (1, 2):
        try:
            mfsha_files.write_durably(path, "".join(lines), owner=(pw.pw_uid, pw.pw_gid))
            break
        except OSError as exc:
            # a full disk: the reserve is there for this (released once, then the error stands)
            if attempt == 2 or exc.errno != errno.ENOSPC or not mfsha_mfs.release_reserve(data_path):
                raise CommandExecutionError("writing {} failed: {}".format(path, exc)) from None
    return data_path_ok(cfg)


def data_path_ok(cfg=None):
    """Can mfsmaster -a start from DATA_PATH? Checks ownership by WORKING_USER, a metadata file, no
    changelog hole and who holds the lock file.

    Returns {"ok", "problems": [str], "data_path", "user", "metadata_file", "metadata_version", "version",
    "changelogs": {name: [first, last]}, "hole", "lock_pid"}. lock_pid: process holding
    .mfsmaster.lock (a running master), None when free."""
    settings = _settings(cfg)
    data_path, user = settings["DATA_PATH"], settings["WORKING_USER"]
    out = {"ok": False, "problems": [], "data_path": data_path, "user": user, "metadata_file": None,
           "metadata_version": None, "version": None, "changelogs": {}, "hole": None, "lock_pid": None}
    problems = out["problems"]
    if not os.path.isdir(data_path):
        problems.append("DATA_PATH {} is not a directory".format(data_path))
        return out
    try:
        uid = pwd.getpwnam(user).pw_uid
    except KeyError:
        uid = None
        problems.append("WORKING_USER {} does not exist".format(user))
    if uid is not None:
        names = ["."] + [n for n in sorted(os.listdir(data_path)) if mfsha_mfs.MASTER_FILE_RE.match(n)]
        wrong = [n for n in names if os.lstat(os.path.join(data_path, n)).st_uid != uid]
        if wrong:
            problems.append("not owned by {} in {}: {}".format(user, data_path, ", ".join(wrong)))
    try:
        state = mfsha_mfs.disk_state(data_path)
    except (OSError, ValueError) as exc:
        problems.append("cannot read metadata: {}".format(exc))
        state = None
    if state:
        out.update(metadata_file=state["metadata_file"], metadata_version=state["metadata_version"],
                   version=state["version"], hole=state["hole"],
                   changelogs={n: list(r) for n, r in state["changelogs"].items()})
        problems.extend(mfsha_mfs.disk_problems(state, data_path))
    _check_lock(data_path, out)
    out["ok"] = not problems
    return out


def _check_lock(data_path, out):
    """data_path_ok's lock check: who holds .mfsmaster.lock (out["lock_pid"]); a holder that is no mfsmaster, or a
    lock that cannot be read, is one of out["problems"]."""
    lock = os.path.join(data_path, ".mfsmaster.lock")
    if os.path.lexists(lock):
        try:
            out["lock_pid"] = mfsha_mfs.lock_holder(lock)
        except OSError as exc:
            out["problems"].append(str(exc))
        comm = _proc_state(out["lock_pid"])[0]
        if out["lock_pid"] is not None and comm != "mfsmaster":
            out["problems"].append(f"{lock} is locked by pid {out['lock_pid']} ({comm or '?'}), not mfsmaster")


def _proc(pid, name):
    """/proc/PID/NAME's text, or "" when there is no such process."""
    try:
        with open(f"/proc/{pid}/{name}", "rb") as fh:
            return fh.read().decode(errors="replace")
    except OSError:
        return ""


def _proc_state(pid):
    """(comm, state letter) of a process, or (None, None)."""
    return mfsha_proc.stat_fields(_proc(pid, "stat"))


def _alive_master(pid):
    """True while `pid` is an mfsmaster process that is not a zombie."""
    return mfsha_proc.live_master(*_proc_state(pid))
