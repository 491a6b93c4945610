#!/usr/bin/python3
"""mfsha-tickle VIP DIR: after a takeover, reset the dead host's TCP connections to the VIP at once.

Managed by Salt (mfsha). Run in the background by MFSMaster start on the node that just took the VIP. DIR is the
replicated storage, where the mfsha beacon of each holder keeps its connections to the VIP in
.mfsha-peers.<node name> ("ip port local_port" lines, mfsha_storage.record_peers); every other node's file is read (this
node's own file lists its own, live connections). A client of a dead host waits for its next retransmission or
mfsmount's 10 s receive timeout before it reconnects; a tickle ACK makes it reconnect now (see _utils/mfsha_hold.py,
which computes the packets and which files count; this script does the I/O)."""
import errno
import os
import socket
import stat
import sys
import syslog
import time

# What to send and which files to read is mfsha_hold's (the formula's _utils, synced by Salt): MFSMaster and
# mfsha.restart_master name its directory; by hand, Salt's default minion cachedir is looked in.
sys.path.insert(0, os.environ.get("MFSHA_UTILS") or "/var/cache/salt/minion/extmods/utils")
from mfsha_hold import GAP_S, PEERS_LIMIT, ROUNDS, checksum, others_files, parse_peers, tickle_ack  # noqa: E402,F401


def read_peers(dfd, name, limit=PEERS_LIMIT):
    """The peers of file NAME in the directory of fd DFD. DIR belongs to the mfs user, who must not choose what
    root reads or where root sends packets: only root's regular file counts, opened without following a link and
    without blocking (a FIFO), and read up to LIMIT bytes (a link to /dev/zero never reaches the read).
    Raises Refused with the reason otherwise."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd)
    except OSError as exc:
        raise Refused(f"{name}: {exc.strerror}{' (a symlink)' if exc.errno == errno.ELOOP else ''}") from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != 0:
            raise Refused(f"{name}: not a regular file of root's (mode {st.st_mode:o}, uid {st.st_uid})")
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise Refused(f"{name}: over {limit} bytes")
    return parse_peers(data)


class Refused(Exception):
    """A peers file mfsha-tickle does not read (logged, skipped)."""


def others(directory, me):
    """(peers of the nodes other than `me`, [names read], [refusals]). A refused file is skipped: the other
    nodes' connections are still tickled."""
    peers, read, refused = set(), [], []
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in others_files(os.listdir(dfd), me):
            try:
                peers.update(read_peers(dfd, name))
                read.append(name)
            except Refused as exc:
                refused.append(str(exc))
    finally:
        os.close(dfd)
    return sorted(peers), read, refused


def main(argv):
    if len(argv) != 3:
        print("usage: mfsha-tickle VIP DIR", file=sys.stderr)
        return 2
    vip, directory = argv[1], argv[2]
    syslog.openlog("mfsha-tickle")
    try:
        peers, files, refused = others(directory, os.uname().nodename)
        for why in refused:
            syslog.syslog(syslog.LOG_WARNING, f"refused {os.path.join(directory, why)}; skipped")
            print(f"mfsha-tickle: refused {os.path.join(directory, why)}; skipped", file=sys.stderr)
        if peers:
            sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
            sock.bind((vip, 0))
            for n in range(ROUNDS):
                for ip, port, lport in peers:
                    sock.sendto(tickle_ack(vip, lport, ip, port), (ip, 0))
                if n < ROUNDS - 1:
                    time.sleep(GAP_S)
    except (OSError, ValueError) as exc:
        syslog.syslog(syslog.LOG_ERR, f"tickling the recorded peers of {vip} in {directory} failed: {exc}")
        print(f"mfsha-tickle: {exc}", file=sys.stderr)
        return 1
    syslog.syslog(f"sent tickle ACKs to {len(peers)} connection(s) of {vip} from {', '.join(files) or 'no file'}: "
                  + " ".join(f"{ip}:{port}->{lport}" for ip, port, lport in peers))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
