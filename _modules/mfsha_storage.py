"""mfsha's chores on the shared storage, root's work in a directory the mfs user owns: the first metadata of a new
DATA_PATH (seed_metadata), the free-space reserve for a master that fills it (keep_reserve) and the record of the
VIP's connections that the survivor of a host death tickles (record_peers). Every file goes through mfsha_files:
no link there is ever followed.
"""
import glob
import grp
import importlib
import logging
import os
import pwd
import stat

import mfsha_files  # _utils/: Salt's loader puts it on sys.path while this module loads
import mfsha_hold
import mfsha_mfs
from salt.exceptions import CommandExecutionError

# A running minion keeps a module's first import; the synced _utils of an upgrade must load too (mfsha_mfs uses
# mfsha_files: that one first).
for _mod in (mfsha_files, mfsha_mfs, mfsha_hold):
    importlib.reload(_mod)

__virtualname__ = "mfsha_storage"
log = logging.getLogger(__name__)


def __virtual__():
    return __virtualname__


METADATA_GLOBS = ("metadata.mfs", "metadata.mfs.back", "metadata.mfs.back.*", "changelog.*.mfs")


def has_metadata(path):
    """True when `path` already holds MooseFS metadata or changelogs (never to be overwritten)."""
    return any(glob.glob(os.path.join(path, g)) for g in METADATA_GLOBS)


def seed_metadata(data_path, legacy_path="/var/lib/mfs", empty="/var/lib/mfs/metadata.mfs.empty", user="mfs",
                  group="mfs", test=False):
    """Give an empty DATA_PATH its first metadata. Never touches a DATA_PATH that holds metadata.

    An existing single master's metadata in `legacy_path` is migrated (metadata, changelogs, sessions, stats);
    otherwise a new cluster starts from the packaged empty metadata. Returns what was (or would be) done.
    Both directories are the mfs user's: every file is copied through mfsha_files (a link or FIFO in either is
    refused with its path, a link at a destination replaced, never followed; the copy is chowned by its fd).
    """
    if has_metadata(data_path):
        return {"action": "none", "files": []}
    legacy = [f for g in METADATA_GLOBS + ("sessions.mfs", "stats.mfs", "chart.mfs")
              for f in sorted(glob.glob(os.path.join(legacy_path, g)))]
    if any(os.path.basename(f).startswith("metadata.mfs") for f in legacy):
        action, pairs = "migrated", [(f, os.path.join(data_path, os.path.basename(f))) for f in legacy]
    else:
        if not os.path.exists(empty):
            raise CommandExecutionError(f"mfsha: cannot seed {data_path}: {empty} is missing (moosefs-master)")
        action, pairs = "seeded", [(empty, os.path.join(data_path, "metadata.mfs"))]
    if not test:
        owner = (pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid)
        for src, dst in pairs:
            try:
                mfsha_files.copy_file(src, dst, owner=owner, mode=0o640)
            except OSError as exc:
                raise CommandExecutionError(f"mfsha: cannot seed {data_path}: {exc}") from None
    return {"action": action, "files": [dst for _, dst in pairs]}


def record_peers(vip, mountpoint, proc="/proc/net/tcp"):
    """Keep `<mountpoint>/.mfsha-peers.<node name>` equal to this node's ESTABLISHED connections to the VIP ("ip
    port local_port" lines; rewritten only when they change, durably). After a host death
    the survivor's MFSMaster start sends each connection of the dead node's file a tickle ACK (mfsha-tickle):
    without it a client notices the dead master only after mfsmount's 10 s receive timeout. One file per node, so
    the survivor, which starts recording as soon as it holds VIP and storage, never overwrites what it has to
    read. The storage is the mfs user's: the old file is read only if it is root's regular file, else (a planted
    link, a FIFO) the refusal is logged and the file replaced (mfsha_files: never followed). Returns the number of
    peers."""
    with open(proc, encoding="ascii") as fh:
        peers = mfsha_hold.vip_peers(fh.read(), vip)
    text = mfsha_hold.peers_text(peers)
    path = os.path.join(mountpoint, mfsha_hold.peers_file(os.uname().nodename))  # heartbeat's node name: uname -n
    try:
        if mfsha_files.read_regular(path, limit=1 << 20, owned=True) == text:
            return len(peers)
    except FileNotFoundError:
        pass
    except mfsha_files.UnsafeFile as exc:
        log.warning("mfsha: %s; it is replaced", exc)
    mfsha_files.write_durably(path, text)
    return len(peers)


def keep_reserve(mountpoint, size_mb):
    """Set `size_mb` MiB aside in <mountpoint>/.mfsha-reserve (root's, preallocated) while twice that is free, so
    that a master which fills its storage can be given room to replay and log again (restart_master releases it).
    The beacon calls this on the holder each look; it is an lstat unless the file is missing. The storage is the
    mfs user's: a reserve that is not a regular file raises UnsafeFile, and the file is made through mfsha_files
    (O_EXCL temporary file, never a link's target). Returns its size."""
    size = int(size_mb) << 20
    if not size:
        return 0
    st = mfsha_files.lstat_in(mountpoint, mfsha_mfs.RESERVE)
    if st is not None:
        if not stat.S_ISREG(st.st_mode):
            raise mfsha_files.UnsafeFile(os.path.join(mountpoint, mfsha_mfs.RESERVE), "is not a regular file")
        return st.st_size
    fs = os.statvfs(mountpoint)
    if fs.f_bavail * fs.f_frsize < 2 * size:
        mfsha_files.remove_leftover_tmp(mountpoint, mfsha_mfs.RESERVE)  # a crash's half-made reserve eats space
        return 0
    mfsha_files.preallocate(os.path.join(mountpoint, mfsha_mfs.RESERVE), size)
    return size
