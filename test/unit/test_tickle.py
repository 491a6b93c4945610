"""mfsha-tickle (mfsha/files/mfsha-tickle.py): the tickle ACK it builds and its failures. Its effect (a client of a
dead host reconnects at once) is checked on the lab: test_lab_failover.py host death."""
import importlib.util
import os
import socket
import struct

from unit_support import REPO

spec = importlib.util.spec_from_file_location("mfsha_tickle", REPO / "mfsha" / "files" / "mfsha-tickle.py")
tickle = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tickle)


def test_tickle_ack_is_a_valid_tcp_ack_with_zero_numbers():
    seg = tickle.tickle_ack("10.99.0.10", 9421, "10.99.0.31", 33090)
    sport, dport, seq, ack, off, flags, win, csum, urg = struct.unpack("!HHIIBBHHH", seg)
    assert (sport, dport, seq, ack, off >> 4, flags, urg) == (9421, 33090, 0, 0, 5, 0x10, 0)
    pseudo = socket.inet_aton("10.99.0.10") + socket.inet_aton("10.99.0.31") + struct.pack("!BBH", 0, 6, len(seg))
    assert tickle.checksum(pseudo + seg) == 0  # what the receiver checks
    assert csum != 0


def test_checksum_of_an_odd_length_and_a_known_value():
    assert tickle.checksum(b"\x00\x01\xf2\x03\xf4\xf5\xf6\xf7") == 0x220d  # RFC 1071 section 3 example
    assert tickle.checksum(b"\xff") == tickle.checksum(b"\xff\x00")


def test_reads_every_other_nodes_file_and_not_its_own(tmp_path, monkeypatch):
    me = tickle.os.uname().nodename
    (tmp_path / f".mfsha-peers.{me}").write_text("10.99.0.31 40000 9421\n")  # live: never tickled
    (tmp_path / ".mfsha-peers.dead-node").write_text("10.99.0.31 33090 9421\n10.99.0.21 51300 9420\n")
    (tmp_path / ".mfsha-peers.dead-node.tmp").write_text("junk\n")
    (tmp_path / ".mfsha-peers.planted").write_text("192.0.2.1 22 9421\n")
    os.chown(tmp_path / ".mfsha-peers.planted", 420, 420)  # not root's: refused
    peers, read, refused = tickle.others(str(tmp_path), me)
    assert read == [".mfsha-peers.dead-node"] and peers == [("10.99.0.21", 51300, 9420), ("10.99.0.31", 33090, 9421)]
    assert refused == [".mfsha-peers.planted: not a regular file of root's (mode 100644, uid 420)"]
    sent = []

    class Raw:
        def __init__(self, *args):
            assert args == (tickle.socket.AF_INET, tickle.socket.SOCK_RAW, tickle.socket.IPPROTO_TCP)

        def bind(self, addr):
            assert addr == ("10.99.0.10", 0)

        def sendto(self, seg, addr):
            sent.append((addr[0], struct.unpack("!HH", seg[:4])))
    monkeypatch.setattr(tickle.socket, "socket", Raw)
    monkeypatch.setattr(tickle.time, "sleep", lambda s: None)
    assert tickle.main(["mfsha-tickle", "10.99.0.10", str(tmp_path)]) == 0
    one_round = [("10.99.0.21", (9420, 51300)), ("10.99.0.31", (9421, 33090))]
    assert sent == one_round * tickle.ROUNDS


def test_bad_peers_file_fails_with_the_reason(tmp_path, capsys):
    (tmp_path / ".mfsha-peers.dead-node").write_text("10.99.0.31 notaport 9421\n")
    assert tickle.main(["mfsha-tickle", "10.99.0.10", str(tmp_path)]) == 1
    assert "invalid literal" in capsys.readouterr().err
    assert tickle.main(["mfsha-tickle", "10.99.0.10", str(tmp_path / "missing")]) == 1
    assert "No such file" in capsys.readouterr().err
    assert tickle.main(["mfsha-tickle"]) == 2


def test_links_fifos_and_endless_files_are_refused_and_skipped(tmp_path, monkeypatch, capsys):
    """DIR is the mfs user's: a link (to /dev/zero: an endless read; to a root file elsewhere), a FIFO (the open would
    block) or a huge file is skipped with the reason, logged; the real peers file is still tickled."""
    (tmp_path / ".mfsha-peers.dead-node").write_text("10.99.0.31 33090 9421\n")
    (tmp_path / ".mfsha-peers.zero").symlink_to("/dev/zero")
    (tmp_path / ".mfsha-peers.passwd").symlink_to(tmp_path / ".mfsha-peers.dead-node")
    os.mkfifo(tmp_path / ".mfsha-peers.fifo")
    (tmp_path / ".mfsha-peers.huge").write_bytes(b"1" * (tickle.PEERS_LIMIT + 1))
    logged = []
    monkeypatch.setattr(tickle.syslog, "syslog", lambda *a: logged.append(a[-1]))
    monkeypatch.setattr(tickle.socket, "socket", lambda *a: type("Raw", (), {
        "bind": lambda self, addr: None, "sendto": lambda self, seg, addr: None})())
    monkeypatch.setattr(tickle.time, "sleep", lambda s: None)
    assert tickle.main(["mfsha-tickle", "10.99.0.10", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    for name, why in (("zero", "(a symlink)"), ("passwd", "(a symlink)"), ("fifo", "not a regular file"),
                      ("huge", f"over {tickle.PEERS_LIMIT} bytes")):
        assert f"refused {tmp_path}/.mfsha-peers.{name}: " in err and why in err, err
        assert any(f".mfsha-peers.{name}: " in line and "skipped" in line for line in logged), logged
    assert "sent tickle ACKs to 1 connection(s)" in logged[-1] and "from .mfsha-peers.dead-node:" in logged[-1]
