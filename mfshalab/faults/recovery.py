"""What the operator does when the loop cannot undo a fault alone (the documented recoveries): the loop in
maintenance first, then hb_takeover or the metalogger's changelogs copied onto the storage, as README tells."""
import glob
import os
import shutil
import time

from mfshalab.faults.common import host_path, loop_idle, maintenance, wait_client
from mfshalab.hosts import LabError, wait_for


def on_storage(lab, node, mnt, fn):
    """fn(path of MNT seen from the machine) with the shared storage mounted on NODE: as it is when NODE holds it,
    else mounted for the call only (nobody holds it: heartbeat gave the group up). Returns whether it was held."""
    held = lab.node_state(node)["storage"]
    if not held:
        lab.host(node).run(["mount", lab.device, mnt], timeout=30)
    try:
        fn(host_path(lab, node, mnt))
    finally:
        if not held:
            lab.host(node).run(["umount", mnt], timeout=30)
    return held


def recover_from_metalogger(lab, node, mnt, metalogger="mfs-cs1"):
    """The manual recovery of a changelog hole (it worked in the lab): the metalogger's changelog_ml*.mfs into
    DATA_PATH, then mfsmaster -a. NODE holds the storage: restart through the module. Nobody holds it (heartbeat gave
    the group up after MFSMaster failed to start on both): mount it on NODE for the copy only, then `hb_takeover all`
    there. Returns what it did."""
    src = sorted(glob.glob(host_path(lab, metalogger, "/var/lib/mfs/changelog_ml*.mfs")))

    def copy(dst):
        st = os.stat(dst)
        for old in glob.glob(os.path.join(dst, "changelog_ml*.mfs")):  # a previous recovery's copies are stale
            os.unlink(old)
        for f in src:
            shutil.copy(f, dst)
            os.chown(os.path.join(dst, os.path.basename(f)), st.st_uid, st.st_gid)
    held = on_storage(lab, node, mnt, copy)
    how = "hb_takeover all (nobody held the group)"
    if held:
        ret = lab.salt.cmd(node, "mfsha.restart_master", f"cfg={mnt}/mfsmaster.cfg", "timeout=60", timeout=90)
        if isinstance(ret.get(node), dict) and ret[node].get("started"):  # else its refusal says why
            how = "mfsha.restart_master"
        elif held_by(lab) == node:
            raise LabError(f"mfsha.restart_master on {node} after the metalogger copy: {ret}")
        else:  # heartbeat gave the group up meanwhile (its own start failed): the copy is on the storage already
            how = f"hb_takeover all (heartbeat gave the group up during the restart: {ret})"
    if how.startswith("hb_takeover"):
        take_over(lab, node)
    return f"{', '.join(os.path.basename(f) for f in src)} copied to {node}, {how}"


def take_over(lab, node, tries=4):
    """Operator: `hb_takeover all` on NODE until it holds the group (peer dead: heartbeat restart on NODE). A failed
    start leaves heartbeat's own `sleep 30; hb_standby` pending, which swallows a takeover asked meanwhile ("Standby in progress- new request
    ignored"), hence the retries."""
    peer = lab.peer(node)
    if not lab.host(peer).alive():
        # hb_takeover asks the peer to hand over; with the peer dead only a heartbeat restart (alone after initdead,
        # it acquires every resource) brings the group back
        lab.host(node).run(["/etc/init.d/heartbeat", "restart"], timeout=120)
        init = lab.cluster_pillar()["heartbeat"]["initdead"]
        return wait_for(f"{node} taking the group after a heartbeat restart", lambda: lab.active() == node,
                        init + 60, interval=1)
    for _ in range(tries):
        lab.host(node).run(["/usr/share/heartbeat/hb_takeover", "all"], timeout=30)
        try:
            return wait_for(f"{node} taking the group over", lambda: lab.active() == node, 40, interval=1)
        except LabError:
            continue
    raise LabError(f"hb_takeover all on {node}: the group is still not held after {tries} tries")


def reset(lab):
    """Healthy again before a fault: dead hosts restarted, both heartbeats joined; when nobody holds the group (a
    failed start released it and heartbeat v1 never retries) the operator's hb_takeover on the preferred node.
    Returns what it had to do beyond lab.heal."""
    for n in lab.state["hosts"]:
        if not lab.host(n).alive():
            lab.restart(n)
    wait_for("both heartbeats joined", lab.joined, 150, interval=1)
    done = None
    if not held_by(lab):
        take_over(lab, lab.masters[0])
        done = f"nobody held the group: hb_takeover all on {lab.masters[0]}"
    lab.heal(timeout=180)
    return done


def held_by(lab):
    """The master holding the storage, None when nobody does (after settling 20 s: heartbeat may be moving it)."""
    end = time.monotonic() + 20
    while time.monotonic() < end:
        holder = next((m for m in lab.masters if lab.node_state(m)["storage"]), None)
        if holder:
            return holder
        time.sleep(1)
    return None


def hands_off(lab, ctx):
    """The operator's first step: the loop in maintenance (undone with the fault) and its running recovery ended."""
    maintenance(lab, True)
    ctx["undo"].append(lambda: maintenance(lab, False))
    loop_idle(lab)


def operator_recovery(lab, ctx, mnt):
    """Client I/O did not come back by itself: run the documented recovery (the record's notes say so), as an
    operator would: the loop in maintenance first (and its running recovery finished), so the two never race."""
    hands_off(lab, ctx)
    holder = held_by(lab)
    done = recover_from_metalogger(lab, holder or ctx["node"], mnt)
    ctx["observed"]["operator_recovery"] = done
    who = f"held by {holder}" if holder else "nobody holds the group"
    ctx["notes"].append(f"not back after {ctx['limit']} s ({who}); operator recovery at "
                        f"{round(time.monotonic() - ctx['t0'], 1)} s: {done}")
    return wait_client(lab, ctx["t0"], ctx["limit"] + 120)
