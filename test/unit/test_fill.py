"""The metalogger fill's judgement (_utils/mfsha_fill.py), fed with the real captured changelogs: `data-hole` is the
master's DATA_PATH (changes 1266..1275 cut out, metadata version 1216), `data-kill9` the full stream a metalogger
holds (1..1416)."""
import copy
import os
import pathlib
import sys

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "_utils"))
import mfsha_fill  # noqa: E402
import mfsha_mfs  # noqa: E402
import mfsha_pillar  # noqa: E402

MFS = REPO / "test" / "unit" / "fixtures" / "mfs"
START, HOLE = 1216, {"from": 1266, "to": 1275}


def tail(data, since=START):
    d = MFS / data
    return mfsha_mfs.changelog_tail({p.name: p.read_text() for p in d.glob("changelog*.mfs")}, since)


def answer(entries):
    """What mfsmaster.changelog_since returns for these {version: line}."""
    vs = sorted(entries)
    return {"first": vs[0] if vs else None, "last": vs[-1] if vs else None, "count": len(vs),
            "lines": [entries[v] for v in vs]}


OWN = {v: mfsha_fill.digest(x) for v, x in tail("data-hole").items()}
STREAM = tail("data-kill9")


def verdict(answers, expected=None, outside=None, own=OWN, gap=HOLE):
    return mfsha_fill.verdict(answers, sorted(answers) if expected is None else expected, outside or {}, own,
                              dict(gap), START)


def test_the_metaloggers_copy_fills_the_hole():
    v = verdict({"paris-cs1": (True, answer(STREAM))})
    assert (v["action"], v["source"], v["first"], v["last"], v["problems"]) == ("fill", ["paris-cs1"], 1216, 1416, [])
    assert v["lines"] == [STREAM[n] for n in range(1216, 1417)]


def test_two_metaloggers_that_agree_give_one_run():
    early = {n: x for n, x in STREAM.items() if n <= 1300}
    late = {n: x for n, x in STREAM.items() if n >= 1250}
    v = verdict({"paris-cs1": (True, answer(early)), "paris-cs2": (True, answer(late))})
    assert (v["action"], v["source"], v["first"], v["last"]) == ("fill", ["paris-cs1", "paris-cs2"], 1216, 1416)


def test_a_crafted_line_is_refused_and_both_sides_named():
    crafted = dict(STREAM)
    crafted[1280] = "1280: 1795618038|UNLINK(1,f1):1212\n"  # DATA_PATH holds the real 1280 after the hole
    v = verdict({"paris-cs1": (True, answer(STREAM)), "rogue": (True, answer(crafted))})
    assert v["action"] == "refuse" and v["lines"] == []
    assert v["problems"] == [f"DATA_PATH and the metaloggers disagree on 1 change(s): change 1280: DATA_PATH has "
                             f"sha256 {OWN[1280]}, rogue has {crafted[1280]!r} (sha256 "
                             f"{mfsha_fill.digest(crafted[1280])})"]


def test_a_crafted_line_in_the_hole_is_refused_by_the_other_metalogger():
    crafted = {**STREAM, 1270: "1270: 1795618038|UNLINK(1,f1):1212\n"}
    v = verdict({"a-ml": (True, answer(STREAM)), "b-rogue": (True, answer(crafted))})
    assert v["action"] == "refuse"
    assert len(v["problems"]) == 1
    assert "change 1270: a-ml has " in v["problems"][0] and "b-rogue has" in v["problems"][0]


def test_many_disagreements_are_counted():
    crafted = {n: f"{n}: 1|SESSION():1\n" for n in STREAM}
    v = verdict({"rogue": (True, answer(crafted))})
    assert len(v["problems"]) == 1 and v["problems"][0].count("; change ") == mfsha_fill.SHOWN - 1
    assert v["problems"][0].startswith(f"DATA_PATH and the metaloggers disagree on {len(OWN)} change(s): ")
    assert v["problems"][0].endswith(f"; and {len(OWN) - mfsha_fill.SHOWN} more changes")


