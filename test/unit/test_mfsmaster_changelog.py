"""_modules/mfsmaster.py's changelog side, on real files in a temporary DATA_PATH: filling a changelog hole from a
metalogger's copy of the change stream, DATA_PATH's own digests, and a tail lost to a full disk."""
import errno
import os
import shutil
from pathlib import Path

import pytest
from salt.exceptions import CommandExecutionError

import mfsha_files
import mfsha_fill
import mfsha_mfs
from unit_support import statvfs
from test_mfsmaster_module import MFS, Master


# ---- filling a changelog hole from a metalogger's copy of the change stream --------------------------------------

def test_changelog_since_reads_complete_entries_once(tmp_path):
    # a metalogger's data dir: the kill -9 capture's full stream, plus a torn last line and an overlapping file
    ml = tmp_path / "ml"
    shutil.copytree(MFS / "data-kill9", ml)
    (ml / "changelog_ml.0.mfs").write_text((MFS / "data-kill9" / "changelog.0.mfs").read_text() + "1417: 17956")
    res = Master(tmp_path / "m").mod.changelog_since(1266, data_path=str(ml))
    assert (res["first"], res["last"], res["count"]) == (1266, 1416, 151)  # not the torn 1417, no duplicates
    assert res["lines"][0].startswith("1266: ") and all(x.endswith("\n") for x in res["lines"])
    assert Master(tmp_path / "n").mod.changelog_since(5000, data_path=str(ml)) == {
        "first": None, "last": None, "count": 0, "lines": []}
    # a metalogger's own copy with a gap: only the run before it (a fill must have no gap of its own)
    text = (ml / "changelog.0.mfs").read_text()
    (ml / "changelog.0.mfs").write_text("".join(x for x in text.splitlines(True) if not x.startswith("1300: ")))
    (ml / "changelog_ml.0.mfs").unlink()
    res = Master(tmp_path / "o").mod.changelog_since(1266, data_path=str(ml))
    assert (res["first"], res["last"], res["count"]) == (1266, 1299, 34)


def test_changelog_since_refuses_two_lines_for_one_change(tmp_path):
    ml = tmp_path / "ml"
    shutil.copytree(MFS / "data-kill9", ml)
    (ml / "changelog_ml.10.mfs").write_text("1300: 1795618038|UNLINK(1,f1):1212\n")
    with pytest.raises(CommandExecutionError, match="change 1300 differs between two changelog lines"):
        Master(tmp_path / "m").mod.changelog_since(1266, data_path=str(ml))


def test_changelog_digests_are_data_paths_own_entries(tmp_path):
    mst = Master(tmp_path, data="data-hole")
    res = mst.mod.changelog_digests(1216)
    versions = [v for v, _ in res["digests"]]
    assert res["data_path"] == str(mst.data)
    assert versions == list(range(1216, 1266)) + list(range(1276, 1417))  # the hole stays a hole
    line = next(x for x in (mst.data / "changelog.0.mfs").read_text().splitlines(True) if x.startswith("1300: "))
    assert dict(res["digests"])[1300] == mfsha_fill.digest(line)


def test_add_changelog_closes_the_hole(tmp_path):
    lines = Master(tmp_path / "ml").mod.changelog_since(1266, data_path=str(MFS / "data-kill9"))["lines"]
    mst = Master(tmp_path / "m", data="data-hole")
    assert mst.mod.data_path_ok()["hole"]["from"] == 1266
    res = mst.mod.add_changelog(lines)
    assert res["ok"] and res["hole"] is None and res["version"] == 1417, res["problems"]
    assert (mst.data / "changelog_ml.0.mfs").read_text() == "".join(lines)
    assert (mst.data / "changelog_ml.0.mfs").stat().st_uid == os.getuid()
    assert sorted(os.listdir(mst.data)) == sorted(os.listdir(MFS / "data-hole") + ["changelog_ml.0.mfs"])


