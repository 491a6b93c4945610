"""THE RULE of the failover loop (_utils/mfsha_rule.py decide / move_blockers / switchover_blockers / table, imported
directly) on node looks built from captured outputs: mfsha.node_state through the real modules (test_beacon.Node),
DRBD status fixtures; and the runner's look (_runners/mfsha.py _look), which takes what THE RULE needs."""
import copy

import pytest
import yaml

import mfsha_pillar
import mfsha_rule
from unit_support import REPO, load_salt_module
from test_beacon import Node, Server

runner = load_salt_module("_runners/mfsha.py")
NOW = 1_700_000_000.0


@pytest.fixture(scope="module")
def paris():
    pillar = yaml.safe_load((REPO / "pillar.example").read_text())["mfsha"]
    defaults = yaml.safe_load((REPO / "mfsha" / "defaults.yaml").read_text())
    return mfsha_pillar.validate(pillar, defaults)["paris"]


@pytest.fixture(scope="module")
def looks(tmp_path_factory):
    """Captured looks at a node, by name: real node_state returns (the answering/hung endpoints are closed after)."""
    out = {}
    up, hung = Server("answer"), Server("hang")
    try:
        def look(name, **kw):
            node = Node(tmp_path_factory.mktemp(name), **kw)
            out[name] = dict(node.state(mounted=name.startswith("active")), answered=True)
        look("active-serving", drbd="drbdsetup-status-json__connected-primary-uptodate__mfsmaster1.txt", port=up.port)
        look("active-hung", drbd="drbdsetup-status-json__connected-primary-uptodate__mfsmaster1.txt",
             master="mfsmaster-test__sigstopped", port=hung.port)
        look("active-killed", drbd="drbdsetup-status-json__connected-primary-uptodate__mfsmaster1.txt",
             master="mfsmaster-test__after-kill9", port=1)
        look("active-no-heartbeat", rsc="", master="mfsmaster-test__after-kill9", port=1,
             drbd="drbdsetup-status-json__connected-primary-uptodate__mfsmaster1.txt")
        look("active-moving", rsc="transition", master="mfsmaster-test__stopped", port=1,
             drbd="drbdsetup-status-json__connected-primary-uptodate__mfsmaster1.txt")
        look("passive-uptodate", rsc="none", vip=False, port=up.port,
             drbd="drbdsetup-status-json__connected-secondary-uptodate__mfsmaster2.txt")
        look("passive-inconsistent", rsc="none", vip=False, port=up.port,
             drbd="drbdsetup-status-json__connected-secondary-inconsistent__mfsmaster2.txt")
        look("passive-no-heartbeat", rsc="", vip=False, port=up.port,
             drbd="drbdsetup-status-json__connected-secondary-uptodate__mfsmaster2.txt")
        look("passive-no-service", rsc="none", vip=False, port=1,  # nothing answers on the VIP
             drbd="drbdsetup-status-json__connected-secondary-uptodate__mfsmaster2.txt")
        look("passive-inconsistent-no-service", rsc="none", vip=False, port=1,
             drbd="drbdsetup-status-json__connected-secondary-inconsistent__mfsmaster2.txt")
    finally:
        up.close()
        hung.close()
    return out


def facts(looks, a, b):
    return {"paris-mfs1": copy.deepcopy(looks[a]), "paris-mfs2": copy.deepcopy(looks[b]) if b else
            {"answered": False, "error": "no answer"}}


def book(*history, maintenance=False):
    return {"maintenance": maintenance, "history": list(history)}


def entry(action, ago):
    return {"time": NOW - ago, "action": action, "node": "paris-mfs1", "result": True, "duration_s": 5}


def decide(c, f, b=None, **kw):
    return mfsha_rule.decide(c, f, b or book(), NOW, **kw)


def test_serving_cluster_needs_nothing(paris, looks):
    d = decide(paris, facts(looks, "active-serving", "passive-uptodate"))
    assert d["action"] == "none" and d["node"] == "paris-mfs1"


