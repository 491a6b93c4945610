"""Security faults on the lab (issue 21), in the catalogue as symlink_in_data_path; test_symlinks.py uses the pieces.

The storage (DATA_PATH) belongs to the mfs user, so mfs (or a compromised mfsmaster) can plant a symlink at any name
there. Root must never write, truncate, chown or read through one: the helpers here plant a link at every name
root writes on the storage, each to its own bait file outside the storage (root's, 0600, random content), and
fingerprint the baits (sha256, owner, mode) so a test can show they stayed as they were.
"""
import hashlib
import os
import stat

from mfshalab.faults.common import host_path
from mfshalab.faults.storage import f_disk_full, free_space
from mfshalab.formula import tmp_name
from mfshalab.hosts import LabError, wait_for

BAIT_DIR = "/var/lib/mfsha-bait"  # on the host's own overlay: outside the storage
WAS_FULL, RESERVE, FILL = ".mfsha-was-full", ".mfsha-reserve", "changelog_ml.0.mfs"


def nodename(lab, node):
    """heartbeat's (and record_peers') name of NODE: uname -n inside it."""
    return lab.host(node).run(["uname", "-n"], timeout=10).stdout.strip()


def root_written(name):
    """The names root writes on the storage of a holder called NAME (uname -n): the peers file, the reserve, the
    full-disk marker, the metalogger fill, each with mfsha_files' temporary name and the old `.tmp` one."""
    out = []
    for base in (f".mfsha-peers.{name}", RESERVE, WAS_FULL, FILL):
        out += ([] if base == RESERVE else [base]) + [tmp_name(base), f"{base}.tmp"]
    return out  # the reserve itself: its file is kept by the beacon, so only its temporary names


def plant(lab, node, mnt, names):
    """As the mfs user on NODE: MNT/<name> a symlink to its own bait. Returns {name: bait path in the host}."""
    h = lab.host(node)
    h.run(["install", "-d", "-m", "0700", BAIT_DIR], timeout=10)
    baits = {}
    for name in names:
        bait = f"{BAIT_DIR}/{name.strip('.')}"
        h.run(f"head -c 4096 /dev/urandom > {bait} && chmod 0600 {bait}", timeout=10)
        h.run(["runuser", "-u", "mfs", "--", "ln", "-sfn", bait, f"{mnt}/{name}"], timeout=10)
        baits[name] = bait
    return baits


def fingerprint(lab, node, baits):
    """{bait: [sha256, uid, gid, mode]} of the bait files, read from the machine (never through the storage)."""
    out = {}
    for bait in baits.values():
        path = host_path(lab, node, bait)
        st = os.lstat(path)
        with open(path, "rb") as f:
            out[bait] = [hashlib.sha256(f.read()).hexdigest(), st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)]
    return out


def remove_planted(lab, node, mnt, baits):
    """Remove the links still on the storage (only links: what the formula wrote stays) and the baits."""
    for name, bait in baits.items():
        link = host_path(lab, node, f"{mnt}/{name}")
        if os.path.islink(link):
            os.unlink(link)
        if os.path.lexists(host_path(lab, node, bait)):
            os.unlink(host_path(lab, node, bait))


def minion_log(lab, node):
    return os.path.join(lab.rundir, node, "salt", "minion.log")


def log_mark(lab, node):
    path = minion_log(lab, node)
    return os.path.getsize(path) if os.path.exists(path) else 0


def refusals(lab, node, mark, mnt):
    """The holder's minion log lines since MARK that report a refused file on the storage."""
    with open(minion_log(lab, node), errors="replace") as f:
        f.seek(mark)
        return [line.strip()[:400] for line in f if "refused" in line and mnt in line]


def reserve_back(lab, node, mnt, timeout=60):
    """Wait until the beacon has remade the reserve: root's regular file."""
    def made():
        try:
            st = os.lstat(host_path(lab, node, f"{mnt}/{RESERVE}"))
        except FileNotFoundError:
            return False
        return stat.S_ISREG(st.st_mode) and st.st_uid == 0
    wait_for("the beacon's reserve back on the storage", made, timeout, interval=1)


def f_symlink_in_data_path(lab, ctx):
    """The mfs user plants a link to a root file outside the storage at every name root writes there (the issue's
    attack: `changelog_ml.0.mfs.tmp -> /etc/passwd`, then the master dies), and the storage fills up and mfsmaster
    crashes (f_disk_full): the loop releases the reserve (the full-disk marker), fills the changelog's tail from
    the metalogger (changelog_ml.0.mfs, chowned to mfs) and restarts; the beacon rewrites its peers file and, once
    space is back, remakes the reserve. The restarts refuse while the link at changelog_ml.0.mfs is there (the
    disk check does not read it) until the fill replaces it. Every bait must be unchanged; the refusals, with
    their reasons, are in the minion log."""
    node, mnt = ctx["node"], lab.cluster_pillar()["storage"]["mountpoint"]
    mark = log_mark(lab, node)
    baits = plant(lab, node, mnt, root_written(nodename(lab, node)))
    try:
        before = fingerprint(lab, node, baits)
        rto = f_disk_full(lab, ctx)
        free_space(lab, mnt)  # (idempotent) so that the beacon remakes the reserve through its planted temporary names
        if lab.active() == node:
            reserve_back(lab, node, mnt)
        after = fingerprint(lab, node, baits)
    finally:  # registered only now: f_disk_full runs the undo steps it finds when it frees the space itself
        ctx["undo"].append(lambda: remove_planted(lab, node, mnt, baits))
    ctx["observed"]["planted"] = sorted(baits)
    ctx["observed"]["baits_changed"] = sorted(b for b in before if after[b] != before[b])
    ctx["observed"]["refused"] = refusals(lab, node, mark, mnt)[:10]
    changed = ctx["observed"]["baits_changed"]
    ctx["notes"].append(f"{len(baits)} links planted by mfs; baits changed: {changed or 'none'}; refusals logged: "
                        f"{len(ctx['observed']['refused'])}")
    if after.keys() != before.keys():
        raise LabError(f"symlink_in_data_path: baits gone: {sorted(set(before) - set(after))}")
    return rto