def test_add_changelog_never_follows_a_link_planted_in_data_path(tmp_path):
    """The issue's attack: a compromised mfsmaster plants links where the fill writes, then crashes. The fill
    replaces the links (a rename never follows one) and chowns only its own file, through its fd."""
    lines = Master(tmp_path / "ml").mod.changelog_since(1266, data_path=str(MFS / "data-kill9"))["lines"]
    mst = Master(tmp_path / "m", data="data-hole")
    bait = tmp_path / "passwd"
    bait.write_text("root:x:0:0:root:/root:/bin/sh\n")
    os.chown(bait, 4242, 4242)  # a chown through a link would make it the WORKING_USER's
    names = ("changelog_ml.0.mfs", "changelog_ml.0.mfs.tmp", mfsha_files.tmp_name("changelog_ml.0.mfs"))
    for name in names:
        (mst.data / name).symlink_to(bait)
    assert mst.mod.add_changelog(lines)["version"] == 1417
    assert bait.read_text() == "root:x:0:0:root:/root:/bin/sh\n" and bait.stat().st_uid == 4242
    fill = mst.data / "changelog_ml.0.mfs"
    assert not fill.is_symlink() and fill.read_text() == "".join(lines) and fill.stat().st_uid == os.getuid()
    assert not os.path.lexists(mst.data / names[2])  # the planted temporary link was removed, not followed


def test_a_config_that_is_not_roots_regular_file_is_refused(tmp_path):
    mst = Master(tmp_path / "m")
    real = Path(mst.cfg).with_suffix(".real")
    os.rename(mst.cfg, real)
    os.symlink(real, mst.cfg)
    with pytest.raises(CommandExecutionError, match=r"mfsmaster.cfg: is a symlink; refused"):
        mst.mod.data_path_ok()
    os.unlink(mst.cfg)
    os.mkfifo(mst.cfg)
    with pytest.raises(CommandExecutionError, match=r"mfsmaster.cfg: is not a regular file; refused"):
        mst.mod.missing_changes(1417)
    os.unlink(mst.cfg)
    shutil.copy(real, mst.cfg)
    os.chown(mst.cfg, 4242, 4242)  # the storage's owner wrote it: not root's word
    with pytest.raises(CommandExecutionError, match=r"mfsmaster.cfg: belongs to uid 4242"):
        mst.mod.kill()


@pytest.mark.parametrize("lines, why", [
    (["1266: 1795618038|CREATE(1,f60,2,511,18,0,0,0):1271"], "complete changelog lines"),
    (["not a changelog line\n"], "changelog entry"),
    ("1266: x\n", "complete changelog lines"),
])
def test_add_changelog_refuses_what_is_not_a_changelog(tmp_path, lines, why):
    mst = Master(tmp_path, data="data-hole")
    with pytest.raises(CommandExecutionError, match=why):
        mst.mod.add_changelog(lines)
    assert not (mst.data / "changelog_ml.0.mfs").exists()


# ---- a changelog tail lost to a full disk ------------------------------------------------------------------------

def test_missing_changes_compares_data_path_with_the_version_the_master_reported(tmp_path):
    mst = Master(tmp_path / "m")  # the kill -9 capture replays to 1417, what the master reported after replay
    assert mst.mod.missing_changes(1417) is None and mst.mod.missing_changes(1200) is None
    assert mst.mod.missing_changes(1500) == {"from": 1417, "to": 1499, "data_path": str(mst.data)}
    hole = Master(tmp_path / "h", data="data-hole")
    assert hole.mod.missing_changes(1417) is None  # the tail is there: the hole is for `mfsmaster -a` to report
    assert hole.mod.missing_changes(1500)["from"] == 1266  # short of it: read in full, a replay stops at the hole


def test_add_changelog_on_a_full_disk_releases_the_reserve_once(tmp_path, monkeypatch):
    lines = Master(tmp_path / "ml").mod.changelog_since(1266, data_path=str(MFS / "data-kill9"))["lines"]
    mst = Master(tmp_path / "m", data="data-hole")
    (mst.data / mfsha_mfs.RESERVE).write_bytes(b"\0" * 8192)
    real, calls = mfsha_files.write_durably, []

    def full_once(*args, **kwargs):
        calls.append(os.path.basename(args[0]))
        if len(calls) == 1:
            raise OSError(errno.ENOSPC, "No space left on device", args[0])
        return real(*args, **kwargs)
    monkeypatch.setattr(mfsha_files, "write_durably", full_once)
    monkeypatch.setattr(os, "statvfs", statvfs(0))
    assert mst.mod.add_changelog(lines)["version"] == 1417
    assert calls == ["changelog_ml.0.mfs", mfsha_mfs.WAS_FULL, "changelog_ml.0.mfs"]  # the marker, then again
    assert not (mst.data / mfsha_mfs.RESERVE).exists()
    # no reserve left: the error stands, with its path
    monkeypatch.setattr(mfsha_files, "write_durably", lambda *a, **k: (_ for _ in ()).throw(
        OSError(errno.ENOSPC, "No space left on device", a[0])))
    with pytest.raises(CommandExecutionError, match="changelog_ml.0.mfs failed: .*No space left"):
        mst.mod.add_changelog(lines)