@pytest.mark.parametrize("fault", ["active-hung", "active-killed"])
def test_failing_master_on_healthy_host_is_restarted_in_place(paris, looks, fault):
    d = decide(paris, facts(looks, fault, "passive-uptodate"))
    assert d["action"] == "restart" and d["node"] == "paris-mfs1", d
    assert "restart 1 of 2" in d["reason"]


def test_spent_restart_budget_moves_to_an_uptodate_peer(paris, looks):
    d = decide(paris, facts(looks, "active-hung", "passive-uptodate"), book(entry("restart", 10), entry("restart", 5)))
    assert (d["action"], d["node"], d["peer"]) == ("move", "paris-mfs1", "paris-mfs2"), d
    assert "restart budget spent (2 of 2 in 60 s)" in d["reason"]


def test_old_restarts_leave_the_window(paris, looks):
    d = decide(paris, facts(looks, "active-hung", "passive-uptodate"), book(entry("restart", 70), entry("restart", 65)))
    assert d["action"] == "restart"


def test_failed_restart_moves(paris, looks):
    d = decide(paris, facts(looks, "active-killed", "passive-uptodate"), restart_failed=True)
    assert d["action"] == "move" and "did not serve" in d["reason"]


def test_flap_guard_refuses_a_second_move_inside_cooldown(paris, looks):
    d = decide(paris, facts(looks, "active-killed", "passive-uptodate"),
               book(entry("restart", 3), entry("restart", 2), entry("move", 30)))
    assert d["action"] == "refuse" and "flap guard: the resources moved 30 s ago (cooldown 60 s)" in d["reason"]


def test_never_promotes_a_peer_whose_disk_is_not_uptodate(paris, looks):
    d = decide(paris, facts(looks, "active-killed", "passive-inconsistent"), restart_failed=True)
    assert d["action"] == "refuse"
    assert "peer paris-mfs2 may not be promoted: local disk of volume 0 is Inconsistent, not UpToDate" in d["reason"]


def test_peer_heartbeat_down_refuses_the_move(paris, looks):
    d = decide(paris, facts(looks, "active-killed", "passive-no-heartbeat"), restart_failed=True)
    assert d["action"] == "refuse" and "heartbeat is not running on peer paris-mfs2" in d["reason"]


def test_standby_without_heartbeat_is_rejoined_once_per_cooldown(paris, looks):
    """heartbeat gone from the standby (stopped, crashed, or its emergency shutdown after a partition heals): the
    serving node would have nobody to move to, so the loop starts it there; not twice within the cooldown."""
    f = facts(looks, "active-serving", "passive-no-heartbeat")
    d = decide(paris, f)
    assert (d["action"], d["node"], d["peer"]) == ("rejoin", "paris-mfs2", "paris-mfs1")
    assert d["reason"] == ("heartbeat is not running on paris-mfs2, which holds nothing, while paris-mfs1 serves: "
                           "start it there")
    tried = dict(entry("rejoin", 20), node="paris-mfs2")
    d = decide(paris, f, book(tried))
    assert d["action"] == "refuse" and "flap guard: the loop started it 20 s ago (cooldown 60 s)" in d["reason"]
    assert decide(paris, f, book(dict(tried, time=NOW - 61)))["action"] == "rejoin"
    assert decide(paris, f, book(entry("rejoin", 20)))["action"] == "rejoin"  # that one was the other node
    assert decide(paris, f, book(maintenance=True))["action"] == "suppress"


@pytest.mark.parametrize("active, passive", [
    ("active-serving", "passive-uptodate"),  # both run heartbeat
    ("active-no-heartbeat", "passive-no-heartbeat"),  # the holder's own heartbeat is gone: nobody to join
    ("active-serving", None),  # the standby does not answer (host down)
])
def test_rejoin_only_beside_a_serving_holder_with_heartbeat(paris, looks, active, passive):
    assert decide(paris, facts(looks, active, passive))["action"] != "rejoin"


