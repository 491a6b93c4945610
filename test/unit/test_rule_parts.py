"""The smaller parts of _utils/mfsha_rule.py the runner leans on, imported directly: what a restart_master answer
means (a structured refusal, never text), the history entries and the book, Salt's answers, the operator inputs."""
import copy
import shutil

import pytest
import yaml

import mfsha_pillar
import mfsha_rule
from unit_support import REPO, load_salt_module

NOW = 1_700_000_000.0


def restart_answer(tmp_path, expect=None):
    """restart_master's own answer on the captured `data-kill9` DATA_PATH (replays to 1417)."""
    data = tmp_path / "mfsconf"
    shutil.copytree(REPO / "test/unit/fixtures/mfs/data-kill9", data)
    (data / "mfsmaster.cfg").write_text(f"DATA_PATH = {data}\n")
    mfsmaster = load_salt_module("_modules/mfsmaster.py")
    mod = load_salt_module("_modules/mfsha.py", salt={
        "mfsmaster.running": lambda cfg: False, "mfsmaster.kill": lambda cfg: False,
        "mfsmaster.missing_changes": mfsmaster.missing_changes, "mfsmaster.start": lambda **kw: {"pid": 4242},
        "mfsmaster.health": lambda **kw: {"healthy": True}})
    return mod.restart_master(cfg=str(data / "mfsmaster.cfg"), grace=0, expect_version=expect)


def test_restart_outcome_reads_the_structured_answer(tmp_path):
    assert mfsha_rule.restart_outcome(True, restart_answer(tmp_path / "a")) == "started"
    refused = restart_answer(tmp_path / "b", expect=1500)
    assert mfsha_rule.restart_outcome(True, refused) == mfsha_rule.MISSING_CHANGES == "missing_changes"
    # a failed call (its error text mentions missing changes: never read), another refusal, a malformed answer
    assert mfsha_rule.restart_outcome(False, refused["reason"]) == "failed"
    assert mfsha_rule.restart_outcome(True, dict(refused, refused="something else")) == "failed"
    assert mfsha_rule.restart_outcome(True, "changes the master acknowledged are missing") == "failed"
    assert mfsha_rule.restart_outcome(True, {"started": "yes"}) == "failed"


def test_one_entry_builder_and_the_book():
    tl = {"detected": NOW - 9, "decided": NOW - 2, "moved": NOW, "restarted": NOW - 1}
    move = {"action": "move", "node": "paris-mfs1", "peer": "paris-mfs2", "reason": "why"}
    assert mfsha_rule.entry(move, True, tl, "moved") == {"time": NOW - 2, "action": "move", "node": "paris-mfs1",
                                                         "result": True, "duration_s": 9.0, "reason": "why",
                                                         "to": "paris-mfs2"}
    restart = mfsha_rule.entry(dict(move, action="restart"), False, tl, "restarted")
    assert "to" not in restart and restart["duration_s"] == 8.0 and restart["result"] is False
    book = {"maintenance": False, "history": [dict(restart, action="rejoin")] * mfsha_rule.HISTORY}
    mfsha_rule.add_entry(book, restart)
    assert len(book["history"]) == mfsha_rule.HISTORY and book["history"][-1] == book["last"] == restart
    rejoin = dict(restart, action="rejoin")
    mfsha_rule.add_entry(book, rejoin)
    assert book["history"][-1] == rejoin and book["last"] == restart  # a rejoin is no failover
    assert mfsha_rule.recent(book, ("restart",), NOW, 60) == [restart]
    assert mfsha_rule.durations(tl) == {"detected": 0.0, "decided": 7.0, "moved": 9.0, "restarted": 8.0}


def test_salt_answers_and_silent_minions():
    ret = {"a": {"ret": {"x": 1}, "retcode": 0, "success": True}, "b": {"ret": "boom", "retcode": 1},
           "c": "Minion did not return. [No response]"}
    assert mfsha_rule.answers(["a", "b", "c", "d"], ret) == {"a": (True, {"x": 1}), "b": (False, "boom"),
                                                             "c": (False, "no answer"), "d": (False, "no answer")}
    assert list(mfsha_rule.answers(None, ret)) == ["a", "b", "c"]  # a compound target: those that answered


def test_operator_inputs_and_status_data():
    with pytest.raises(ValueError, match="maintenance state must be on or off, not 'maybe'"):
        mfsha_rule.maintenance_flag("maybe")
    assert [mfsha_rule.maintenance_flag(s) for s in ("on", "OFF", True, False)] == [True, False, True, False]
    paris = mfsha_pillar.validate(yaml.safe_load((REPO / "pillar.example").read_text())["mfsha"],
                                  yaml.safe_load((REPO / "mfsha" / "defaults.yaml").read_text()))["paris"]
    facts = {"paris-mfs1": {"answered": True, "active": True}, "paris-mfs2": {"answered": False, "error": "x"}}
    data = mfsha_rule.status_data(paris, facts, {"maintenance": True}, (False, "refused"))
    assert (data["active"], data["maintenance"], data["vip_serves"], data["last_failover"]) == \
        ("paris-mfs1", True, False, None)
    c = copy.deepcopy(paris)
    assert mfsha_rule.status_data(c, dict(facts, **{"paris-mfs2": {"answered": True, "active": True}}), {},
                                  (True, "ok"))["active"] == ["paris-mfs1", "paris-mfs2"]
