"""_utils/mfsha_mfs.py on outputs and files captured from a real mfsmaster 3.0.117 (fixtures/mfs/capture.sh),
cross-checked against what the real tools said about the same state; the probe against real sockets."""

import csv
import fcntl
import os
import re
import shutil
import socket
import struct
import threading
import time
from pathlib import Path

import pytest

import mfsha_files
import mfsha_mfs as m
from unit_support import statvfs

MFS = Path(__file__).parent / "fixtures" / "mfs"
INDEX = {row["file"]: row for row in csv.DictReader(open(MFS / "index.tsv"), delimiter="\t")}


def out(name):
    return (MFS / name).read_text()


def err(name):
    return (MFS / name.replace(".txt", ".stderr.txt")).read_text()


def rc(name):
    return int(INDEX[name]["exit_code"])


# ---- mfscli ----------------------------------------------------------------------------------------------

# Metadata versions mfscli printed (with its space separators) in each captured state.
LIVE = {"mfscli-SIM__leader.txt": 1013, "mfscli-SIM__before-kill9.txt": 1215, "mfscli-SIM__after-replay.txt": 1417}


@pytest.mark.parametrize("name", sorted(LIVE))
def test_live_master_row(name):
    assert re.search(r"\|\d \d{3}\|", out(name)), "fixture should show the thousands separator"
    parsed = m.parse_mfscli(out(name))
    assert parsed["errors"] == []
    (row,) = parsed["masters"]
    assert row["ip"] == "127.0.0.1" and row["version"] == "3.0.117" and row["state"] == "-"
    assert row["alive"] and parsed["leader"] is row
    assert row["metadata_version"] == LIVE[name]
    assert isinstance(row["ram_used"], int) and row["ram_used"] > 0
    assert row["exports_checksum"] == "60031CB7B5B13C8D"


@pytest.mark.parametrize("name,state", [("mfscli-SIM__dead.txt", "DEAD"), ("mfscli-SIM__sigstopped.txt", "BUSY")])
def test_no_working_master_although_exit_0(name, state):
    assert rc(name) == 0  # mfscli does not tell by its exit code
    parsed = m.parse_mfscli(out(name))
    assert parsed["leader"] is None
    assert parsed["errors"][0].startswith("Working master servers not found !!!")
    (row,) = parsed["masters"]
    assert row["state"] == state and not row["alive"] and row["metadata_version"] == 0
    assert row["ram_used"] is None and row["local_time"] is None


def test_unresolvable_master():
    parsed = m.parse_mfscli(out("mfscli-SIM__unresolvable.txt"))
    assert rc("mfscli-SIM__unresolvable.txt") == 1
    assert parsed["masters"] == [] and parsed["leader"] is None
    assert "Can't find masters (resolve 'no-such-host.invalid')" in parsed["errors"][0]


def test_master_info_section():
    parsed = m.parse_mfscli(out("mfscli-SIN__leader.txt"))
    assert parsed["leader"]["metadata_version"] == 1013
    assert parsed["info"]["master version"] == "3.0.117"
    assert parsed["info"]["directories"] == 1011  # root + the 1010 mkdirs of capture.sh
    assert parsed["info"]["last successful store"] is None
    assert "memory usage detailed info" in parsed["sections"]


def test_spaced_int():
    assert m.spaced_int("1 013") == 1013
    assert m.spaced_int("12 345 678") == 12345678
    assert m.spaced_int("0") == 0
    for bad in ("1,013", "10 13", "1 0133", "", "x"):
        with pytest.raises(ValueError):
            m.spaced_int(bad)


def test_malformed_row_fails_clearly():
    with pytest.raises(ValueError, match="unexpected metadata servers row"):
        m.parse_mfscli("metadata servers:|127.0.0.1|3.0.117|-")


# ---- mfsmaster.cfg ---------------------------------------------------------------------------------------

def test_cfg_fixture():
    cfg = m.parse_cfg(out("mfsmaster.cfg"))
    assert cfg["DATA_PATH"] == "/tmp/mfstest/data"
    assert cfg["MATOCL_LISTEN_PORT"] == "29421" and cfg["CHANGELOG_SAVE_MODE"] == "2"
    assert cfg["BACK_LOGS"] == "50"  # not in the file: mfsmaster's default
    assert m.client_address(cfg) == ("127.0.0.1", 29421)


