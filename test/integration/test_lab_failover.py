"""mfsha on the network-namespace lab: deploy, host death, graceful handover, the master lock, both nodes restarting.
One lab for the module (see test/integration/conftest.py); every wait is bounded; timings are printed (pytest -s)."""
import time

import pytest
from mfshalab.hosts import wait_for
from mfshalab.pillar import HEARTBEAT_TIMING

pytestmark = pytest.mark.lab

DEADTIME = HEARTBEAT_TIMING["deadtime"]


def show(res):
    print({k: v for k, v in res.items() if k != "events"})


def assert_failed_over(lab, res, manifest, mount_before, version_before, serve_limit):
    show(res)
    assert res["new_active"] and res["new_active"] != res["old"]
    assert not res["two_masters"], "two mfsmaster processes ran at once"
    assert not res["two_storage"], "the shared storage was mounted on both nodes at once"
    assert not res["two_vip"], "both nodes held the VIP at once"
    assert res["serving"] <= serve_limit
    assert res["client_resumed"] is not None
    assert lab.mount_id() == mount_before, "the client remounted"
    assert lab.metadata_version() >= version_before, "metadata went back in time"
    after = lab.write_files(n=10, subdir=f"after-{res['old']}-{time.monotonic_ns()}")  # the new master takes writes
    assert lab.verify_files({**manifest, **after}) == {}


def test_deploy_is_idempotent(lab):
    """A second `salt 'mfs*' state.apply mfsha` on the deployed lab changes nothing and fails nothing."""
    ret = lab.deploy()
    assert set(ret) == set(lab.minions)
    changed = {m: [k for k, v in r["result"].items() if v.get("changes")] for m, r in ret.items() if r["changes"]}
    assert changed == {}


def test_dry_run_reports_a_change_and_changes_nothing(healthy_lab):
    """`state.apply mfsha test=True` after a pillar change: both masters report the pending ha.cf change, nothing
    fails, nothing is written and the active master stays where it is."""
    lab = healthy_lab
    active = lab.active()
    read = lambda: {m: lab.host(m).run(["cat", "/etc/ha.d/ha.cf"]).stdout for m in lab.masters}  # noqa: E731
    before, old = read(), lab.pillar_overrides
    assert all("warntime 3" in text for text in before.values())
    lab.write_pillar({**(old or {}), "heartbeat": {"warntime": 4}})
    lab.refresh_pillar()
    try:
        ret = lab.salt.cmd(",".join(lab.masters), "state.apply", "mfsha", "test=True", tgt_type="list", timeout=300)
        for m in lab.masters:
            assert isinstance(ret[m], dict), ret[m]
            assert [k for k, v in ret[m].items() if v["result"] is False] == []
            ha_cf = next(v for k, v in ret[m].items() if "_|-mfsha-heartbeat-ha.cf_|-" in k)
            assert ha_cf["result"] is None and "+warntime 4" in ha_cf["changes"]["diff"], ha_cf
        assert read() == before and lab.active() == active
    finally:
        lab.write_pillar(old or {})
        lab.refresh_pillar()


def test_host_death_fails_over_with_data(healthy_lab):
    """...and the survivor resets the dead holder's connections (mfsha-tickle): the client reconnects when the new
    master listens, not after mfsmount's own 10 s receive timeout (which it logs as ETIMEDOUT)."""
    lab = healthy_lab
    manifest = lab.write_files(n=20, subdir="death")
    mount_before, version_before = lab.mount_id(), lab.metadata_version()
    timeouts = len(lab.client.syslog("mfsmount.*master: tcp recv error: ETIMEDOUT"))
    tickles = len(lab.host(lab.peer(lab.active())).syslog("mfsha-tickle"))
    res = lab.fail_over("crash", timeout=90)
    assert res["detected"] is not None and res["detected"] >= DEADTIME - 2, "dead before deadtime?"
    assert_failed_over(lab, res, manifest, mount_before, version_before, serve_limit=DEADTIME + 20)
    new = lab.host(res["new_active"])
    line = wait_for("mfsha-tickle's report", lambda: new.syslog("mfsha-tickle")[tickles:], 10)[0]
    # the client's, both chunkservers' and the metalogger's connection were recorded on the old holder
    assert f".mfsha-peers.{res['old']}" in line and "connection(s)" in line, line
    for port, n in ((9421, 1), (9420, 2), (9419, 1)):
        assert line.count(f"->{port}") == n, line
    assert len(lab.client.syslog("mfsmount.*master: tcp recv error: ETIMEDOUT")) == timeouts