def test_no_heartbeat_on_the_active_node_neither_restarts_nor_moves(paris, looks):
    d = decide(paris, facts(looks, "active-no-heartbeat", "passive-uptodate"))
    assert d["action"] == "refuse"
    assert "heartbeat is not running on paris-mfs1" in d["reason"]


def test_heartbeat_moving_resources_waits(paris, looks):
    assert decide(paris, facts(looks, "active-moving", "passive-uptodate"))["action"] == "wait"


def test_nobody_holds_the_resources(paris, looks):
    f = facts(looks, "passive-no-service", "passive-no-service")
    assert f["paris-mfs1"]["vip_serves"] is False
    assert decide(paris, f)["action"] == "wait"  # the Salt master did not probe the VIP
    d = decide(paris, f, vip_serves=False)
    assert (d["action"], d["node"]) == ("takeover", "paris-mfs1"), d  # the preferred node first
    assert d["reason"] == "no node holds the resources and the VIP does not serve: take them on paris-mfs1 through " \
                          "heartbeat"
    d = decide(paris, facts(looks, "passive-inconsistent-no-service", "passive-no-service"), vip_serves=False)
    assert (d["action"], d["node"]) == ("takeover", "paris-mfs2"), d
    d = decide(paris, facts(looks, "passive-no-service", None), vip_serves=False)  # the peer is dead
    assert (d["action"], d["node"]) == ("takeover", "paris-mfs1"), d
    d = decide(paris, f, book(dict(entry("takeover", 30))), vip_serves=False)
    assert d["action"] == "refuse" and "flap guard: a takeover 30 s ago did not keep them" in d["reason"]
    d = decide(paris, f, vip_serves=True)
    assert d["action"] == "refuse" and "yet the VIP serves: a human decides" in d["reason"]
    d = decide(paris, facts(looks, "passive-no-heartbeat", "passive-inconsistent-no-service"), vip_serves=False)
    assert d["action"] == "refuse" and d["reason"] == (
        "no node holds the resources and the VIP does not serve; heartbeat is not running on paris-mfs1; paris-mfs2 "
        "may not be promoted: local disk of volume 0 is Inconsistent, not UpToDate")


def test_master_answering_only_locally_is_moved(paris, looks):
    # a firewall on the active node: its own probe passes, the passive node and the Salt master see nothing
    f = facts(looks, "active-serving", "passive-no-service")
    d = decide(paris, f, vip_serves=False)
    assert (d["action"], d["node"], d["peer"]) == ("move", "paris-mfs1", "paris-mfs2"), d
    assert d["reason"].startswith("mfsmaster on paris-mfs1 answers there, but the VIP does not serve from paris-mfs2 "
                                  "nor from the Salt master")
    assert decide(paris, f, vip_serves=True)["action"] == "none"  # only the link between the masters
    assert decide(paris, f)["action"] == "none"
    assert decide(paris, facts(looks, "active-serving", "passive-uptodate"), vip_serves=False)["action"] == "none"
    d = decide(paris, f, book(entry("move", 20)), vip_serves=False)
    assert d["action"] == "refuse" and "flap guard" in d["reason"]