@pytest.mark.parametrize("answers, expected, outside, problem", [
    ({"paris-cs1": (True, answer(STREAM))}, ["paris-cs1", "paris-cs2"], {},
     "metalogger paris-cs2 gave no changelog (no answer): the changes it holds are unknown"),
    ({"paris-cs1": (True, answer(STREAM)), "paris-cs2": (False, "'mfsmaster.changelog_since' is not available")},
     None, {}, "metalogger paris-cs2 gave no changelog ('mfsmaster.changelog_since' is not available): the changes "
               "it holds are unknown"),
    ({"paris-cs1": (True, answer(STREAM)), "paris-web1": (True, answer(STREAM))}, ["paris-cs1"], {},
     "paris-web1 answered, but the metalogger targets do not match it on the Salt master: its changelog is refused"),
    ({"paris-cs1": (True, answer(STREAM)), "paris-mfs2": (True, answer(STREAM))}, None,
     {"paris-mfs2": "is a master node of cluster paris"},
     "paris-mfs2 is a master node of cluster paris: its changelog is refused"),
    ({}, [], {}, "the metalogger targets match no minion on the Salt master"),
], ids=["silent", "failed", "not-expected", "outsider", "none-expected"])
def test_who_may_feed_the_fill(answers, expected, outside, problem):
    v = verdict(answers, expected, outside)
    assert v["action"] == "refuse" and v["lines"] == [] and problem in v["problems"], v["problems"]


def good(**change):
    return dict(answer(STREAM), **change)


@pytest.mark.parametrize("ret, why", [
    ("1216: x\n", "not a dict with first, last and lines"),
    ({"first": 1216, "lines": []}, "not a dict with first, last and lines"),
    (good(lines="".join(STREAM.values())), "lines is not a list"),
    (good(first=True), "do not fit"),
    (good(first="1216"), "do not fit"),
    (good(first=1000, last=1200), "do not fit"),  # before the replay start
    (good(last=1500), "do not fit"),
    (good(lines=[STREAM[1216], STREAM[1218]], last=1217), "line 1 is change 1218, not 1217"),
    (good(lines=[STREAM[1217], STREAM[1216]], first=1216, last=1217), "line 0 is change 1217, not 1216"),
    (good(lines=[STREAM[1216].rstrip("\n")], last=1216), "line 0 is not one `<version>: ...` changelog line"),
    (good(lines=["1216: a\n1217: b\n"], last=1216), "line 0 is not one `<version>: ...` changelog line"),
    (good(lines=["1216: a\x00\n"], last=1216), "line 0 is not one `<version>: ...` changelog line"),
    (good(lines=["1216: " + "x" * mfsha_fill.MAX_LINE + "\n"], last=1216), "line 0 is not text or oversized"),
    (good(lines=[b"1216: x\n"], last=1216), "line 0 is not text or oversized"),
    (good(first=None, last=None, lines=[]) | {"first": 1216}, "without lines"),
])
def test_a_malformed_answer_is_refused_with_its_reason(ret, why):
    v = verdict({"paris-cs1": (True, ret)})
    assert v["action"] == "refuse" and len(v["problems"]) == 1, v["problems"]
    assert v["problems"][0].startswith("metalogger paris-cs1's answer is refused: ") and why in v["problems"][0]


def test_too_many_lines_are_refused(monkeypatch):
    monkeypatch.setattr(mfsha_fill, "MAX_LINES", 100)
    v = verdict({"paris-cs1": (True, answer(STREAM))})
    assert v["problems"] == ["metalogger paris-cs1's answer is refused: 201 lines, more than 100"]


def test_an_unknown_tail_nobody_extends_is_complete():
    own = {v: mfsha_fill.digest(x) for v, x in STREAM.items()}  # a full disk: DATA_PATH replays to 1417
    short = {n: x for n, x in STREAM.items() if n <= 1400}
    v = verdict({"paris-cs1": (True, answer(short)), "paris-cs2": (True, answer({}))}, own=own,
                gap={"from": 1417, "to": None})
    assert v["action"] == "complete" and v["lines"] == [] and "from 1417 on" in v["note"], v
    # a metalogger holding more than DATA_PATH: its changes are filled in
    more = {**STREAM, 1417: "1417: 1795618040|ACCESS(1)\n"}
    v = verdict({"paris-cs1": (True, answer(more))}, own=own, gap={"from": 1417, "to": None})
    assert (v["action"], v["last"]) == ("fill", 1417)


def test_a_hole_no_metalogger_closes_is_refused():
    short = {n: x for n, x in STREAM.items() if n <= 1270}
    v = verdict({"paris-cs1": (True, answer(short))})
    assert v["action"] == "refuse" and "no gapless run of the changes from 1266 to 1275" in v["problems"][0]
    # changes held beyond a gap between the metaloggers: filling the first run would drop the others
    far = {n: x for n, x in STREAM.items() if n >= 1350}
    v = verdict({"paris-cs1": (True, answer(STREAM)), "paris-cs2": (True, answer(far))},
                own={}, gap={"from": 1266, "to": None})
    assert v["action"] == "fill"  # one run 1216..1416 holds them all
    v = verdict({"paris-cs1": (True, answer(short)), "paris-cs2": (True, answer(far))}, own={},
                gap={"from": 1266, "to": None})
    assert v["action"] == "refuse" and "from 1266 to 1416" in v["problems"][0]


