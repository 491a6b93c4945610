"""_modules/mfsha.py and _modules/mfsha_storage.py functions that work on real files: metadata seeding and migration,
the peers record and the reserve, the in-place restart, and pillar.example coverage."""
import os
import re
import pathlib
import pwd
import shutil

import pytest
import yaml

import mfsha_files

from salt.exceptions import CommandExecutionError

from unit_support import REPO, load_salt_module, statvfs

mfsha = load_salt_module("_modules/mfsha.py")
storage = load_salt_module("_modules/mfsha_storage.py")  # seed_metadata, record_peers, keep_reserve
ME = pwd.getpwuid(os.getuid()).pw_name
EMPTY = b"MFSM NEW"  # what /var/lib/mfs/metadata.mfs.empty holds


@pytest.fixture
def dirs(tmp_path):
    data, legacy = tmp_path / "mfsconf", tmp_path / "var-lib-mfs"
    data.mkdir()
    legacy.mkdir()
    (legacy / "metadata.mfs.empty").write_bytes(EMPTY)
    return data, legacy


def seed(data, legacy, test=False):
    return storage.seed_metadata(str(data), str(legacy), str(legacy / "metadata.mfs.empty"), ME, ME, test=test)


def test_new_cluster_is_seeded_from_the_empty_metadata(dirs):
    data, legacy = dirs
    assert seed(data, legacy, test=True) == {"action": "seeded", "files": [str(data / "metadata.mfs")]}
    assert not (data / "metadata.mfs").exists()  # test=True changes nothing
    assert seed(data, legacy)["action"] == "seeded"
    assert (data / "metadata.mfs").read_bytes() == EMPTY
    assert seed(data, legacy) == {"action": "none", "files": []}  # idempotent


def test_existing_single_master_is_migrated(dirs):
    data, legacy = dirs
    for name, body in [("metadata.mfs.back", b"META"), ("changelog.0.mfs", b"1: x\n"), ("changelog.3.mfs", b"0: y\n"),
                       ("sessions.mfs", b"S"), ("stats.mfs", b"T")]:
        (legacy / name).write_bytes(body)
    done = seed(data, legacy)
    assert done["action"] == "migrated"
    assert sorted(os.listdir(data)) == ["changelog.0.mfs", "changelog.3.mfs", "metadata.mfs.back", "sessions.mfs",
                                        "stats.mfs"]
    assert (data / "metadata.mfs.back").read_bytes() == b"META" and (data / "changelog.3.mfs").read_bytes() == b"0: y\n"


@pytest.mark.parametrize("present", ["metadata.mfs", "metadata.mfs.back", "metadata.mfs.back.1", "changelog.0.mfs"])
def test_existing_metadata_is_never_overwritten(dirs, present):
    data, legacy = dirs
    (data / present).write_bytes(b"PRECIOUS")
    (legacy / "metadata.mfs").write_bytes(b"OTHER")
    assert seed(data, legacy) == {"action": "none", "files": []}
    assert (data / present).read_bytes() == b"PRECIOUS" and sorted(os.listdir(data)) == [present]


def test_seeding_never_follows_a_link_in_either_directory(dirs, tmp_path):
    """Both DATA_PATH and the legacy /var/lib/mfs are the mfs user's: a link at a destination is replaced, a link
    at a source is refused with its path (root would read a file mfs cannot and hand it over)."""
    data, legacy = dirs
    bait = tmp_path / "shadow"
    bait.write_bytes(b"root:$6$secret\n")
    (legacy / "metadata.mfs.back").write_bytes(b"META")
    (legacy / "stats.mfs").write_bytes(b"T")
    (data / "stats.mfs").symlink_to(bait)
    assert seed(data, legacy)["action"] == "migrated"
    assert bait.read_bytes() == b"root:$6$secret\n" and (data / "stats.mfs").read_bytes() == b"T"
    assert not (data / "stats.mfs").is_symlink() and (data / "stats.mfs").stat().st_mode & 0o777 == 0o640
    for f in os.listdir(data):
        os.unlink(data / f)
    (legacy / "sessions.mfs").symlink_to(bait)
    with pytest.raises(CommandExecutionError, match=r"cannot seed .*sessions.mfs: is a symlink; refused"):
        seed(data, legacy)
    assert b"secret" not in b"".join((data / f).read_bytes() for f in os.listdir(data))


