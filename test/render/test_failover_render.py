"""The failover loop's sls, rendered by real Salt: the beacon config on master nodes (monitoring.sls), the reactor
config for the Salt master (reactor.sls), the thin reactor (reactor/health.sls) and the orchestration."""
import copy

import yaml

from render_support import load_pillar

BEACON_EVENT = {"what": "master", "state": "down", "since": 1795619627.49, "details": "mfsmaster is not running",
                "repeat": 0, "node": "paris-mfs1", "cluster": "paris", "active": True, "heartbeat": "all",
                "id": "paris-mfs1", "_stamp": "2026-11-25T15:13:48.981235"}
TAG = "salt/beacon/paris-mfs1/mfsha/master/down"


def test_master_nodes_get_the_beacon_from_the_pillar(formula):
    ids = formula.use("paris-mfs1", "example").ids()
    chunk = ids["mfsha-monitoring-beacon"]
    assert (chunk["state"], chunk["fun"], chunk["name"]) == ("beacon", "present", "mfsha")
    want = {"interval": 1, "cluster": "paris", "vip": "10.20.0.10", "interface": "eth0", "port": 9421,
            "mountpoint": "/mfsconf", "storage": "drbd", "resource": "r0", "peer": "paris-mfs2", "debounce": 2,
            "repeat": 60, "service_after": 30, "probe_timeout": 0.5, "reserve_mb": 64, "save": True}
    assert {k: chunk[k] for k in want} == want
    # the beacon module is loaded in the running minion before beacon.present validates it
    assert ids["mfsha-monitoring-beacon-loaded"]["fun"] == "until"
    assert {"loop": "mfsha-monitoring-beacon-loaded"} in chunk["require"]


def test_check_interval_is_converted_to_loop_ticks(formula):
    p = load_pillar("example")
    p["mfsha"]["clusters"]["berlin"]["failover"] = {"check_interval": 3, "debounce": 4, "cooldown": 120,
                                                    "serve_timeout": 45}
    chunk = formula.use("berlin-mfs2", p).ids()["mfsha-monitoring-beacon"]
    assert (chunk["interval"], chunk["debounce"], chunk["repeat"], chunk["service_after"], chunk["storage"],
            chunk["peer"], chunk["interface"]) == (3, 4, 120, 45, "shared", "berlin-mfs1", "bond0")


def test_only_master_nodes_are_monitored(formula):
    for minion in ("paris-cs1", "paris-web1", "nobody"):
        assert "mfsha-monitoring-beacon" not in formula.use(minion, "example").ids(), minion


def test_reactor_config_routes_down_events_to_the_thin_reactor(formula):
    chunk = formula.use("saltmaster", "example").ids("mfsha.reactor")["mfsha-reactor-config"]
    assert chunk["name"] == "/etc/salt/master.d/mfsha-reactor.conf"
    conf = yaml.safe_load(chunk["contents"])
    assert conf == {"reactor": [{"salt/beacon/*/mfsha/*/down": ["salt://mfsha/reactor/health.sls"]}]}


def test_reactor_hands_the_event_to_the_orchestration(formula):
    out = formula.use("saltmaster", "example").mod.slsutil.renderer(
        path="salt://mfsha/reactor/health.sls", tag=TAG, data=BEACON_EVENT)
    (sid, body), = out.items()
    assert sid == "mfsha-recover-paris-mfs1"
    (fun, args), = body.items()
    assert fun == "runner.state.orchestrate"
    mods, pillar = args[0]["args"]
    assert mods == {"mods": "mfsha.orch.recover"}
    assert pillar == {"pillar": {"mfsha_event": {"tag": TAG, "data": BEACON_EVENT}}}


def test_orchestration_calls_the_runner_with_the_sender(formula, tmp_path):
    f = formula.use("saltmaster", dict({"mfsha_event": {"tag": TAG, "data": BEACON_EVENT}}, **_example()))
    out = f.mod.slsutil.renderer(path="salt://mfsha/orch/recover.sls")
    (fun, args), = out["mfsha-recover"].items()
    assert fun == "salt.runner"
    kw = {k: v for d in args for k, v in d.items()}
    assert kw["name"] == "mfsha.recover" and kw["minion"] == "paris-mfs1"
    assert kw["event"] == {"tag": TAG, "data": BEACON_EVENT}


def _example():
    return load_pillar("example")


def test_disabled_loop_installs_no_beacon(formula):
    """failover:enabled false (e.g. masterless salt-call, which has no minion daemon to run beacons)."""
    pillar = copy.deepcopy(load_pillar("example"))
    pillar["mfsha"]["clusters"]["paris"]["failover"]["enabled"] = False
    ids = formula.use("paris-mfs2", pillar).ids()
    assert "mfsha-heartbeat-service" in ids and not [i for i in ids if i.startswith("mfsha-monitoring")]
