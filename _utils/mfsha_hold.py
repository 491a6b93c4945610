"""The hold of a hung master's closing segments and the tickles that make clients reconnect at once: what to write
and what to run, computed here; mfsha.restart_master, the beacon's record_peers and mfsha-tickle do the I/O.

A client of a killed master learns of the kill from its FIN/RST; mfsmount reconnects at once and then every 2 s,
so a reset it sees before the new master listens costs it ~2 s. The hold drops those segments (nft, expiring by
itself), and once the new master listens the held connections are tickled: an ACK with sequence and
acknowledgement 0 (as CTDB sends) is out of window for the client, which answers with its real numbers; this node's
kernel has no such connection any more and answers with a RST, so the client reconnects now. After a host death
the survivor tickles the dead holder's connections, which the holder recorded on the replicated storage.
No Salt and no I/O here: unit-tested directly.
"""
import socket
import struct

HOLD_TABLE = "mfsha_hold"  # nft table of hold_rules, in this node's network namespace
HOLD_MAX_S = 20  # the hold's own expiry: a minion that dies mid-restart leaves no dropped FIN/RST behind
PEERS_PREFIX = ".mfsha-peers."  # + the node name, on the replicated storage: what the survivor tickles
PEERS_LIMIT = 1 << 20  # bytes of a peers file read: ~40000 connections, more than a master serves
ROUNDS, GAP_S = 3, 0.6  # Linux answers at most one out-of-window segment per connection every 0.5 s


def hold_rules(ports, seconds=HOLD_MAX_S):
    """nft script dropping this node's outgoing FIN and RST from `ports` for at most `seconds` (set elements that
    expire by themselves). Declared, deleted, made anew: a table left by an earlier run never doubles its rule."""
    elements = ", ".join(f"{int(p)} timeout {int(seconds)}s" for p in ports)
    return (f"table inet {HOLD_TABLE}\ndelete table inet {HOLD_TABLE}\n"
            f"table inet {HOLD_TABLE} {{\n  set ports {{ type inet_service; flags timeout; }}\n"
            f"  chain out {{ type filter hook output priority 0;\n"
            f"    tcp sport @ports tcp flags & (fin | rst) != 0 drop; }}\n}}\n"
            f"add element inet {HOLD_TABLE} ports {{ {elements} }}\n")


HOLD_COMMAND = ["nft", "-f", "-"]  # reads hold_rules on stdin
LIFT_COMMAND = ["nft", "delete", "table", "inet", HOLD_TABLE]


TCP_ESTABLISHED = "01"


def vip_peers(proc_net_tcp, vip):
    """[(peer_ip, peer_port, local_port)] of the ESTABLISHED connections to `vip` in /proc/net/tcp text, sorted.
    Addresses there are hex in host byte order, ports hex in network order."""
    want = socket.inet_aton(vip)
    out = set()
    for line in proc_net_tcp.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 4 or parts[3] != TCP_ESTABLISHED:
            continue
        (lip, lport), (rip, rport) = (p.split(":") for p in parts[1:3])
        if struct.pack("=I", int(lip, 16)) == want:
            out.add((socket.inet_ntoa(struct.pack("=I", int(rip, 16))), int(rport, 16), int(lport, 16)))
    return sorted(out)


def held_peers(peers, ports):
    """The connections to the VIP (vip_peers: (ip, port, local_port)) that the hold of `ports` covers."""
    return [p for p in peers if p[2] in ports]


def orphans_command(ports):
    """`ss -K` of the old master's orphan sockets on `ports` (its FIN still unanswered under the hold)."""
    expr = " or ".join(f"sport = :{p}" for p in ports)
    return ["ss", "-K", "-t", "-n", "state", "fin-wait-1", "state", "closing", "state", "last-ack", f"( {expr} )"]


def orphans_reset(ss_output):
    """How many sockets `ss -K` reset: one line each under its header."""
    return max(len(ss_output.splitlines()) - 1, 0)


def peers_text(peers):
    """A peers file's content: one "ip port local_port" line per connection, as mfsha-tickle reads them."""
    return "".join(f"{ip} {port} {lport}\n" for ip, port, lport in peers)


def parse_peers(data):
    """The (ip, port, local_port) connections of a peers file's bytes; raises ValueError (OSError for an address
    that is not IPv4) on anything else."""
    peers = []
    for line in data.decode("ascii").splitlines():
        ip, port, lport = line.split()
        socket.inet_aton(ip)
        peers.append((ip, int(port), int(lport)))
    return peers


def peers_file(node):
    """The peers file name of heartbeat node `node` (its uname -n)."""
    return PEERS_PREFIX + node


def others_files(names, me):
    """Of a directory's `names`, the peers files of the nodes other than `me`, sorted: this node's own file lists
    its own, live connections, and a `.tmp` name is a writer's leftover."""
    return sorted(n for n in names if n.startswith(PEERS_PREFIX) and n != peers_file(me) and not n.endswith(".tmp"))


def checksum(data):
    """The Internet checksum (RFC 1071) of `data`."""
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
