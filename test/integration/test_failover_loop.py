"""The failover loop on the lab: real beacons on the masters, the real Salt master's reactor and orchestration, the
mfsha runner; faults injected into the real mfsmaster. Every wait is bounded; timings print with pytest -s.

Shared-storage lab: there is no DRBD here, so "switchover refuses an unsafe move" is tested with the peer's heartbeat
down; the DRBD refusal (peer disk not UpToDate) is covered by test/unit/test_failover_decision.py on captured status."""
import json
import os
import signal
import time

import pytest

from mfshalab.hosts import wait_for
from mfshalab.loop import Events

pytestmark = pytest.mark.lab
MNT = "/srv/mfsconf"  # lab pillar storage mountpoint


@pytest.fixture
def fo(loop):
    """A healthy lab with the loop installed, a fresh failover book (no cooldown carried over) and an event log."""
    lab = loop
    lab.heal()
    book = os.path.join(lab.rundir, "salt", "cache", "mfsha", "lab.json")
    if os.path.exists(book):
        os.unlink(book)
    ev = Events(lab)
    yield lab, ev
    ev.close()
    for m in lab.masters:  # never leave a stopped master behind
        for pid in lab.mfsmaster_pids(m):
            os.kill(pid, signal.SIGCONT)


def kill_master(lab, sig):
    node = lab.active()
    pids = lab.mfsmaster_pids(node)
    assert node and pids
    for pid in pids:
        os.kill(pid, sig)
    return node, time.monotonic()


def assert_serving_with_data(lab, manifest, mount_before):
    wait_for("VIP serving", lambda: lab.active() and lab.serving(), 30, interval=0.5)
    assert lab.probe(timeout=30), "client write+read through the VIP failed"
    assert lab.verify_files(manifest) == {}
    assert lab.mount_id() == mount_before, "the client remounted"


