"""The mfsha beacon: debounce and transition logic, and the checks it derives from one real look at a node
(_modules/mfsha.node_state with captured mfsmaster/DRBD outputs, a real hung TCP endpoint for the protocol probe)."""
import os
from pathlib import Path

import pytest

import mfsha_drbd
from unit_support import FIXTURES, FakeCommands, load_salt_module
from test_mfs_parse import Server
from test_mfsmaster_module import fixture

beacon = load_salt_module("_beacons/mfsha.py")
T0 = 1_700_000_000.0


def bad(*names, good=(), skip=()):
    out = {n: (True, f"{n} failed") for n in names}
    out.update({n: (False, "ok") for n in good})
    out.update({n: (None, "") for n in skip})
    return out


# ---- Tracker: debounce and transitions ---------------------------------------------------------------------------

def test_down_only_after_debounce_consecutive_bad_checks():
    t = beacon.Tracker(debounce=2, repeat=60)
    assert t.update(bad("master"), T0) == []
    ev = t.update(bad("master"), T0 + 1)
    assert ev == [{"what": "master", "state": "down", "since": T0, "details": "master failed", "repeat": 0}]
    assert t.update(bad("master"), T0 + 2) == []  # a held state is not re-sent


def test_up_after_debounce_good_checks_once():
    t = beacon.Tracker(debounce=2, repeat=60)
    t.update(bad("master"), T0)
    t.update(bad("master"), T0 + 1)
    assert t.update(bad(good=["master"]), T0 + 2) == []
    ev = t.update(bad(good=["master"]), T0 + 3)
    assert [(e["what"], e["state"], e["since"]) for e in ev] == [("master", "up", T0 + 2)]
    assert t.update(bad(good=["master"]), T0 + 4) == []


def test_flapping_below_debounce_sends_nothing():
    t = beacon.Tracker(debounce=2, repeat=60)
    for i in range(10):
        assert t.update(bad("master") if i % 2 else bad(good=["master"]), T0 + i) == []


def test_debounce_one_reports_at_first_bad_check():
    t = beacon.Tracker(debounce=1, repeat=60)
    assert [e["state"] for e in t.update(bad("vip"), T0)] == ["down"]


def test_a_sure_fault_is_reported_at_the_first_look_and_recovery_still_debounced():
    t = beacon.Tracker(debounce=2, repeat=60)
    assert [e["state"] for e in t.update({"master": (True, "mfsmaster is not running", True)}, T0)] == ["down"]
    assert t.update({"master": (False, "serving", False)}, T0 + 1) == []
    assert [e["state"] for e in t.update({"master": (False, "serving", False)}, T0 + 2)] == ["up"]
    assert t.update({"master": (True, "no answer", False)}, T0 + 3) == []  # an unsure fault waits for debounce


def test_not_judged_keeps_the_streak():
    t = beacon.Tracker(debounce=2, repeat=60)
    t.update(bad("master"), T0)
    assert t.update(bad(skip=["master"]), T0 + 1) == []
    assert [e["state"] for e in t.update(bad("master"), T0 + 2)] == ["down"]


def test_a_check_no_longer_judged_here_starts_afresh():
    """The passive node's `service` went down (a cut-off), then the node took the group (not judged while active),
    then became passive again long after: a new failure waits for its hold and debounce, with a new since."""
    t = beacon.Tracker(debounce=2, repeat=60, hold={"service": 30})
    t.update(bad("service"), T0)
    assert [e["state"] for e in t.update(bad("service"), T0 + 30)] == ["down"]
    assert t.update(bad(good=["heartbeat"]), T0 + 31) == []  # active: service left out
    assert t.update(bad(good=["service"]), T0 + 200) == []  # passive again, serving: a fresh "up" sends nothing
    assert t.update(bad("service"), T0 + 205) == []  # fails again: no repeat of the stale down
    assert t.update(bad("service"), T0 + 234) == []
    assert [(e["state"], e["since"], e["repeat"]) for e in t.update(bad("service"), T0 + 235)] == \
        [("down", T0 + 205, 0)]


