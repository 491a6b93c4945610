"""Faults of the metadata storage: it fills up under a running master, a hole is cut into its changelog."""
import os
import signal
import time

from mfshalab.faults.common import host_path, resume_all, signal_master, wait_client, write
from mfshalab.faults.recovery import held_by, on_storage, operator_recovery
from mfshalab.formula import write_durably
from mfshalab.hosts import LabError, wait_for

FILL = ".mfsha-fault-fill"


def free_space(lab, mnt):
    """Remove the fill file wherever the storage is (or mounted for it on a live master)."""
    node = held_by(lab) or next(m for m in lab.masters if lab.host(m).alive())
    on_storage(lab, node, mnt, lambda path: os.path.exists(f"{path}/{FILL}") and os.unlink(f"{path}/{FILL}"))


def f_disk_full(lab, ctx):
    """The metadata file system (storage mountpoint) fills up on the active node; client writes during it, so the
    master's changelog lacks them; then mfsmaster crashes while it is full. The loop must give the storage its
    reserve back and copy the missing changes from the metalogger before `-a` (which would serve without them).
    Space is freed after LIMIT s; if client I/O is still not back 30 s later, the operator recovery from the
    metalogger runs (see the notes)."""
    node, mnt = ctx["node"], lab.cluster_pillar()["storage"]["mountpoint"]
    h = lab.host(node)
    fill = f"{mnt}/{FILL}"
    reserve = host_path(lab, node, f"{mnt}/.mfsha-reserve")
    wait_for("the beacon's reserve on the storage", lambda: os.path.exists(reserve), 30)
    ctx["notes"].append(f"reserve: {os.stat(reserve).st_size} bytes")
    ctx["undo"].append(lambda: free_space(lab, mnt))
    h.run(f"fallocate -l $(($(df --output=avail -B1 {mnt} | tail -1) - 65536)) {fill}; "
          f"dd if=/dev/zero of={fill} bs=4k oflag=append conv=notrunc 2>/dev/null; true", timeout=60)
    ctx["notes"].append("df while full: " + h.run(["df", "-B1", "--output=avail", mnt], timeout=10)
                        .stdout.split()[-1] + " bytes free")
    try:
        ctx["extra"] = write(lab, "during-full")
        ctx["notes"].append("client writes while full: ok")
    except LabError as e:
        ctx["notes"].append(f"client writes while full failed: {str(e)[-300:]}")
    signal_master(lab, node, signal.SIGKILL)
    rto = wait_client(lab, ctx["t0"], ctx["limit"])
    ctx["observed"]["reserve_released"] = not os.path.exists(reserve)
    if rto is None:
        ctx["notes"].append(f"not serving after {ctx['limit']} s while full; space freed")
        for undo in ctx["undo"]:
            undo()
        ctx["undo"].clear()
        rto = wait_client(lab, ctx["t0"], ctx["limit"] + 30)
        if rto is None:
            rto = operator_recovery(lab, ctx, mnt)
    return rto


def changelog_hole(data_dir):
    """Cut the middle third of the replayable entries out of changelog.0.mfs (what CHANGELOG_SAVE_MODE 0 lost in 1
    of 5 kill -9 crashes in the lab): `mfsmaster -a` then stops at `hole in change files`. Returns the removed
    version range."""
    path = os.path.join(data_dir, "changelog.0.mfs")
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    entries = [i for i, line in enumerate(lines) if line.split(b":", 1)[0].isdigit()]
    if len(entries) < 6:
        raise LabError(f"changelog.0.mfs has only {len(entries)} entries: no hole to make")
    cut = entries[len(entries) // 3: 2 * len(entries) // 3]
    gone = (lines[cut[0]].split(b":")[0].decode(), lines[cut[-1]].split(b":")[0].decode())
    st, cut = os.stat(path), set(cut)
    write_durably(path, b"\n".join(line for i, line in enumerate(lines) if i not in cut), (st.st_uid, st.st_gid),
                  st.st_mode & 0o7777)
    return gone


def f_changelog_hole(lab, ctx):
    """mfsmaster hangs (SIGSTOP, so nothing writes), a hole is cut into its changelog, then it dies (kill -9).
    The loop's `mfsmaster -a` meets the hole and fills it from the metalogger's changelog. If client I/O is not
    back after LIMIT s, the operator recovery from the metalogger runs on whichever node holds the storage; the
    record says so."""
    node, mnt = ctx["node"], lab.cluster_pillar()["storage"]["mountpoint"]
    lab.write_files(n=20, size=4096, subdir=f"faults/changelog-{time.time_ns()}")  # entries to cut
    ctx["undo"].append(lambda: resume_all(lab))
    signal_master(lab, node, signal.SIGSTOP)
    gone = changelog_hole(host_path(lab, node, mnt))
    ctx["notes"].append(f"changelog entries {gone[0]}..{gone[1]} removed")
    signal_master(lab, node, signal.SIGKILL)
    rto = wait_client(lab, ctx["t0"], ctx["limit"])
    if rto is None:
        rto = operator_recovery(lab, ctx, mnt)
    return rto
