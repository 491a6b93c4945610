"""The failover loop's sls, rendered by real Salt: the beacon config on master nodes (monitoring.sls), the reactor
config for the Salt master (reactor.sls), the thin reactor (reactor/health.sls) and the orchestration."""
import copy
import json

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


INJECTION = 'x:\n  test.nop: []\npwn:\n  local.cmd.run:\n    - tgt: "*"\n    - arg: ["touch /tmp/pwned"]\nmfsha-recover-y'
HOSTILE_IDS = [INJECTION, "a'b", 'a"b', "a\\nb", "a\nb\r\nc", "{{ 7*7 }}", "{% raw %}", "{# x #}", "&anchor *alias",
               "!!python/object/apply:os.system ['touch /tmp/pwned']", "- [a, b]", "key: value", "]}{[", "\x00\x07",
               "\u2028\u2029\ufeff", "\U0001f600 emoji", "\\", "\t", "#", "%", "@", "`id`", "$(id)",
               "x" * 65536, "\n" * 2000 + "pwn: [1]"]


def reactor_render(formula, data, tag=TAG):
    return formula.mod.slsutil.renderer(path="salt://mfsha/reactor/health.sls", tag=tag, data=data)


def only_state(out):
    """The one state of a rendered reactor: always mfsha-recover, a runner.state.orchestrate of mfsha.orch.recover
    whose whole pillar is one string, the event as JSON."""
    assert list(out) == ["mfsha-recover"], list(out)[:5]
    (fun, args), = out["mfsha-recover"].items()
    assert fun == "runner.state.orchestrate"
    mods, pillar = args[0]["args"]
    assert mods == {"mods": "mfsha.orch.recover"}
    assert list(pillar) == ["pillar"] and list(pillar["pillar"]) == ["mfsha_event"]
    event = pillar["pillar"]["mfsha_event"]
    assert isinstance(event, str)
    return json.loads(event)


def test_reactor_hands_the_event_on_as_one_json_string(formula):
    formula.use("saltmaster", "example")
    assert only_state(reactor_render(formula, BEACON_EVENT)) == {"tag": TAG, "data": BEACON_EVENT}


def test_a_hostile_event_renders_one_state_carrying_it_as_data(formula):
    """Issue 21's injection and a corpus of quotes, newlines, YAML/Jinja syntax and a 64 KiB id, in the id, in
    other fields, in a key and in the tag: always the one state, with the event as data."""
    formula.use("saltmaster", "example")
    for bad in HOSTILE_IDS:
        data = dict(BEACON_EVENT, id=bad, details=bad, since=bad, **{"x: y": bad})
        tag = f"salt/beacon/{bad[:80]}/mfsha/master/down"
        assert only_state(reactor_render(formula, data, tag=tag)) == {"tag": tag, "data": data}, bad[:80]


def test_orchestration_calls_the_runner_with_the_event_string_only(formula, tmp_path):
    for data in (BEACON_EVENT, dict(BEACON_EVENT, id=INJECTION)):
        event = json.dumps({"tag": TAG, "data": data})
        f = formula.use("saltmaster", dict({"mfsha_event": event}, **_example()))
        out = f.mod.slsutil.renderer(path="salt://mfsha/orch/recover.sls")
        assert list(out) == ["mfsha-recover"]
        (fun, args), = out["mfsha-recover"].items()
        assert fun == "salt.runner"
        kw = {k: v for d in args for k, v in d.items()}
        assert kw == {"name": "mfsha.recover", "event": event}


def _example():
    return load_pillar("example")


def test_disabled_loop_installs_no_beacon(formula):
    """failover:enabled false (e.g. masterless salt-call, which has no minion daemon to run beacons)."""
    pillar = copy.deepcopy(load_pillar("example"))
    pillar["mfsha"]["clusters"]["paris"]["failover"]["enabled"] = False
    ids = formula.use("paris-mfs2", pillar).ids()
    assert "mfsha-heartbeat-service" in ids and not [i for i in ids if i.startswith("mfsha-monitoring")]