def test_a_move_keeps_the_streak_and_since():
    """heartbeat moving the group (every check None) is part of the outage the passive node times."""
    t = beacon.Tracker(debounce=2, repeat=60, hold={"service": 30})
    t.update(bad("service"), T0)
    assert all(t.update(bad(skip=["service"]), T0 + i) == [] for i in range(1, 20))
    assert [(e["state"], e["since"]) for e in t.update(bad("service"), T0 + 30)] == [("down", T0)]


def test_unresolved_fault_is_announced_again_every_repeat_seconds():
    t = beacon.Tracker(debounce=2, repeat=10)
    t.update(bad("master"), T0)
    t.update(bad("master"), T0 + 1)
    assert t.update(bad("master"), T0 + 10) == []
    ev = t.update(bad("master"), T0 + 11)
    assert [(e["state"], e["repeat"], e["since"]) for e in ev] == [("down", 1, T0)]
    assert t.update(bad("master"), T0 + 12) == []


def test_each_check_has_its_own_state():
    t = beacon.Tracker(debounce=2, repeat=60)
    t.update(bad("master", good=["heartbeat"]), T0)
    ev = t.update(bad("master", "heartbeat"), T0 + 1)
    assert [e["what"] for e in ev] == ["master"]
    ev = t.update(bad("master", "heartbeat"), T0 + 2)
    assert [e["what"] for e in ev] == ["heartbeat"]


@pytest.mark.parametrize("config, ok", [
    ([{"cluster": "lab"}, {"vip": "10.0.0.10"}, {"mountpoint": "/mfsconf"}], True),
    ([{"cluster": "lab"}, {"vip": "10.0.0.10"}], False),
    ([{"cluster": "lab"}, {"vip": "10.0.0.10"}, {"mountpoint": "/m"}, {"debounce": 0}], False),
    ([{"cluster": "lab"}, {"vip": "10.0.0.10"}, {"mountpoint": "/m"}, {"storage": "nfs"}], False),
    ([{"cluster": "lab"}, {"vip": "10.0.0.10"}, {"mountpoint": "/m"}, {"reserve_mb": -1}], False),
    ([{"cluster": "lab"}, {"vip": "10.0.0.10"}, {"mountpoint": "/m"}, {"reserve_mb": 0}], True),
    ("nonsense", False),
])
def test_validate(config, ok):
    assert beacon.validate(config)[0] is ok


# ---- one look at a node: node_state with captured outputs -> checks ------------------------------------------------

# `ip -o addr show dev eth0` of a lab node holding the VIP (here 127.0.0.1: the probe goes to the VIP)
IP_VIP = ("2: eth0    inet 10.99.0.11/24 scope global eth0\\       valid_lft forever preferred_lft forever\n"
          "2: eth0    inet 127.0.0.1/24 scope global secondary eth0\\       valid_lft forever preferred_lft forever")
IP_NO_VIP = "2: eth0    inet 10.99.0.12/24 scope global eth0\\       valid_lft forever preferred_lft forever"
DRBD = FIXTURES / "drbd" / "live-9"


