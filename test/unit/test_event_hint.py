"""The event is a hint only (_utils/mfsha_event.py): hostile ids, tags, payload types and sizes never yield more than
a candidate minion id, and a bad one yields none."""
import json
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "_utils"))
import mfsha_event  # noqa: E402

TAG = "salt/beacon/mfs-a/mfsha/master/down"
INJECTION = 'x:\n  test.nop: []\npwn:\n  local.cmd.run:\n    - tgt: "*"\n    - arg: ["touch /tmp/pwned"]\nmfsha-recover-y'


def as_reactor_sends(tag, data):
    return json.dumps({"tag": tag, "data": data})


def test_a_beacon_event_names_its_sender():
    h = mfsha_event.hint(as_reactor_sends(TAG, {"id": "mfs-a", "since": 0, "last_version": 10 ** 12}))
    assert h == {"minion": "mfs-a", "tag": TAG, "problems": []}


def test_the_operator_argument_wins():
    assert mfsha_event.hint(as_reactor_sends(TAG, {"id": "mfs-a"}), minion="mfs-b")["minion"] == "mfs-b"


def test_the_tag_names_the_minion_when_data_has_no_id():
    assert mfsha_event.hint({"tag": TAG, "data": {}})["minion"] == "mfs-a"


@pytest.mark.parametrize("bad_id", [INJECTION, "a b", "mfs-a\n", "../etc", "*", "{{ 7*7 }}", "'", '"', "x" * 300,
                                    "", 7, None, ["mfs-a"], {"id": "mfs-a"}])
def test_a_hostile_id_names_no_minion(bad_id):
    h = mfsha_event.hint(as_reactor_sends("salt/beacon/x y/mfsha/master/down", {"id": bad_id}))
    assert h["minion"] is None and h["problems"]


@pytest.mark.parametrize("event", ["{", "[1, 2]", '"text"', "null", 42, ["x"], "x" * (mfsha_event.LIMIT + 1),
                                   json.dumps({"tag": TAG, "data": {"id": "mfs-a", "pad": "p" * 70000}})])
def test_undecodable_or_oversized_events_are_a_hint_of_nothing(event):
    h = mfsha_event.hint(event)
    assert h["minion"] is None and h["tag"] is None and h["problems"], h


@pytest.mark.parametrize("tag", ["salt/beacon/mfs-a/other/master/down", "salt/beacon/mfs-a/mfsha/master/down/x",
                                 TAG + "\n", 5, "salt/job/1/ret/mfs-a"])
def test_a_foreign_tag_is_not_reported_as_the_trigger(tag):
    h = mfsha_event.hint({"tag": tag, "data": {"id": "mfs-a"}})
    assert h["tag"] is None and h["minion"] == "mfs-a" and h["problems"]


def test_nothing_but_minion_tag_and_problems_comes_out():
    h = mfsha_event.hint(as_reactor_sends(TAG, {"id": "mfs-a", "since": "yesterday", "last_version": "huge"}))
    assert set(h) == {"minion", "tag", "problems"}
