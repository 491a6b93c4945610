"""The runner acts on its own look, never on an event (issue 21 items 2 and 6): `since` and `last_version` come
from the nodes' own beacon records, a malformed node answer reads as no answer, and every run ends with its result
event even when something breaks."""
import json

import pytest

import mfsha_rule
from unit_support import load_salt_module

NOW = 1_700_000_000.0
TAG = "salt/beacon/paris-mfs1/mfsha/master/down"


@pytest.fixture
def runner():
    sent = []
    mod = load_salt_module("_runners/mfsha.py", salt={"event.send": lambda tag, data: sent.append((tag, data))})
    mod.sent = sent
    return mod


def look(active=True, record=None, **extra):
    return dict({"active": active, "vip": active, "mounted": active, "heartbeat": {"running": True,
                 "resources": "all" if active else "none"}, "master": {"healthy": True} if active else None,
                 "drbd": None, "blockers": None, "vip_serves": None, "record": record, "answered": True}, **extra)


def test_since_comes_from_the_nodes_records_not_the_event():
    facts = {"a": look(record={"down": {"master": NOW - 7, "drbd": NOW - 9000}, "last_version": 1417}),
             "b": look(active=False, record={"down": {"service": NOW - 3}})}
    assert mfsha_rule.first_down(facts, NOW) == NOW - 7  # drbd's old down is not the service's
    assert mfsha_rule.first_down({"a": look(record={})}, NOW) == NOW  # nothing recorded: the runner's own clock
    assert mfsha_rule.first_down({"a": look(record={"down": {"master": NOW + 500}})}, NOW) == NOW  # never later
    assert mfsha_rule.first_down({"a": look(record={"down": {"master": "0"}}), "b": {"answered": False}}, NOW) == NOW


@pytest.mark.parametrize("record,want", [({"last_version": 1417}, 1417), ({"last_version": "1e12"}, None),
                                         ({"last_version": True}, None), ({"last_version": -5}, None), (None, None),
                                         ({}, None)])
def test_last_version_comes_from_the_acting_nodes_own_record(record, want):
    assert mfsha_rule.own_last_version({"a": look(record=record), "b": look(record={"last_version": 99})}, "a") == want


@pytest.mark.parametrize("answer,missing", [
    ({}, "active"), ("text", None), ([1], None), (dict(look(), heartbeat={"running": "yes"}), "heartbeat"),
    (dict(look(), master="healthy"), "master"), (dict(look(), blockers="none"), "blockers"),
    ({k: v for k, v in look().items() if k != "vip"}, "vip")])
def test_a_malformed_answer_is_no_answer(answer, missing):
    why = mfsha_rule.malformed(answer)
    assert why and (missing is None or missing in why), why
    assert mfsha_rule.malformed(look()) is None and mfsha_rule.malformed(dict(look(), record=None)) is None


def test_facts_turn_a_malformed_answer_into_no_answer(runner, monkeypatch):
    monkeypatch.setattr(runner, "_call", lambda *a, **k: {"a": (True, {"active": True}), "b": (True, look(False))})
    cluster = {"name": "p", "nodes": [{"id": "a", "hostname": "a"}, {"id": "b", "hostname": "b"}],
               "vip": {"address": "10.0.0.10", "interface": "eth0"}, "master": {"config": {"MATOCL_LISTEN_PORT": 9421}},
               "storage": {"type": "shared", "mountpoint": "/m", "drbd": {"resource": "r0"}}}
    facts = runner._facts(cluster)
    assert facts["a"]["answered"] is False and "malformed" in facts["a"]["error"]
    assert facts["b"]["answered"] is True


@pytest.mark.parametrize("event", [json.dumps({"tag": "salt/beacon/mfs-client/mfsha/master/down",
                                               "data": {"id": "x:\n  pwn: 1"}}), "{", 42,
                                   json.dumps({"tag": TAG, "data": {"id": "mfs-client"}})])
def test_an_event_naming_no_master_node_is_ignored(runner, monkeypatch, event):
    monkeypatch.setattr(runner, "_clusters", lambda: {"paris": {"nodes": [{"id": "paris-mfs1"}, {"id": "paris-mfs2"}]}})
    out = runner.recover(event=event)
    assert out["result"] == "ignored" and out["cluster"] is None
    assert [t for t, _ in runner.sent] == ["mfsha/failover/ignored"]


def test_a_crash_still_ends_with_the_result_event(runner, monkeypatch):
    def broken():
        raise KeyError("nodes")
    monkeypatch.setattr(runner, "_clusters", broken)
    out = runner.recover(event=json.dumps({"tag": TAG, "data": {"id": "paris-mfs1"}}))
    assert out["result"] == "failed" and "KeyError" in out["reason"]
    assert [t for t, _ in runner.sent] == ["mfsha/failover/failed"]


def test_result_text_is_redacted(runner):
    out = runner._result("p", "failed", "Command 'drbdsetup net --shared-secret=Zq8vN3xKp2LmT7wR' failed", {})
    assert "Zq8v" not in out["reason"] and "Zq8v" not in json.dumps(runner.sent)