class Node:
    """_modules/mfsha.py and _modules/mfsmaster.py loaded bare, commands replayed from captured outputs."""

    def __init__(self, tmp_path, rsc="all", vip=True, master="mfsmaster-test__running", drbd=None, port=None):
        self.fake = FakeCommands(tmp_path)
        self.mount = tmp_path / "mnt"
        self.mount.mkdir()
        cfg = self.mount / "mfsmaster.cfg"
        cfg.write_text("DATA_PATH = /nonexistent\n")
        self.fake.on("cl_status rscstatus", stdout=rsc + "\n", rc=0 if rsc else 1,
                     stderr="" if rsc else "Heartbeat is stopped on this machine.\n")
        self.fake.on("cl_status nodestatus mfs-b", stdout="active\n")
        self.fake.on("ip -o addr show dev eth0", stdout=IP_VIP if vip else IP_NO_VIP)
        out, err, rc = fixture(master)
        self.fake.on(f"mfsmaster -c {cfg} test", stdout=out, stderr=err, rc=rc)
        mfsmaster = load_salt_module("_modules/mfsmaster.py", salt={"cmd.run_all": self.fake.run_all})
        heartbeat = load_salt_module("_modules/heartbeat.py", salt={"cmd.run_all": self.fake.run_all})
        salt = {"cmd.run_all": self.fake.run_all, "mfsmaster.health": mfsmaster.health,
                "heartbeat.state": heartbeat.state}
        if drbd:
            salt["drbd.status"] = lambda res: mfsha_drbd.parse_status((DRBD / drbd).read_text())
            # what drbd.split_brain reads for a StandAlone resource: the kernel log captured at the split brain
            dmesg = (DRBD / "dmesg-split-brain__mfsmaster1.txt").read_text()
            salt["drbd.split_brain"] = lambda res: {"split_brain": mfsha_drbd.split_brain_in_log(dmesg, res) is not None}
        self.mod = load_salt_module("_modules/mfsha.py", salt=salt)
        self.storage = load_salt_module("_modules/mfsha_storage.py")
        self.mod.__grains__ = {"id": "mfs-a"}
        self.port = port or 1  # nothing listens on port 1: the VIP does not serve

    def state(self, mounted=True):
        mp = str(self.mount) if mounted else "/nowhere-mounted"
        self.mod.is_mounted = lambda m: mounted  # /proc/self/mounts of the test host knows nothing of the lab
        return self.mod.node_state(cluster="lab", vip="127.0.0.1", port=self.port, mountpoint=str(self.mount) if mounted
                                   else mp, storage="drbd" if self.mod.__salt__.get("drbd.status") else "shared",
                                   peer="mfs-b", timeout=0.3)


@pytest.fixture
def hung():
    srv = Server("hang")  # accepts the handshake in the kernel, never answers: a SIGSTOPped master
    yield srv
    srv.close()


def test_hung_master_on_active_node_is_a_master_fault(tmp_path, hung):
    node = Node(tmp_path, master="mfsmaster-test__sigstopped", port=hung.port)
    state = node.state()
    assert state["active"] and state["vip"] and state["heartbeat"] == {"running": True, "resources": "all",
                                                                         "peer": "active"}
    assert state["master"]["process"] and not state["master"]["protocol"]
    res = beacon.checks(state)
    assert res["master"][0] is True and "no answer" in res["master"][1]
    assert res["master"][2] is False  # a hung master may be a slow one: debounced
    assert res["heartbeat"][0] is False and res["vip"][0] is False and res["storage"][0] is False
    assert "drbd" not in res


def test_killed_master_is_a_master_fault(tmp_path):
    node = Node(tmp_path, master="mfsmaster-test__after-kill9", port=1)  # nothing listens on port 1
    res = beacon.checks(node.state())
    assert res["master"][0] is True and "not running" in res["master"][1]
    assert res["master"][2] is True  # no process: reported at the first look


def test_passive_node_judges_only_heartbeat_and_drbd(tmp_path):
    node = Node(tmp_path, rsc="none", vip=False, drbd="drbdsetup-status-json__connected-secondary-uptodate__mfsmaster2.txt")
    state = node.state(mounted=False)
    assert not state["active"] and state["master"] is None
    assert state["blockers"] == []  # UpToDate; the Primary peer hands over first
    res = beacon.checks(state)
    assert "master" not in res and "vip" not in res and "storage" not in res
    assert res["heartbeat"][0] is False and res["drbd"][0] is False


def test_passive_node_watches_the_vip_as_a_client(tmp_path):
    srv = Server("answer")
    try:
        node = Node(tmp_path, rsc="none", vip=False, port=srv.port)
        assert beacon.checks(node.state(mounted=False))["service"] == (False, "the VIP serves")
    finally:
        srv.close()
    node.port = 1  # nothing listens there: the VIP does not serve
    state = node.state(mounted=False)
    assert state["vip_serves"] is False
    assert beacon.checks(state)["service"] == (True, "the VIP does not serve (seen from this passive node)")
    node.fake.on("cl_status rscstatus", stdout="transition\n", rc=0)  # heartbeat moving: not looked at
    assert beacon.checks(node.state(mounted=False))["service"] == (None, "")
    node.fake.on("cl_status rscstatus", stdout="", rc=1)  # heartbeat not running: not this node's to judge
    assert "service" not in beacon.checks(node.state(mounted=False))
    (tmp_path / "a").mkdir()
    active = Node(tmp_path / "a", master="mfsmaster-test__after-kill9")
    assert active.state()["vip_serves"] is None and "service" not in beacon.checks(active.state())