def test_cfg_defaults_and_inline_hash():
    cfg = m.parse_cfg("  # comment\n\nDATA_PATH = /x # y\n")
    # mfsmaster keeps '# y' in the value (it then fails with "can't set working directory to /x # y")
    assert cfg["DATA_PATH"] == "/x # y"
    assert m.client_address(cfg) == ("127.0.0.1", 9421)  # MATOCL_LISTEN_HOST = * by default


@pytest.mark.parametrize("text", ["GARBAGE LINE", "= 1", "TWO WORDS = 1"])
def test_cfg_bad_line(text):
    with pytest.raises(ValueError, match="bad line 2"):
        m.parse_cfg("# ok\n" + text)


# ---- metadata and changelogs -----------------------------------------------------------------------------

def test_metadata_header_matches_mfsmetadump():
    dump = out("mfsmetadump-HEAD__clean-stop.txt")
    version = int(re.search(r"version: (\d+)", dump).group(1))
    fileid = int(re.search(r"fileid: 0x([0-9A-F]+)", dump).group(1), 16)
    head = m.metadata_header((MFS / "data-clean-stop" / "metadata.mfs").read_bytes())
    assert head == {"format": "2.0", "version": version, "fileid": fileid}


def test_metadata_header_empty_and_garbage():
    # metadata.mfs.back.1 kept by the master is the copy of /var/lib/mfs/metadata.mfs.empty it started from
    empty = (MFS / "data-clean-stop" / "metadata.mfs.back.1").read_bytes()
    assert empty == b"MFSM NEW" and m.metadata_header(empty) == {"format": "NEW", "version": 1, "fileid": None}
    with pytest.raises(ValueError, match="not a MooseFS metadata file"):
        m.metadata_header(b"hello world, this is not metadata")


def test_disk_version_equals_running_master_version():
    # while running, the on-disk state (metadata.mfs.back + changelog.0) = mfscli's metadata version
    assert m.disk_state(MFS / "data-running")["version"] == LIVE["mfscli-SIM__leader.txt"]
    # after kill -9, what -a replays = what the master reported after the real replay
    state = m.disk_state(MFS / "data-kill9")
    assert rc("mfsmaster-start-a__after-kill9.txt") == 0
    assert state["version"] == LIVE["mfscli-SIM__after-replay.txt"]
    assert state["metadata_file"] == "metadata.mfs.back" and state["hole"] is None
    assert state["changelogs"]["changelog.0.mfs"][0] == state["metadata_version"]


def test_clean_stop_needs_no_changelog():
    state = m.disk_state(MFS / "data-clean-stop")
    assert state["metadata_file"] == "metadata.mfs"
    assert state["version"] == state["metadata_version"] == 1014
    assert state["hole"] is None


def test_hole_is_the_one_mfsmaster_reports():
    assert rc("mfsmaster-start-a__hole.txt") == 1
    msg = re.search(r"entries from (\S+):(\d+) to (\S+):(\d+) are missing", err("mfsmaster-start-a__hole.txt"))
    state = m.disk_state(MFS / "data-hole")
    assert state["hole"] == {"from": int(msg.group(2)), "to": int(msg.group(4)),
                             "after": msg.group(1), "before": msg.group(3)}
    assert state["version"] == int(msg.group(2))  # as far as a replay could get


def test_hole_right_after_metadata():
    # mfsmaster -a refuses this one too, with "Data mismatch" on the first changelog entry it tries
    assert rc("mfsmaster-start-a__hole-head.txt") == 1
    assert "error applying changelogs" in err("mfsmaster-start-a__hole-head.txt")
    state = m.disk_state(MFS / "data-hole-head")
    assert state["hole"]["from"] == state["metadata_version"] == 1216
    assert state["hole"]["after"] is None and state["version"] == 1216


