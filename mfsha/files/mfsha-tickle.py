#!/usr/bin/python3
"""mfsha-tickle VIP DIR: after a takeover, reset the dead host's TCP connections to the VIP at once.

Managed by Salt (mfsha). Run in the background by MFSMaster start on the node that just took the VIP. DIR is the
replicated storage, where the mfsha beacon of each holder keeps its connections to the VIP in
.mfsha-peers.<node name> ("ip port local_port" lines, mfsha.record_peers); every other node's file is read (this
node's own file lists its own, live connections). A client of a dead host waits for its next retransmission or
mfsmount's 10 s receive timeout before it reconnects. A tickle ACK (sequence and acknowledgement 0, as CTDB sends)
is out of window for the client, which answers with its real numbers; this node's kernel has no such connection
and answers that with a RST, so the client reconnects now.
Three rounds, 0.6 s apart: Linux answers at most one out-of-window segment per connection every 0.5 s."""
import os
import socket
import struct
import sys
import syslog
import time

ROUNDS, GAP_S = 3, 0.6
PREFIX = ".mfsha-peers."


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def tickle_ack(src, sport, dst, dport):
    """TCP header (no options) of an ACK with seq 0 and ack 0 from src:sport to dst:dport, checksum set."""
    head = struct.pack("!HHIIBBHHH", sport, dport, 0, 0, 5 << 4, 0x10, 1024, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(head))
    return head[:16] + struct.pack("!H", checksum(pseudo + head)) + head[18:]


def read_peers(path):
    peers = []
    with open(path, encoding="ascii") as fh:
        for line in fh:
            ip, port, lport = line.split()
            socket.inet_aton(ip)
            peers.append((ip, int(port), int(lport)))
    return peers


def others(directory, me):
    """Paths of the peers files of the nodes other than `me`. Only root's (the minion's) files count: DIR belongs
    to the mfs user, who must not choose where root sends packets."""
    own = PREFIX + me
    paths = [os.path.join(directory, n) for n in os.listdir(directory)
             if n.startswith(PREFIX) and n != own and not n.endswith(".tmp")]
    return sorted(p for p in paths if os.stat(p).st_uid == 0)


def main(argv):
    if len(argv) != 3:
        print("usage: mfsha-tickle VIP DIR", file=sys.stderr)
        return 2
    vip, directory = argv[1], argv[2]
    syslog.openlog("mfsha-tickle")
    try:
        files = others(directory, os.uname().nodename)
        peers = sorted({p for path in files for p in read_peers(path)})
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
