"""restart_master's hold (mfsha.hold_rules), applied with the real nft in a throwaway network namespace: a hung
master's clients must not see its connections close before the new master listens."""
import subprocess
import sys

from unit_support import load_salt_module

mfsha = load_salt_module("_modules/mfsha.py")

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
    rules = mfsha.hold_rules([9419, 9421], seconds=20)
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
    p = subprocess.run(["unshare", "--net", sys.executable, "-c", script, mfsha.hold_rules([9421], seconds=1)],
                       capture_output=True, text=True, timeout=30)
    assert (p.returncode, p.stdout.strip()) == (0, "True False"), p.stderr