def test_host_death_fails_over_with_the_salt_master_down(healthy_lab):
    """Host death needs no Salt: heartbeat alone moves storage, VIP and master while the Salt master is gone too."""
    lab = healthy_lab
    manifest = lab.write_files(n=10, subdir="death-no-salt")
    mount_before, version_before = lab.mount_id(), lab.metadata_version()
    lab.crash(lab.salt_host)
    try:
        res = lab.fail_over("crash", timeout=90)
        assert not lab.host(lab.salt_host).alive()  # still down: nothing above needed it
        assert_failed_over(lab, res, manifest, mount_before, version_before, serve_limit=DEADTIME + 20)
    finally:
        lab.heal(timeout=180)  # boots the Salt master again and waits for every minion


def test_graceful_handover_serves_same_data(healthy_lab):
    lab = healthy_lab
    manifest = lab.write_files(n=20, subdir="handover")
    mount_before, version_before = lab.mount_id(), lab.metadata_version()
    res = lab.fail_over("handover", timeout=90)
    assert_failed_over(lab, res, manifest, mount_before, version_before, serve_limit=40)


def test_second_master_refused_while_first_holds_data(healthy_lab):
    """Operator error on the passive node: the shared storage mounted beside the active node and mfsmaster started
    on it. The second master must not run and the first keeps serving.
    Measured here: `.mfsmaster.lock` does NOT stop it ("lockfile created and locked": the owner is in another PID
    namespace); the background saver's lock does ("bgsaver lock exists: EACCES"). Both are kernel locks, which a real
    shared disk between two machines never shares: there, heartbeat as the storage's only owner is the protection."""
    lab = healthy_lab
    active = lab.active()
    passive = lab.peer(active)
    host = lab.host(passive)
    mnt = lab.cluster_pillar()["storage"]["mountpoint"]
    host.run(["mount", lab.device, mnt], timeout=30)
    try:
        p = host.run(["timeout", "60", "mfsmaster", "-a", "-c", f"{mnt}/mfsmaster.cfg", "start"], timeout=70,
                     check=False)
        out = p.stdout + p.stderr
        print(out)
        assert p.returncode != 0, out
        assert "lock" in out, out
        # the refused master says "exiting"; its daemon child may take a moment to be gone
        wait_for("the refused second master to exit", lambda: lab.mfsmaster_pids(passive) == [], timeout=15)
    finally:
        for pid in lab.mfsmaster_pids(passive):
            host.run(["kill", "-9", str(pid)], check=False)
        host.run(["umount", mnt], timeout=30)
    assert lab.active() == active and lab.serving()
    assert lab.probe(timeout=30)


def test_cluster_returns_after_both_masters_restart(healthy_lab):
    lab = healthy_lab
    manifest = lab.write_files(n=10, subdir="both")
    mount_before, version_before = lab.mount_id(), lab.metadata_version()
    active = lab.active()
    passive = lab.peer(active)
    lab.crash(passive)
    lab.crash(active)
    assert not lab.serving()
    t0 = time.monotonic()
    for m in lab.masters:
        lab.restart(m)
    new = lab.wait_serving(timeout=120)
    print(f"both masters restarted: serving again on {new} after {time.monotonic() - t0:.1f} s")
    assert lab.probe(timeout=60)
    assert lab.mount_id() == mount_before
    assert lab.metadata_version() >= version_before
    after = lab.write_files(n=10, subdir=f"after-restart-{time.monotonic_ns()}")
    assert lab.verify_files({**manifest, **after}) == {}


def test_redeploy_after_failovers_changes_nothing(healthy_lab):
    ret = healthy_lab.deploy()
    changed = {m: [k for k, v in r["result"].items() if v.get("changes")] for m, r in ret.items() if r["changes"]}
    assert changed == {}