def test_changelog_hole_rules():
    assert m.changelog_hole(5, {"a": [1, 2, 3, 4]}) is None  # all older than the metadata
    assert m.changelog_hole(3, {"changelog.0.mfs": [3, 4, 5], "changelog_ml.0.mfs": [2, 3, 4, 5, 6]}) is None
    assert m.changelog_hole(3, {"x": [3, 4, 7]}) == {"from": 5, "to": 6, "after": "x", "before": "x"}


def test_changelog_lines():
    assert m.changelog_versions(["1: 17|SETMETAID(1)\n", "2: 17|ACCESS(1)\n", "3: 17|CRE"]) == [1, 2, 3]
    assert m.changelog_versions(["1: 17|SETMETAID(1)\n", "\x00\x00torn"]) == [1]  # torn last write
    with pytest.raises(ValueError, match="bad changelog line"):
        m.changelog_versions(["1: a\n", "junk\n", "3: b\n"])


def test_lock_holder_real_posix_lock(tmp_path):
    lock = tmp_path / ".mfsmaster.lock"
    lock.write_text("1\n")
    assert m.lock_holder(str(lock)) is None
    with open(lock, "r+") as fh:
        fcntl.lockf(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert m.lock_holder(str(lock)) == os.getpid()


# ---- protocol probe --------------------------------------------------------------------------------------

INFO = (MFS / "cltoma-info__after-replay.bin").read_bytes()  # the real MATOCL_INFO answer, header included


def test_decode_real_info():
    cmd, length = struct.unpack(">LL", INFO[:8])
    assert cmd == m.MATOCL_INFO and length == len(INFO) - 8
    info = m.decode_info(INFO[8:])
    assert info == {"version": "3.0.117", "state": "LEADER",
                    "metadata_version": LIVE["mfscli-SIM__after-replay.txt"]}


class Server:
    """A real TCP endpoint on loopback: mode "answer" replays INFO after reading a request, "hang" listens
    but never accepts or answers (like a SIGSTOPped master: the kernel completes the handshake)."""

    def __init__(self, mode, reply=INFO):
        self.reply = reply
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.requests = []
        if mode in ("answer", "short"):
            # "short": a MATOCL_INFO header announcing 3 bytes, and those 3 bytes of the real answer
            self.reply = reply if mode == "answer" else struct.pack(">LL", 511, 3) + INFO[8:11]
            threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                self.requests.append(conn.recv(8))
                conn.sendall(self.reply)

    def close(self):
        self.sock.close()


@pytest.fixture
def server(request):
    srv = Server(request.param)
    yield srv
    srv.close()


@pytest.mark.parametrize("server", ["answer"], indirect=True)
def test_probe_answer(server):
    ok, latency, detail = m.probe("127.0.0.1", server.port, timeout=2)
    assert ok and 0 < latency < 2
    assert detail == "mfsmaster 3.0.117 LEADER metadata version 1417"
    assert server.requests == [struct.pack(">LL", 510, 0)]  # what mfscli sends


@pytest.mark.parametrize("server", ["short"], indirect=True)
def test_probe_short_reply_is_no_master(server):
    """A reply too short for MATOCL_INFO (a wrong service on the port, a hostile one) is a failed probe, not a
    ValueError out of probe()."""
    ok, _, detail = m.probe("127.0.0.1", server.port, timeout=2)
    assert not ok and detail == "answer: MATOCL_INFO too short (3 bytes)"


@pytest.mark.parametrize("server", ["hang"], indirect=True)
def test_probe_hung_listener_times_out(server):
    start = time.monotonic()
    ok, latency, detail = m.probe("127.0.0.1", server.port, timeout=0.3)
    assert not ok and detail.startswith("answer: no answer within 0.30 s")
    assert 0.25 < latency < 1.0 and time.monotonic() - start < 1.0
    with pytest.raises(m.ProbeError) as exc:
        m.master_info("127.0.0.1", server.port, timeout=0.2)
    assert exc.value.stage == "answer"


def test_probe_closed_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    ok, latency, detail = m.probe("127.0.0.1", port, timeout=1)
    assert not ok and detail.startswith("connect: 127.0.0.1:%d" % port) and "refused" in detail
    assert latency < 0.5


def test_last_change_reads_the_newest_complete_entry_from_the_end(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(MFS / "data-kill9", data)
    assert m.last_change(str(data)) == 1416
    with open(data / "changelog.0.mfs", "a") as fh:
        fh.write("1417: 17956")  # torn by the crash: not a change the replay gets
    assert m.last_change(str(data)) == 1416
    assert m.last_change(str(data), window=200) == 1416  # the cut first line of the window is skipped too
    (data / "changelog.0.mfs").write_text("")  # just rotated: the newest entries are in changelog.1.mfs
    assert m.last_change(str(data)) == int((data / "changelog.1.mfs").read_text().splitlines()[-1].split(":")[0])
    assert m.last_change(str(tmp_path)) is None


def test_the_reserve_is_released_only_when_less_than_its_size_is_free(tmp_path, monkeypatch):
    (tmp_path / m.RESERVE).write_bytes(b"\0" * (1 << 20))
    size = os.stat(tmp_path / m.RESERVE).st_blocks * 512
    monkeypatch.setattr(os, "statvfs", statvfs(size))
    assert m.release_reserve(str(tmp_path)) == 0 and (tmp_path / m.RESERVE).exists()
    monkeypatch.setattr(os, "statvfs", statvfs(size - 4096))
    assert m.release_reserve(str(tmp_path)) == size and not (tmp_path / m.RESERVE).exists()
    assert m.release_reserve(str(tmp_path)) == 0  # absent
    assert (tmp_path / m.WAS_FULL).read_text().strip().isdigit()


def test_release_reserve_never_follows_a_link_planted_by_mfs(tmp_path, monkeypatch):
    """The marker and the reserve are in the mfs user's directory: a link at either is never followed."""
    data, bait = tmp_path / "data", tmp_path / "passwd"
    data.mkdir()
    bait.write_text("root:x:0:0\n")
    (data / m.WAS_FULL).symlink_to(bait)
    (data / mfsha_files.tmp_name(m.WAS_FULL)).symlink_to(bait)
    (data / m.RESERVE).write_bytes(b"\0" * 8192)
    monkeypatch.setattr(os, "statvfs", statvfs(0))
    assert m.release_reserve(str(data)) > 0
    assert bait.read_text() == "root:x:0:0\n" and not (data / m.WAS_FULL).is_symlink()
    assert sorted(os.listdir(data)) == [m.WAS_FULL]  # the planted temporary link is gone with the reserve
    (data / m.RESERVE).symlink_to(bait)  # a link's size is not a reserve's: refused with its path
    with pytest.raises(OSError, match=r"\.mfsha-reserve: is not a regular file; refused"):
        m.release_reserve(str(data))
    assert bait.exists()


def test_disk_state_and_lock_holder_refuse_links_and_fifos(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(MFS / "data-kill9", data)
    clean = m.disk_state(str(data))
    (data / "changelog.7.mfs").symlink_to("/dev/zero")  # an endless read if it were followed
    os.mkfifo(data / "changelog_ml.0.mfs")  # a FIFO would block the open
    state = m.disk_state(str(data))  # neither read nor counted; reported
    assert [r.split(": ", 1)[0].rsplit("/", 1)[-1] for r in state["refused"]] == ["changelog.7.mfs",
                                                                                "changelog_ml.0.mfs"]
    assert "is a symlink; refused" in state["refused"][0] and "is not a regular file" in state["refused"][1]
    assert dict(state, refused=[]) == clean
    (data / "changelog.7.mfs").unlink()
    (data / "changelog_ml.0.mfs").unlink()
    (data / "metadata.mfs").symlink_to(data / "metadata.mfs.back")
    with pytest.raises(OSError, match="metadata.mfs: is a symlink; refused"):
        m.disk_state(str(data))
    (data / ".mfsmaster.lock").symlink_to("/proc/locks")
    with pytest.raises(OSError, match=r"\.mfsmaster\.lock: is not a regular file; refused"):
        m.lock_holder(str(data / ".mfsmaster.lock"))
    (data / "changelog.0.mfs").unlink()
    (data / "changelog.0.mfs").symlink_to("/dev/zero")  # skipped: changelog.1.mfs is read
    assert m.last_change(str(data)) == int((data / "changelog.1.mfs").read_text().splitlines()[-1].split(":")[0])