def no_recovery(lab, node, seconds=5):
    """The master on NODE stays down for SECONDS (nothing restarted or moved it)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert not lab.mfsmaster_pids(node) and not lab.serving(timeout=1), "something recovered the master"
        time.sleep(0.5)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP], ids=["kill9", "sigstop"])
def test_service_fault_is_restarted_in_place(fo, sig):
    lab, ev = fo
    manifest = lab.write_files(n=10, subdir=f"loop-{sig.name}")
    mount_before = lab.mount_id()
    node, t0 = kill_master(lab, sig)
    (tag, data), = ev.wait("mfsha/failover/", 60)
    print(f"{sig.name}: {tag} after {time.monotonic() - t0:.1f} s: {data['reason']} {data['durations_s']}")
    assert tag == "mfsha/failover/restarted", data
    assert data["decision"]["node"] == node and lab.active() == node
    assert set(data["timeline"]) >= {"detected", "decided", "restarted", "serving"}
    assert_serving_with_data(lab, manifest, mount_before)
    # the beacon fired once per transition: one master/down, then one master/up
    ups = ev.wait(f"salt/beacon/{node}/mfsha/master/up", 30)
    time.sleep(3)
    assert len(ev.matching(f"salt/beacon/{node}/mfsha/master/down")) == 1
    assert len(ev.matching(f"salt/beacon/{node}/mfsha/master/up")) == len(ups) == 1
    assert [t for t, _ in ev.matching("mfsha/failover/")] == ["mfsha/failover/restarted"]


def test_second_fault_inside_cooldown_does_not_flap(fo):
    lab, ev = fo
    lab.write_pillar({"failover": {"restart_budget": 0, "cooldown": 300}})  # always move; one move per 5 min
    try:
        manifest = lab.write_files(n=5, subdir="flap")
        first, _ = kill_master(lab, signal.SIGKILL)
        (tag, data), = ev.wait("mfsha/failover/", 90)
        assert tag == "mfsha/failover/moved", data
        second = lab.wait_serving(60)
        assert second != first
        kill_master(lab, signal.SIGKILL)
        (tag, data) = ev.wait("mfsha/failover/", 60, count=2)[1]
        assert tag == "mfsha/failover/refused" and "flap guard" in data["reason"], data
        no_recovery(lab, second)
        assert lab.node_state(second)["vip"] and not lab.node_state(first)["vip"], "the resources moved back"
    finally:
        lab.write_pillar({})
    lab.salt.cmd(second, "mfsha.restart_master", f"cfg={MNT}/mfsmaster.cfg", timeout=60)
    assert lab.wait_serving(30) == second
    assert lab.verify_files(manifest) == {}


def test_maintenance_suppresses_action(fo):
    lab, ev = fo
    p = lab.salt.run_cmd("mfsha.maintenance", "lab", "on", "--out=json")
    assert p.returncode == 0 and json.loads(p.stdout)["maintenance"] is True, p.stderr
    try:
        node, _ = kill_master(lab, signal.SIGKILL)
        (tag, data), = ev.wait("mfsha/failover/", 60)
        assert tag == "mfsha/failover/suppressed" and "maintenance is on" in data["reason"], data
        no_recovery(lab, node)
        status = lab.salt.run_cmd("mfsha.status", timeout=60).stdout
        print(status)
        assert "maintenance on" in status and "FAILING" in status
    finally:
        assert lab.salt.run_cmd("mfsha.maintenance", "lab", "off").returncode == 0
    lab.salt.cmd(node, "mfsha.restart_master", f"cfg={MNT}/mfsmaster.cfg", timeout=60)
    lab.wait_serving(30)


def test_event_forged_by_non_member_does_nothing(fo):
    lab, ev = fo
    masters = ",".join(lab.masters)
    assert all(lab.salt.cmd(masters, "beacons.disable_beacon", "mfsha", tgt_type="list").values())
    try:
        node, _ = kill_master(lab, signal.SIGKILL)
        tag = f"salt/beacon/{node}/mfsha/master/down"
        data = json.dumps({"what": "master", "state": "down", "node": node, "cluster": "lab", "id": node})
        lab.salt.cmd("mfs-client", "event.send", tag, f"data={data}")
        (t, d), = ev.wait("mfsha/failover/", 60)
        assert t == "mfsha/failover/ignored" and "'mfs-client' is not a master node" in d["reason"], d
        no_recovery(lab, node)
        # the same event from the member itself is acted on: the membership check made the difference
        lab.salt.cmd(node, "event.send", tag, f"data={data}")
        (t, d) = ev.wait("mfsha/failover/", 60, count=2)[1]
        assert t == "mfsha/failover/restarted", d
    finally:
        lab.salt.cmd(masters, "beacons.enable_beacon", "mfsha", tgt_type="list")
    lab.wait_serving(30)


def test_standby_heartbeat_gone_is_started_again(fo):
    """heartbeat gone from the standby (stopped here; after a partition heals, heartbeat v1's restart can end in an
    "Emergency Shutdown"): the loop starts it again, and the group stays where it is."""
    lab, ev = fo
    manifest = lab.write_files(n=5, subdir="rejoin")
    mount_before = lab.mount_id()
    active = lab.active()
    peer = lab.peer(active)
    lab.host(peer).run(["/etc/init.d/heartbeat", "stop"], timeout=60)
    t0 = time.monotonic()
    (tag, data), = ev.wait("mfsha/failover/rejoined", 100)  # a first look may find it still shutting down: waiting
    print(f"rejoined after {time.monotonic() - t0:.1f} s: {data['reason']} {data.get('detail')}")
    assert data["decision"]["node"] == peer and data["detail"]["how"] == "service heartbeat start", data
    wait_for("both heartbeats joined", lab.joined, 30, interval=1)
    assert lab.active() == active
    assert_serving_with_data(lab, manifest, mount_before)
    assert {t.rsplit("/", 1)[1] for t, _ in ev.matching("mfsha/failover/")} <= {"waiting", "rejoined", "healthy"}


def test_switchover_refuses_unsafe_move_then_switches(fo):
    lab, ev = fo
    active = lab.active()
    peer = lab.peer(active)
    # the loop would start the peer's heartbeat again (test above): its beacon is off while heartbeat is down
    assert lab.salt.cmd(peer, "beacons.disable_beacon", "mfsha")[peer]
    try:
        lab.host(peer).run(["/etc/init.d/heartbeat", "stop"], timeout=60)
        p = lab.salt.run_cmd("mfsha.switchover", "lab", "--out=json", timeout=90)
        ret = json.loads(p.stdout)
        assert ret["result"] == "refused" and ret["reasons"] == [f"heartbeat is not running on peer {peer}"], ret
        assert lab.active() == active and lab.serving()
        lab.host(peer).run(["/etc/init.d/heartbeat", "start"], timeout=60)
    finally:
        lab.salt.cmd(peer, "beacons.enable_beacon", "mfsha")
    wait_for("both heartbeats joined", lab.joined, 60, interval=1)
    manifest = lab.write_files(n=5, subdir="switch")
    p = lab.salt.run_cmd("mfsha.switchover", "lab", "--out=json", timeout=120)
    ret = json.loads(p.stdout)
    print(ret)
    assert ret["result"] == "switched" and ret["to"] == peer, ret
    assert lab.active() == peer and lab.serving()
    assert lab.verify_files(manifest) == {}
    # the loop never acted: any event found the cluster healthy, or the peer's heartbeat still starting
    # (`transition`: waiting), or the switchover's lock held it off; during the move heartbeat's `transition` kept
    # the beacon from judging the stopping master
    acted = [t for t, _ in ev.matching("mfsha/failover/")
             if t.rsplit("/", 1)[1] not in ("healthy", "waiting", "skipped")]
    assert acted == []
    assert ev.matching(f"salt/beacon/{active}/mfsha/master/down") == []