def test_service_is_reported_only_after_it_failed_for_its_hold_time():
    t = beacon.Tracker(debounce=2, repeat=60, hold={"service": 30})
    assert all(t.update(bad("service"), T0 + i) == [] for i in range(30))
    ev = t.update(bad("service"), T0 + 30)
    assert [(e["what"], e["state"], e["since"]) for e in ev] == [("service", "down", T0)]
    assert t.update(bad(good=["service"]), T0 + 31) == []
    assert [e["state"] for e in t.update(bad(good=["service"]), T0 + 32)] == ["up"]  # recovery: debounce only
    t.update(bad("service"), T0 + 40)
    assert t.update(bad(good=["service"]), T0 + 41) == []  # a short outage resets the wait
    assert t.update(bad("service"), T0 + 42) == [] and t.update(bad("service"), T0 + 71) == []
    assert [e["state"] for e in t.update(bad("service"), T0 + 72)] == ["down"]


def test_heartbeat_moving_resources_is_not_judged(tmp_path):
    node = Node(tmp_path, rsc="transition", master="mfsmaster-test__stopped", port=1)
    res = beacon.checks(node.state())
    assert res["master"] == res["vip"] == res["storage"] == (None, "")


def test_heartbeat_down_and_vip_without_storage(tmp_path):
    node = Node(tmp_path, rsc="")
    state = node.state(mounted=False)
    assert state["heartbeat"]["running"] is False
    res = beacon.checks(state)
    assert res["heartbeat"] == (True, "heartbeat is not running")
    assert res["storage"][0] is True and res["vip"][0] is False


@pytest.mark.parametrize("fixture_name, problem", [
    ("drbdsetup-status-json__standalone-split-brain-primary__mfsmaster1.txt", "split brain; connection StandAlone"),
    ("drbdsetup-status-json__connected-secondary-inconsistent__mfsmaster2.txt", "local disk Inconsistent"),
    ("drbdsetup-status-json__peer-lost-connecting-secondary__mfsmaster1.txt", "connection Connecting"),
])
def test_drbd_faults_from_captured_status(tmp_path, fixture_name, problem):
    node = Node(tmp_path, rsc="none", vip=False, drbd=fixture_name)
    res = beacon.checks(node.state(mounted=False))
    assert res["drbd"][0] is True and problem in res["drbd"][1]


