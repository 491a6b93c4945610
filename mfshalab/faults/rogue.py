"""The fault `rogue_metalogger` (issue 21 item 4), in the catalogue: a minion the metalogger targets
match answers mfsmaster.changelog_since with crafted changelog lines while the loop must fill a changelog hole. The
loop's fill must refuse (the crafted lines disagree with DATA_PATH and with the real metalogger), write nothing into
DATA_PATH and say which minion it refused; the operator recovery from the real metalogger then brings the service
back (the record says so).

The rogue is the client host (mfs-client): the pillar's metalogger targets are widened to it, and its synced
mfsmaster module is replaced by ROGUE_MODULE (on that minion only). Both are undone with the fault: the pillar
written back, `saltutil.sync_modules` restores the real module."""
import hashlib
import os
import signal
import time

from mfshalab.faults.common import host_path, resume_all, signal_master, wait_client
from mfshalab.faults.recovery import hands_off, held_by, on_storage, recover_from_metalogger
from mfshalab.faults.storage import changelog_hole
from mfshalab.formula import merge
from mfshalab.hosts import LabError, wait_for
from mfshalab.loop import Events

ROGUE = "mfs-client"
MARK = "UNLINK(1,rogue"  # in every crafted line
ROGUE_MODULE = '''"""A rogue metalogger (mfsha lab fault rogue_metalogger): crafted lines for every change asked for."""
__virtualname__ = "mfsmaster"


def __virtual__():
    return __virtualname__


def changelog_since(since, data_path="/var/lib/mfs"):
    since = int(since)
    lines = ["{}: 1795618038|UNLINK(1,rogue{})\\n".format(v, v) for v in range(since, since + 400)]
    return {"first": since, "last": since + 399, "count": 400, "lines": lines}
'''


def _ask_rogue(lab):
    ret = lab.salt.cmd(ROGUE, "mfsmaster.changelog_since", "since=1", timeout=30)
    return ret.get(ROGUE)


def _is_rogue(answer):
    return isinstance(answer, dict) and any(MARK in x for x in answer.get("lines") or [])


def install_rogue(lab):
    """ROGUE answers mfsmaster.changelog_since with crafted lines, and the pillar's metalogger targets match it.
    Returns the undo: the pillar written back and the real module synced again (once, however often it is called)."""
    old, undone = lab.pillar_overrides or {}, []

    def undo():
        if not undone:
            undone.append(True)
            lab.write_pillar(old)
            lab.refresh_pillar()
            restore_rogue(lab)
    try:
        targets = lab.cluster_pillar()["metaloggers"]["targets"] + [ROGUE]
        lab.write_pillar(merge(old, {"metaloggers": {"targets": targets}}))
        lab.refresh_pillar()
        ext = lab.salt.cmd(ROGUE, "config.get", "extension_modules", timeout=30).get(ROGUE)
        if not isinstance(ext, str) or not ext.startswith("/"):
            raise LabError(f"extension_modules of {ROGUE}: {ext!r}")
        lab.host(ROGUE).run(f"cat > {ext}/modules/mfsmaster.py", input=ROGUE_MODULE, timeout=10)
        lab.salt.cmd(ROGUE, "saltutil.refresh_modules", timeout=30)
        wait_for(f"{ROGUE}'s crafted changelog_since", lambda: _is_rogue(_ask_rogue(lab)), 60, interval=2)
    except BaseException:
        undo()
        raise
    return undo


def restore_rogue(lab):
    """The real mfsmaster module back on ROGUE (the master's file replaces the rogue's on sync)."""
    lab.salt.cmd(ROGUE, "saltutil.sync_modules", timeout=60)
    lab.salt.cmd(ROGUE, "saltutil.refresh_modules", timeout=30)
    # the real one may fail there (no metalogger data on the client): any answer but the crafted one
    wait_for(f"{ROGUE}'s real changelog_since", lambda: (lambda a: a is not None and not _is_rogue(a))(
        _ask_rogue(lab)), 60, interval=2)


def changelog_sums(path):
    """{name: sha256} of the changelog files in DATA_PATH (PATH seen from the machine)."""
    out = {}
    for name in sorted(os.listdir(path)):
        if name.startswith("changelog") and name.endswith(".mfs"):
            with open(os.path.join(path, name), "rb") as f:
                out[name] = hashlib.sha256(f.read()).hexdigest()
    return out


def crafted_in(path):
    """Changelog files in DATA_PATH holding a crafted line."""
    found = []
    for name in changelog_sums(path):
        with open(os.path.join(path, name), errors="replace") as f:
            if MARK in f.read():
                found.append(name)
    return found


def first_outcome(events, since, timeout):
    """The first mfsha/failover/<failed|restarted|moved|taken_over> event after SINCE (a time.time())."""
    done = ("mfsha/failover/failed", "mfsha/failover/restarted", "mfsha/failover/moved", "mfsha/failover/taken_over")

    def outcome():
        hits = [(t, d) for t, d in events.all() if t.startswith(done) and (d.get("timeline") or {}).get(
            "started", 0) >= since]
        return hits[0] if hits else None
    return wait_for("the failover loop's outcome", outcome, timeout, interval=0.5)


def prepare_rogue(lab, ctx):
    """Before the fault's clock starts (the catalogue's PREPARE): the event watcher and the rogue, both undone with
    it."""
    ctx["events"] = Events(lab, "rogue")
    ctx["undo"].append(ctx["events"].close)
    ctx["rogue_gone"] = install_rogue(lab)
    ctx["undo"].append(ctx["rogue_gone"])


def f_rogue_metalogger(lab, ctx):
    """The changelog hole of f_changelog_hole with a rogue metalogger answering (prepare_rogue): the loop's fill must
    refuse; then the operator recovery from the real metalogger."""
    node, mnt = ctx["node"], lab.cluster_pillar()["storage"]["mountpoint"]
    events, rogue_gone = ctx["events"], ctx["rogue_gone"]
    lab.write_files(n=20, size=4096, subdir=f"faults/rogue-{time.time_ns()}")  # entries to cut
    ctx["undo"].append(lambda: resume_all(lab))
    signal_master(lab, node, signal.SIGSTOP)
    data = host_path(lab, node, mnt)
    gone = changelog_hole(data)
    before, t_kill = changelog_sums(data), time.time()
    ctx["notes"].append(f"changelog entries {gone[0]}..{gone[1]} removed; {ROGUE} answers with crafted lines")
    signal_master(lab, node, signal.SIGKILL)
    tag, ev = first_outcome(events, t_kill, ctx["limit"])
    ctx["observed"].update(outcome=tag, reason=ev.get("reason"), refused_after_s=round(time.time() - t_kill, 1))
    hands_off(lab, ctx)  # maintenance on, the loop's running recovery ended: DATA_PATH as the loop left it
    on_storage(lab, node, mnt, lambda path: ctx["observed"].update(
        changelogs_unchanged=changelog_sums(path) == before, crafted_files=crafted_in(path)))
    rogue_gone()  # before the operator's recovery
    done = recover_from_metalogger(lab, held_by(lab) or node, mnt)
    ctx["observed"]["operator_recovery"] = done
    ctx["notes"].append(f"the loop: {tag}: {ev.get('reason')}; operator recovery: {done}")
    return wait_client(lab, ctx["t0"], ctx["limit"] + 120)