def test_missing_empty_metadata_is_a_clear_error(dirs):
    data, legacy = dirs
    (legacy / "metadata.mfs.empty").unlink()
    with pytest.raises(Exception, match="metadata.mfs.empty is missing"):
        seed(data, legacy)


def _keys(tree, prefix=""):
    for key, val in tree.items():
        yield prefix + key
        if isinstance(val, dict) and key not in ("nodes", "disks", "config"):
            yield from _keys(val, prefix + key + ":")


def test_pillar_example_documents_every_key():
    """Every key the formula knows appears in pillar.example (as a value or in a commented example)."""
    defaults = yaml.safe_load((REPO / "mfsha/defaults.yaml").read_text())["cluster"]
    text = (REPO / "pillar.example").read_text()
    missing = [k for k in _keys(defaults) if f"{k.rsplit(':', 1)[-1]}:" not in text]
    assert missing == []


@pytest.mark.parametrize("rc,in_use", [(0, False), (1, True)])
def test_vip_in_use_reads_arping_duplicate_detection(rc, in_use):
    calls = []
    mod = load_salt_module("_modules/mfsha.py", salt={"cmd.run_all": lambda cmd, **kw: calls.append(cmd) or
                                                      {"retcode": rc, "stdout": "", "stderr": ""}})
    assert mod.vip_in_use("10.20.0.10", "eth0") is in_use
    assert calls == [["arping", "-D", "-q", "-c", "2", "-w", "3", "-I", "eth0", "10.20.0.10"]]


def test_vip_check_failure_stops_with_stderr():
    mod = load_salt_module("_modules/mfsha.py", salt={"cmd.run_all": lambda cmd, **kw: {
        "retcode": 2, "stdout": "", "stderr": "arping: Device bond9 not available.\n"}})
    with pytest.raises(Exception, match="exit code 2: arping: Device bond9 not available"):
        mod.vip_in_use("10.20.0.10", "bond9")


def test_no_bootstrap_while_a_peer_holds_the_vip():
    """The peer is active but its master hangs: nothing serves on the VIP, yet the VIP (and the storage) are held."""
    answers = {"cl_status": {"retcode": 1, "stdout": "", "stderr": ""}, "arping": {"retcode": 1, "stdout": "", "stderr": ""}}
    run_all = lambda cmd, **kw: answers[cmd[0].rsplit("/", 1)[-1]]  # noqa: E731
    heartbeat = load_salt_module("_modules/heartbeat.py", salt={"cmd.run_all": run_all})
    mod = load_salt_module("_modules/mfsha.py", salt={"cmd.run_all": run_all, "heartbeat.running": heartbeat.running})
    mod.serves = lambda host, port, timeout=1.0: False
    cfg = {"roles": ["master"], "me": {"id": "a"}, "preferred": "a", "vip": {"address": "10.20.0.10", "interface": "eth0"},
           "master": {"config": {"MATOCL_LISTEN_PORT": 9421}}}
    assert mod.bootstrap_needed(cfg) is False
    answers["arping"] = {"retcode": 0, "stdout": "", "stderr": ""}
    mod.__context__.clear()
    assert mod.bootstrap_needed(cfg) is True


# ---- record_peers: the holder's VIP connections on the replicated storage ----------------------------------------

PROC_NET_TCP = pathlib.Path(__file__).parent / "fixtures" / "net" / "proc_net_tcp-active"


def test_record_peers_writes_the_vip_connections_only_when_they_change(tmp_path):
    mod = load_salt_module("_modules/mfsha_storage.py", salt={})
    assert mod.record_peers("10.99.0.10", str(tmp_path), proc=str(PROC_NET_TCP)) == 4
    path = tmp_path / f".mfsha-peers.{os.uname().nodename}"
    assert path.read_text() == ("10.99.0.21 44812 9419\n10.99.0.21 51300 9420\n10.99.0.22 50934 9420\n"
                                "10.99.0.31 33090 9421\n")
    inode = path.stat().st_ino
    mod.record_peers("10.99.0.10", str(tmp_path), proc=str(PROC_NET_TCP))
    assert path.stat().st_ino == inode  # unchanged: not rewritten (the beacon looks every second)
    assert mod.record_peers("10.99.0.99", str(tmp_path), proc=str(PROC_NET_TCP)) == 0
    assert path.read_text() == "" and path.stat().st_ino != inode
    assert os.listdir(tmp_path) == [path.name]


