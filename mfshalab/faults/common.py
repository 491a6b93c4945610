"""The pieces every fault is made of: the failover loop's switch and book, signals to mfsmaster, the client's
probe and files, nft rules inside a host, a host's paths seen from the machine and the state after a fault."""
import fcntl
import json
import os
import signal
import time

from mfshalab.hosts import LabError, wait_for

FILE_SIZE, FILES = 64 * 1024, 5
NFT_TABLE = "mfsha_fault"


def maintenance(lab, on):
    p = lab.salt.run_cmd("mfsha.maintenance", "lab", "on" if on else "off")
    if p.returncode:
        raise LabError(f"salt-run mfsha.maintenance: {p.stderr.strip()}")


def loop_idle(lab, timeout=150):
    """Wait (bounded) until no recovery of the failover loop runs: the runner holds this flock while it acts."""
    path = os.path.join(lab.rundir, "salt", "cache", "mfsha", "lab.lock")

    def free():
        if not os.path.exists(path):
            return True
        with open(path) as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            fcntl.flock(fh, fcntl.LOCK_UN)
            return True
    wait_for("the failover loop's running recovery to end", free, timeout, interval=1)


def book_path(lab):
    """The loop's book of the lab's cluster: the runner's file in the lab Salt master's cachedir."""
    return os.path.join(lab.rundir, "salt", "cache", "mfsha", "lab.json")


def fresh_book(lab):
    """Forget the loop's history (restart budget, flap guard, maintenance): every fault is a first fault."""
    if os.path.exists(book_path(lab)):
        os.unlink(book_path(lab))


def loop_history(lab):
    """The loop's actions in the book, with their reasons."""
    if not os.path.exists(book_path(lab)):
        return []
    with open(book_path(lab)) as f:
        return json.load(f).get("history", [])


def loop_actions(lab, since):
    """The loop's actions as report lines: what, on which node, its result, when it was decided (seconds after
    SINCE, a time.time()) and its reason."""
    return [f"{e['action']} {e.get('node')} {e['result']} at {e['time'] - since:.1f} s: {e['reason']}"
            for e in loop_history(lab)]


def signal_master(lab, node, sig):
    pids = master_daemons(lab, node)
    if not pids:
        raise LabError(f"no mfsmaster process on {node}")
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    return pids


def resume_all(lab):
    """SIGCONT every mfsmaster: a stopped master must never outlive its fault."""
    for m in lab.masters:
        for pid in lab.mfsmaster_pids(m):
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass


def master_daemons(lab, node):
    """PIDs of mfsmaster processes on NODE other than `mfsmaster ... test` (health checks)."""
    out = []
    for pid in lab.mfsmaster_pids(node):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except (FileNotFoundError, ProcessLookupError):
            continue
        if b"test" not in args:
            out.append(pid)
    return out


def wait_client(lab, t0, limit):
    """Seconds from T0 until one client create+write+fsync+read through the VIP works, or None after LIMIT s."""
    while time.monotonic() - t0 < limit:
        try:
            if lab.probe(timeout=max(1, int(limit - (time.monotonic() - t0)))):
                return round(time.monotonic() - t0, 2)
        except LabError:  # the probe sat in FUSE I/O past SIGKILL (no master): still not back
            pass
        time.sleep(0.1)
    return None


def write(lab, tag):
    return lab.write_files(n=FILES, size=FILE_SIZE, subdir=f"faults/{tag}-{time.time_ns()}")


def bytes_lost(lab, manifest, timeout=120, bad=None):
    """Bytes of acknowledged (fsync'ed) files that no longer read back identically (their paths into BAD)."""
    mismatch = lab.verify_files(manifest, timeout=timeout) if manifest else {}
    if bad is not None:
        bad.update(mismatch)
    return FILE_SIZE * len(mismatch)


def nft(host, rules):
    """Load an nft ruleset (a table of this module) inside HOST's network namespace."""
    host.run(["nft", "-f", "-"], input=rules, timeout=10)


def nft_clear(host):
    if host.alive() and host.run(["nft", "list", "table", "inet", NFT_TABLE], timeout=10, check=False).returncode == 0:
        host.run(["nft", "delete", "table", "inet", NFT_TABLE], timeout=10)


def host_path(lab, name, path):
    """PATH inside host NAME's mount namespace, seen from the machine."""
    return f"/proc/{lab.host(name).pid}/root{path}"


def final_state(lab, timeout=60, join_timeout=90):
    """After the fault is undone: who serves and whether both heartbeats joined (bounded waits: heartbeat gone from
    a node is the loop's to start again), e.g. 'serving on mfs-b'."""
    try:
        active = lab.wait_serving(timeout)
    except LabError:
        st = {m: lab.node_state(m) for m in lab.masters}
        return f"NOT serving: {json.dumps(st, sort_keys=True)}"
    down = [m for m in lab.masters if not lab.host(m).alive()]
    if down:
        return f"serving on {active} ({', '.join(down)} down)"
    try:
        wait_for("both heartbeats joined", lab.joined, join_timeout, interval=1)
        return f"serving on {active}"
    except LabError:
        return f"serving on {active} (heartbeats not joined)"


def salt_master_running(lab):
    return any("/salt-master -c " in c for c in lab.host(lab.salt_host).processes().values())