@pytest.mark.parametrize("active, passive, client_look, outside", [
    ("active-hung", "passive-no-service", False, False),  # restart path: no probe of a hung master's VIP
    ("active-killed", "passive-uptodate", False, False),
    ("active-serving", "passive-uptodate", True, False),  # the passive view serves: no Salt-master probe
    ("active-serving", "passive-no-service", True, True),  # maybe a firewall: both outside views
    ("passive-no-service", "passive-no-service", True, True),  # nobody holds the group
])
def test_look_takes_the_client_view_only_when_the_rule_needs_it(paris, looks, monkeypatch, active, passive,
                                                                client_look, outside):
    calls, probes = [], []
    captured = facts(looks, active, passive)

    def call(minions, fun, kwarg=None, timeout=10):
        assert fun == "mfsha.node_state" and kwarg["cluster"] == "paris"
        calls.append((sorted(minions), kwarg["client"]))
        return {m: (True, dict(captured[m], vip_serves=captured[m]["vip_serves"] if kwarg["client"] else None))
                for m in minions}
    monkeypatch.setattr(runner, "_call", call)
    monkeypatch.setattr(runner, "_serving", lambda c: probes.append(c["name"]) or (False, "connection refused"))
    got, vip_serves = runner._look(paris)
    both = ["paris-mfs1", "paris-mfs2"]
    passives = [n for n in both if not captured[n]["active"]]
    assert calls == [(both, False)] + ([(passives, True)] if client_look else [])
    assert probes == (["paris"] if outside else []) and vip_serves is (False if outside else None)
    assert {n: got[n]["vip_serves"] for n in both} == {n: captured[n]["vip_serves"] if client_look else None
                                                       for n in both}


def test_both_nodes_holding_resources_is_for_a_human(paris, looks):
    d = decide(paris, facts(looks, "active-killed", "active-serving"))
    assert d["action"] == "refuse" and "a human decides" in d["reason"]


def test_maintenance_from_pillar_or_runner_suppresses(paris, looks):
    f = facts(looks, "active-killed", "passive-uptodate")
    assert decide(paris, f, book(maintenance=True))["action"] == "suppress"
    c = copy.deepcopy(paris)
    c["failover"]["maintenance"] = True
    assert decide(c, f)["action"] == "suppress"


def test_disabled_failover_is_ignored(paris, looks):
    c = copy.deepcopy(paris)
    c["failover"]["enabled"] = False
    assert decide(c, facts(looks, "active-killed", "passive-uptodate"))["action"] == "ignore"


def test_membership_is_by_pillar_nodes(paris):
    clusters = {"paris": paris}
    assert mfsha_rule.cluster_of(clusters, "paris-mfs2") == "paris"
    assert mfsha_rule.cluster_of(clusters, "paris-web1") is None  # a client of the cluster is no master node
    assert mfsha_rule.cluster_of(clusters, "mallory") is None


def test_switchover_pre_checks(paris, looks):
    ok = facts(looks, "active-serving", "passive-uptodate")
    assert mfsha_rule.switchover_blockers(paris, ok, book()) == []
    assert "maintenance is on" in mfsha_rule.switchover_blockers(paris, ok, book(maintenance=True))[0]
    why = mfsha_rule.switchover_blockers(paris, facts(looks, "active-serving", "passive-inconsistent"), book())
    assert why == ["peer paris-mfs2 may not be promoted: local disk of volume 0 is Inconsistent, not UpToDate"]
    why = mfsha_rule.switchover_blockers(paris, facts(looks, "active-serving", "passive-no-heartbeat"), book())
    assert why == ["heartbeat is not running on peer paris-mfs2"]
    why = mfsha_rule.switchover_blockers(paris, facts(looks, "active-serving", None), book())
    assert why == ["no answer from peer paris-mfs2: no answer"]


def test_status_table_shows_each_node(paris, looks):
    last = dict(entry("move", 30), to="paris-mfs2")
    text = mfsha_rule.table(paris, facts(looks, "active-hung", "passive-uptodate"), dict(book(last), last=last),
                        (False, "connect: refused"))
    assert "VIP 10.20.0.10 DOES NOT SERVE" in text and "maintenance off" in text
    assert "move paris-mfs1 -> paris-mfs2" in text
    rows = {line.split()[0]: line for line in text.splitlines()[3:]}
    assert "active" in rows["paris-mfs1"] and "FAILING" in rows["paris-mfs1"] and "Primary UpToDate/UpToDate" in \
        rows["paris-mfs1"]
    assert "passive" in rows["paris-mfs2"] and "Secondary UpToDate/UpToDate" in rows["paris-mfs2"]