@pytest.mark.parametrize("plant", ["link", "fifo", "foreign"])
def test_record_peers_replaces_what_mfs_planted_and_says_so(tmp_path, plant, caplog):
    mod = load_salt_module("_modules/mfsha_storage.py", salt={})
    bait = tmp_path / "outside"
    bait.write_text("10.99.0.31 33090 9421\n")
    data = tmp_path / "storage"
    data.mkdir()
    path = data / f".mfsha-peers.{os.uname().nodename}"
    if plant == "link":
        path.symlink_to(bait)
        (data / mfsha_files.tmp_name(path.name)).symlink_to(bait)
    elif plant == "fifo":
        os.mkfifo(path)  # an open for reading would block the beacon
    else:
        path.write_text("192.0.2.1 22 9421\n")
        os.chown(path, 4242, 4242)
    assert mod.record_peers("10.99.0.10", str(data), proc=str(PROC_NET_TCP)) == 4
    assert bait.read_text() == "10.99.0.31 33090 9421\n"
    assert path.is_file() and not path.is_symlink() and path.stat().st_uid == os.geteuid()
    assert path.read_text().count("\n") == 4 and os.listdir(data) == [path.name]
    assert f"{path}: " in caplog.text and "refused" in caplog.text and "it is replaced" in caplog.text


def test_record_peers_failure_raises_with_the_path(tmp_path):
    mod = load_salt_module("_modules/mfsha_storage.py", salt={})
    with pytest.raises(OSError, match="nowhere"):
        mod.record_peers("10.99.0.10", str(tmp_path / "nowhere"), proc=str(PROC_NET_TCP))


def test_reserve_is_kept_only_while_twice_its_size_is_free(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "statvfs", statvfs((2 << 20) - 4096))
    assert storage.keep_reserve(str(tmp_path), 1) == 0 and os.listdir(tmp_path) == []
    monkeypatch.setattr(os, "statvfs", statvfs(2 << 20))
    assert storage.keep_reserve(str(tmp_path), 1) == 1 << 20
    st = os.stat(tmp_path / ".mfsha-reserve")
    assert st.st_blocks * 512 >= 1 << 20 and st.st_mode & 0o777 == 0o600  # allocated, not sparse
    assert storage.keep_reserve(str(tmp_path), 1) == 1 << 20 and os.listdir(tmp_path) == [".mfsha-reserve"]
    assert storage.keep_reserve(str(tmp_path / "gone"), 0) == 0  # switched off: not even a stat


def test_reserve_never_follows_a_link_and_a_leftover_is_cleaned(tmp_path, monkeypatch):
    bait = tmp_path / "outside"
    bait.write_text("keep\n")
    data = tmp_path / "storage"
    data.mkdir()
    tmp = data / mfsha_files.tmp_name(".mfsha-reserve")
    tmp.symlink_to(bait)  # O_TRUNC through it would empty the bait
    (data / ".mfsha-reserve.tmp").symlink_to(bait)  # the old name: nobody touches it any more
    monkeypatch.setattr(os, "statvfs", statvfs(2 << 20))
    assert storage.keep_reserve(str(data), 1) == 1 << 20
    assert bait.read_text() == "keep\n" and sorted(os.listdir(data)) == [".mfsha-reserve", ".mfsha-reserve.tmp"]
    os.unlink(data / ".mfsha-reserve")
    (data / ".mfsha-reserve").symlink_to(bait)
    with pytest.raises(OSError, match=r"\.mfsha-reserve: is not a regular file; refused"):
        storage.keep_reserve(str(data), 1)
    os.unlink(data / ".mfsha-reserve")
    tmp.write_bytes(b"\0" * 4096)  # a crash's half-made reserve on a storage that is short of space
    monkeypatch.setattr(os, "statvfs", statvfs(1 << 20))
    assert storage.keep_reserve(str(data), 1) == 0 and not tmp.exists() and bait.read_text() == "keep\n"