def test_outsiders_are_master_nodes_and_other_clusters_minions():
    pillar = yaml.safe_load((REPO / "pillar.example").read_text())["mfsha"]
    defaults = yaml.safe_load((REPO / "mfsha" / "defaults.yaml").read_text())
    clusters = mfsha_pillar.validate(pillar, defaults)
    got = mfsha_fill.outsiders(["paris-cs1", "paris-mfs2", "berlin-cs1", "berlin-mfs1", "elsewhere"], clusters,
                               "paris")
    assert got == {"paris-mfs2": "is a master node of cluster paris",
                   "berlin-cs1": "is a chunkserver/metalogger target of cluster berlin",
                   "berlin-mfs1": "is a master node of cluster berlin"}


def test_changelog_tail_reads_files_in_numeric_order_and_refuses_two_lines_for_one_change():
    files = {p.name: p.read_text() for p in (MFS / "data-kill9").glob("changelog*.mfs")}
    both = dict(files, **{"changelog.10.mfs": files["changelog.0.mfs"]})  # .10 would sort before .2 by name
    assert mfsha_mfs.changelog_tail(both, 1) == mfsha_mfs.changelog_tail(files, 1)
    forged = copy.deepcopy(files)
    forged["changelog_ml.10.mfs"] = "1300: 1795618038|UNLINK(1,f1):1212\n"
    with pytest.raises(ValueError, match="change 1300 differs between two changelog lines"):
        mfsha_mfs.changelog_tail(forged, 1216)
    assert 1300 not in mfsha_mfs.changelog_tail(forged, 1301)  # outside the range asked for: not read


def test_the_fill_conversation_closes_the_hole(tmp_path):
    """mfsha_fill.fill says what to ask; the real mfsmaster module answers, on a copy of `data-hole` (the node) and on
    `data-kill9` (metalogger paris-cs1's copy): DATA_PATH ends complete and the note says what was copied."""
    import pwd
    import shutil
    from unit_support import load_salt_module
    data = tmp_path / "mfsconf"
    shutil.copytree(MFS / "data-hole", data)
    (data / "mfsmaster.cfg").write_text(f"WORKING_USER = {pwd.getpwuid(os.getuid()).pw_name}\nDATA_PATH = {data}\n")
    mfsmaster = load_salt_module("_modules/mfsmaster.py")
    clusters = mfsha_pillar.validate(yaml.safe_load((REPO / "pillar.example").read_text())["mfsha"],
                                     yaml.safe_load((REPO / "mfsha" / "defaults.yaml").read_text()))
    c = copy.deepcopy(clusters["paris"])
    c["storage"]["mountpoint"] = str(data)
    c["metaloggers"]["config"]["DATA_PATH"] = str(MFS / "data-kill9")
    asked = []

    def answer(ask):
        asked.append(ask[:3] if ask[0] == "call" else ask)
        if ask[0] != "call":
            return clusters if ask[0] == "clusters" else ["paris-cs1"]
        _, target, fun, kwarg, _, tgt_type = ask
        return {m: (True, getattr(mfsmaster, fun.split(".")[1])(**kwarg))
                for m in (["paris-cs1"] if tgt_type == "compound" else target)}
    steps, reply = mfsha_fill.fill(c, "paris-mfs1", None), None
    with pytest.raises(StopIteration) as done:
        while True:
            reply = answer(steps.send(reply))
    assert done.value.value == ("changes 1266..1416 were missing in paris-mfs1's changelog: 201 changes from 1216 on "
                                "copied from metalogger paris-cs1", None)
    assert asked == [("call", ["paris-mfs1"], "mfsmaster.data_path_ok"),
                     ("call", ["paris-mfs1"], "mfsmaster.changelog_digests"), ("minions", "paris-cs*"),
                     ("call", "paris-cs*", "mfsmaster.changelog_since"), ("clusters",),
                     ("call", ["paris-mfs1"], "mfsmaster.add_changelog")]
    assert mfsmaster.data_path_ok(cfg=str(data / "mfsmaster.cfg"))["hole"] is None
