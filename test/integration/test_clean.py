"""mfsha.clean on the lab (mfsha/clean.sls): applied on the node that holds the group it is refused and changes
nothing; on the standby it removes what the formula installed there while the holder keeps serving every file
written before; `state.apply mfsha` on that standby makes the pair whole again, and a handover to it works.
Render-level checks (targets, DRBD, the refusal's text): test/render/test_clean.py."""
import hashlib

import pytest

from mfshalab.faults.common import bytes_lost, write
from mfshalab.hosts import wait_for

pytestmark = pytest.mark.lab

# What mfsha lays down on a lab master node (shared storage: no DRBD files)
INSTALLED = ("/etc/ha.d/ha.cf", "/etc/ha.d/authkeys", "/etc/ha.d/haresources", "/etc/ha.d/resource.d/MFSGuard",
             "/etc/ha.d/resource.d/MFSMaster", "/usr/local/sbin/mfsha-witness", "/usr/local/sbin/mfsha-selffence",
             "/usr/local/sbin/mfsha-tickle")
REFUSED = "test_|-mfsha-clean-refused-on-the-holder_|-mfsha.clean_|-fail_without_changes"


def present(lab, node):
    return [p for p in INSTALLED if lab.host(node).run(["test", "-e", p], check=False).returncode == 0]


def digest(lab, node):
    """Checksums of what mfsha installed on NODE (a file's absence shows as such)."""
    h = lab.host(node)
    return {p: hashlib.sha256(h.run(["cat", p], check=False).stdout.encode()).hexdigest() for p in present(lab, node)}


def heartbeat_pids(lab, node):
    return sorted(pid for pid, cmd in lab.host(node).processes().items() if cmd.startswith("heartbeat:"))


def beacons(lab, node):
    return lab.salt.cmd(node, "beacons.list", "return_yaml=False", timeout=60)[node] or {}


def snapshot(lab, node):
    return {"files": digest(lab, node), "heartbeat": heartbeat_pids(lab, node), "beacons": sorted(beacons(lab, node)),
            "holds": lab.node_state(node), "enabled": lab.salt.cmd(node, "service.enabled", "heartbeat")[node]}


def clean(lab, node):
    return lab.salt.apply(node, "mfsha.clean", timeout=300)[node]


def test_clean_on_the_holder_is_refused_and_changes_nothing(healthy_lab):
    lab = healthy_lab
    holder = lab.active()
    manifest = write(lab, "clean-holder")
    before = snapshot(lab, holder)
    assert set(before["files"]) == set(INSTALLED) and before["heartbeat"] and "mfsha" in before["beacons"]
    ret = clean(lab, holder)
    assert ret["failed"] == [REFUSED] and ret["changes"] == 0 and list(ret["result"]) == [REFUSED], ret
    comment = ret["result"][REFUSED]["comment"]
    assert comment.startswith(f"mfsha.clean refused on {holder}: it serves the VIP {lab.vip}, has the storage "
                              "mounted on /srv/mfsconf (cluster lab); nothing was changed."), comment
    assert snapshot(lab, holder) == before
    assert lab.active() == holder and lab.serving() and lab.joined()
    assert bytes_lost(lab, manifest) == 0


def test_clean_on_the_standby_then_mfsha_makes_the_pair_whole(healthy_lab):
    lab = healthy_lab
    holder = lab.active()
    standby = lab.peer(holder)
    manifest = write(lab, "clean-standby")
    holder_before = snapshot(lab, holder)
    assert set(snapshot(lab, standby)["files"]) == set(INSTALLED)
    try:
        ret = clean(lab, standby)
        assert ret["failed"] == [] and ret["changes"] > 0, ret
        assert present(lab, standby) == [] and heartbeat_pids(lab, standby) == []
        assert "mfsha" not in beacons(lab, standby)
        assert lab.salt.cmd(standby, "service.enabled", "heartbeat")[standby] is False
        assert not any(lab.node_state(standby)[k] for k in ("vip", "storage", "mfsmaster"))
        again = clean(lab, standby)  # nothing left to do: no change, no failure
        assert again["failed"] == [] and again["changes"] == 0, again
        # the holder never noticed more than its peer leaving: same files, same heartbeat, still serving all data
        assert snapshot(lab, holder) == holder_before
        assert lab.active() == holder and lab.serving()
        assert bytes_lost(lab, manifest) == 0
        manifest.update(write(lab, "clean-standby-gone"))
    finally:  # also after a failure: the next test's heal needs the standby's heartbeat
        # Salt's sysvinit provider enables with `insserv && update-rc.d enable`; the lab has no insserv (a Debian host
        # boots with systemd, or has insserv), so the boot links mfsha.clean disabled are put back with update-rc.d
        lab.host(standby).run(["update-rc.d", "heartbeat", "enable"], check=False)
        lab.deploy(standby)
    wait_for("both heartbeats joined", lab.joined, 120, interval=1)
    assert set(snapshot(lab, standby)["files"]) == set(INSTALLED) and "mfsha" in beacons(lab, standby)
    assert lab.active() == holder
    res = lab.fail_over("handover", timeout=90)
    assert res["new_active"] == standby and not res["two_masters"] and not res["two_storage"] and not res["two_vip"]
    assert res["client_resumed"] is not None
    assert bytes_lost(lab, manifest) == 0