def test_restart_refuses_a_data_path_short_of_the_version_the_master_reported(tmp_path, monkeypatch):
    """A crash on a full disk: the changelog lacks its tail; `-a` would serve without it, so nothing starts, and a
    full storage got its reserve back first."""
    data = tmp_path / "mfsconf"
    shutil.copytree(REPO / "test/unit/fixtures/mfs/data-kill9", data)  # replays to 1417
    (data / "mfsmaster.cfg").write_text(f"DATA_PATH = {data}\n")
    (data / ".mfsha-reserve").write_bytes(b"\0" * 8192)
    mfsmaster = load_salt_module("_modules/mfsmaster.py")
    started = []
    mod = load_salt_module("_modules/mfsha.py", salt={
        "mfsmaster.running": lambda cfg: True, "mfsmaster.kill": lambda cfg: True,
        "mfsmaster.missing_changes": mfsmaster.missing_changes, "mfsmaster.start": lambda **kw: started.append(kw)})
    monkeypatch.setattr(os, "statvfs", statvfs(0))
    ret = mod.restart_master(cfg=str(data / "mfsmaster.cfg"), grace=0, expect_version=1500)
    assert (ret["started"], ret["refused"]) == (False, "missing_changes"), ret  # a field, not error text to match
    assert re.search(r"changes the master acknowledged are missing: .* replays up to change 1417, the master had "
                     r"reached 1500; not started; the storage was full", ret["reason"]), ret
    assert ret["gap"] == {"from": 1417, "to": 1499, "data_path": str(data)}
    assert started == [] and not (data / ".mfsha-reserve").exists()


def test_after_a_full_storage_only_a_restart_with_the_tail_checked_starts(tmp_path, monkeypatch):
    data = tmp_path / "mfsconf"
    shutil.copytree(REPO / "test/unit/fixtures/mfs/data-kill9", data)
    cfg = str(data / "mfsmaster.cfg")
    pathlib.Path(cfg).write_text(f"DATA_PATH = {data}\n")
    (data / ".mfsha-reserve").write_bytes(b"\0" * 8192)
    started = []
    mod = load_salt_module("_modules/mfsha.py", salt={
        "mfsmaster.running": lambda cfg: False, "mfsmaster.kill": lambda cfg: False,
        "mfsmaster.start": lambda **kw: started.append(kw) or {"pid": 4242},
        "mfsmaster.health": lambda **kw: {"healthy": True}})
    monkeypatch.setattr(os, "statvfs", statvfs(0))
    for _ in range(2):  # the evidence outlives the reserve: a second plain restart is refused too
        ret = mod.restart_master(cfg=cfg, grace=0)
        assert (ret["started"], ret["refused"]) == (False, "missing_changes"), ret
        assert "are missing: the changelog may lack its tail; not started" in ret["reason"]
    assert started == [] and (data / ".mfsha-was-full").exists()
    ret = mod.restart_master(cfg=cfg, grace=0, tail_checked=True)
    assert ret["pid"] == 4242 and ret["started"] is True
    assert len(started) == 1 and not (data / ".mfsha-was-full").exists()
    bait = tmp_path / "outside"
    bait.write_text("keep\n")
    (data / ".mfsha-was-full").symlink_to(bait)  # planted: evidence like the marker, removed (never followed)
    ret = mod.restart_master(cfg=cfg, grace=0)
    assert ret["refused"] == "missing_changes" and "the changelog may lack its tail" in ret["reason"], ret
    assert mod.restart_master(cfg=cfg, grace=0, tail_checked=True)["pid"] == 4242
    assert bait.read_text() == "keep\n" and not os.path.lexists(data / ".mfsha-was-full")


def test_restart_stopped_by_a_changelog_hole_is_a_refusal(tmp_path):
    """`mfsmaster -a` stopping at a changelog hole (its captured words, through the real mfsmaster.start) comes back
    as restart_master's `refused` field: the runner fills from the metaloggers on the field, never on error text."""
    from test_mfsmaster_module import Master
    master = Master(tmp_path / "node", data="data-hole")
    master.on(["-a", "start"], "mfsmaster-start-a__hole", state="down")
    mod = load_salt_module("_modules/mfsha.py", salt={
        "mfsmaster.running": lambda cfg: False, "mfsmaster.kill": lambda cfg: False, "mfsmaster.start": master.mod.start})
    ret = mod.restart_master(cfg=master.cfg, grace=0)
    assert (ret["started"], ret["refused"], ret["gap"]) == (False, "missing_changes", None), ret
    assert re.search(r"are missing: .*hole in change files \(entries from changelog.1.mfs:1266.*; not started$",
                     ret["reason"], re.S), ret