def test_beacon_sends_one_event_per_transition(tmp_path, hung):
    node = Node(tmp_path, master="mfsmaster-test__sigstopped", port=hung.port)
    node.mod.__opts__["cachedir"] = str(tmp_path / "cache")
    beacon.__salt__ = {"mfsha.node_state": lambda **kw: node.state(),
                       "mfsha_storage.record_peers": node.storage.record_peers,
                       "mfsha_storage.keep_reserve": node.storage.keep_reserve, "mfsha.keep_record": node.mod.keep_record}
    beacon.__opts__ = {"id": "mfs-a"}
    beacon._TRACKERS.clear()
    beacon._SEEN.clear()
    beacon._RECORDS.clear()
    config = [{"cluster": "lab"}, {"vip": "127.0.0.1"}, {"mountpoint": str(node.mount)}, {"debounce": 2}]
    assert beacon.validate(config)[0]
    sent = [beacon.beacon(config) for _ in range(4)]
    assert [len(s) for s in sent] == [0, 1, 0, 0]
    ev = sent[1][0]
    assert ev["tag"] == "master/down" and ev["node"] == "mfs-a" and ev["cluster"] == "lab"
    assert isinstance(ev["since"], float) and ev["active"] is True and "no answer" in ev["details"]
    assert ev["last_version"] is None  # never seen healthy here
    # the node's own record (what the loop acts on) says the same, written before the event left
    record = node.mod.read_record("lab")
    assert record["down"] == {"master": ev["since"]} and record["last_version"] is None
    assert oct(os.stat(tmp_path / "cache" / "mfsha" / "beacon-lab.json").st_mode & 0o777) == "0o600"
    # the master answers again (captured running state, real answering endpoint): one master/up
    srv = Server("answer")
    try:
        node.port = srv.port
        out, err, rc = fixture("mfsmaster-test__running")
        node.fake.on(f"mfsmaster -c {node.mount / 'mfsmaster.cfg'} test", stdout=out, stderr=err, rc=rc)
        sent = [beacon.beacon(config) for _ in range(3)]
    finally:
        srv.close()
    assert [[e["tag"] for e in s] for s in sent] == [[], ["master/up"], []]
    assert sent[1][0]["last_version"] == 1417  # what the captured live master reports (cltoma-info__after-replay)
    assert node.mod.read_record("lab") == dict(node.mod.read_record("lab"), down={}, last_version=None)
    # hung again: the record holds the version the master last reported healthy
    node.port = hung.port
    out, err, rc = fixture("mfsmaster-test__sigstopped")
    node.fake.on(f"mfsmaster -c {node.mount / 'mfsmaster.cfg'} test", stdout=out, stderr=err, rc=rc)
    sent = [beacon.beacon(config) for _ in range(2)]
    assert [[e["tag"] for e in s] for s in sent] == [[], ["master/down"]]
    record = node.mod.read_record("lab")
    assert record["down"] == {"master": sent[1][0]["since"]} and record["last_version"] == 1417


def test_fixture_dir_exists():
    assert Path(DRBD).is_dir(), f"{DRBD} is missing: the DRBD 9 captures belong in the repository"


def test_holder_records_its_vip_peers_and_a_failure_only_warns(tmp_path, hung, caplog):
    node = Node(tmp_path, master="mfsmaster-test__sigstopped", port=hung.port)
    calls = []

    def record(vip, mountpoint):
        calls.append((vip, mountpoint))
        raise PermissionError(13, "Permission denied", mountpoint + "/.mfsha-peers")
    beacon.__salt__ = {"mfsha.node_state": lambda **kw: node.state(), "mfsha_storage.record_peers": record,
                       "mfsha_storage.keep_reserve": node.storage.keep_reserve, "mfsha.keep_record": lambda c, r: None}
    beacon.__opts__ = {"id": "mfs-a"}
    beacon._TRACKERS.clear()
    config = [{"cluster": "lab"}, {"vip": "127.0.0.1"}, {"mountpoint": str(node.mount)}, {"debounce": 1}]
    assert [e["tag"] for e in beacon.beacon(config)] == ["master/down"]  # the look goes on
    assert calls == [("127.0.0.1", str(node.mount))]
    assert "keeping the VIP's peers" in caplog.text and "Permission denied" in caplog.text
    beacon.__salt__["mfsha.node_state"] = lambda **kw: node.state(mounted=False)  # not the holder: no record
    beacon.beacon(config)
    assert len(calls) == 1


def test_passive_node_probes_the_vip_only_every_probe_every_seconds(tmp_path, monkeypatch):
    """A probe of a hung master blocks the minion's main loop for probe_timeout; `service` needs 30 s anyway."""
    node = Node(tmp_path, rsc="none", vip=False)
    asked = []

    def look(**kw):
        asked.append(kw["client"])
        return node.state(mounted=False) if kw["client"] else dict(node.state(mounted=False), vip_serves=None)
    now = [100.0]
    monkeypatch.setattr(beacon.time, "time", lambda: now[0])
    beacon.__salt__ = {"mfsha.node_state": look, "mfsha.keep_record": lambda c, r: None}
    beacon._TRACKERS.clear()
    beacon._PROBED.clear()
    config = [{"cluster": "lab"}, {"vip": "127.0.0.1"}, {"mountpoint": str(node.mount)}]
    for _ in range(12):
        beacon.beacon(config)
        now[0] += 1
    assert asked == [True, False, False, False, False] * 2 + [True, False]
