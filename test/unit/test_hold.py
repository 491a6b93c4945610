"""restart_master's hold (mfsha_hold.hold_rules), applied with the real nft in a throwaway network namespace: a hung
master's clients must not see its connections close before the new master listens; and the rest of what
_utils/mfsha_hold.py computes for the hold and the tickles, from captured /proc/net/tcp."""
import subprocess
import sys
from pathlib import Path

import mfsha_hold

# In the namespace: a connection to 127.0.0.1:9421 whose server side is aborted (RST, as the kernel does when a
# killed master leaves unread data) while held, and then written to once the hold is lifted.
SCRIPT = r"""
import socket, struct, subprocess, sys
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
rules = sys.argv[1]
for _ in range(2):  # applied twice: one rule, never two
    subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True)
listed = subprocess.run(["nft", "list", "table", "inet", "mfsha_hold"], capture_output=True, text=True).stdout
print("rules", listed.count("drop"))
srv = socket.socket(); srv.bind(("127.0.0.1", 9421)); srv.listen()
cli = socket.create_connection(("127.0.0.1", 9421)); conn, _ = srv.accept()
cli.sendall(b"request")  # unread by the server: its close sends a RST
conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
conn.close(); srv.close()
cli.settimeout(0.5)
try:
    print("held", cli.recv(1))
except socket.timeout:
    print("held", "no reset")
subprocess.run(["nft", "delete", "table", "inet", "mfsha_hold"], check=True)
cli.sendall(b"again")  # the server side is gone: now its kernel answers with a RST
cli.settimeout(2)
try:
    print("released", cli.recv(1))
except ConnectionResetError:
    print("released", "reset")
"""


def test_hold_drops_the_reset_until_released():
    rules = mfsha_hold.hold_rules([9419, 9421], seconds=20)
    p = subprocess.run(["unshare", "--net", sys.executable, "-c", SCRIPT, rules], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["rules 1", "held no reset", "released reset"], (p.stdout, p.stderr)


def test_hold_expires_by_itself():
    """A minion that dies mid-restart leaves nothing dropped: the set's elements time out."""
    script = ("import subprocess, sys, time\n"
              "subprocess.run(['nft', '-f', '-'], input=sys.argv[1], text=True, check=True)\n"
              "before = subprocess.run(['nft', 'list', 'set', 'inet', 'mfsha_hold', 'ports'], capture_output=True,"
              " text=True).stdout\n"
              "time.sleep(1.5)\n"
              "after = subprocess.run(['nft', 'list', 'set', 'inet', 'mfsha_hold', 'ports'], capture_output=True,"
              " text=True).stdout\n"
              "print('9421' in before, '9421' in after)\n")
    p = subprocess.run(["unshare", "--net", sys.executable, "-c", script, mfsha_hold.hold_rules([9421], seconds=1)],
                       capture_output=True, text=True, timeout=30)
    assert (p.returncode, p.stdout.strip()) == (0, "True False"), p.stderr


# ---- the VIP's TCP peers: /proc/net/tcp of the lab's VIP holder (captured) --------------------------------------

def test_vip_peers_are_the_established_connections_to_the_vip():
    text = (Path(__file__).parent / "fixtures" / "net" / "proc_net_tcp-active").read_text()
    # listeners (0A), the node's own probes in TIME_WAIT (06) and its outgoing connections are not peers
    assert mfsha_hold.vip_peers(text, "10.99.0.10") == [("10.99.0.21", 44812, 9419), ("10.99.0.21", 51300, 9420),
                                                        ("10.99.0.22", 50934, 9420), ("10.99.0.31", 33090, 9421)]
    assert mfsha_hold.vip_peers(text, "10.99.0.11") == [("10.99.0.2", 4505, 52686), ("10.99.0.2", 4506, 36906)]
    assert mfsha_hold.vip_peers(text, "10.99.0.99") == []


def test_what_the_release_runs_and_what_the_tickle_reads():
    assert mfsha_hold.LIFT_COMMAND == ["nft", "delete", "table", "inet", "mfsha_hold"]
    assert mfsha_hold.orphans_command([9419, 9421]) == [
        "ss", "-K", "-t", "-n", "state", "fin-wait-1", "state", "closing", "state", "last-ack",
        "( sport = :9419 or sport = :9421 )"]
    assert mfsha_hold.orphans_reset("Recv-Q Send-Q Local Address:Port Peer Address:Port\n0 0 a b\n0 0 c d\n") == 2
    assert mfsha_hold.orphans_reset("") == 0
    peers = [("10.99.0.21", 51300, 9420), ("10.99.0.31", 33090, 9421)]
    assert mfsha_hold.held_peers(peers, [9421]) == [("10.99.0.31", 33090, 9421)]
    text = mfsha_hold.peers_text(peers)
    assert text == "10.99.0.21 51300 9420\n10.99.0.31 33090 9421\n"
    assert mfsha_hold.parse_peers(text.encode()) == peers  # what the holder writes is what the survivor reads
    names = [".mfsha-peers.mfs-a", ".mfsha-peers.mfs-b", ".mfsha-peers.mfs-b.tmp", "metadata.mfs", ".mfsha-reserve"]
    assert mfsha_hold.others_files(names, "mfs-a") == [".mfsha-peers.mfs-b"]
