"""The raw DRBD dance on the real DRBD 8.4.11 kernel module in two VMs, driven partly by mfsha's drbd module:
drbd.status must agree with drbdadm status (and /proc/drbd) in every state passed through; drbd.primary refuses
Inconsistent/Outdated disks; drbd.split_brain tells a split brain from a plain disconnect; the after-sb policy
decides what is discarded and the documented manual recovery restores a consistent pair.
Tests run in file order and share the module's VM pair (one life cycle)."""
import importlib.util
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import vmdrbd
import vmsalt
from vm_support import record

pytestmark = pytest.mark.vm
REPO = Path(__file__).resolve().parents[3]


def both(pair, fn):
    with ThreadPoolExecutor(2) as ex:
        return list(ex.map(fn, (pair.a, pair.b)))


def wait_for(vm, script, timeout, what):
    """Poll a shell condition in the VM; returns seconds waited; fails with the DRBD state when it times out."""
    t = time.monotonic()
    res = vm.run(f"for i in $(seq {timeout * 2}); do {script} && exit 0; sleep 0.5; done; exit 1",
                 timeout=timeout + 30, check=False)
    if res.rc != 0:
        state = vm.run("cat /proc/drbd; drbdadm status r0; dmesg | grep -i drbd | tail -15", check=False)
        pytest.fail(f"{vm.name}: not {what} after {timeout} s:\n{state.out}{state.err}")
    return time.monotonic() - t


def cs(state):
    return f"grep -q 'cs:{state} ' /proc/drbd"


def synced():
    return "grep -q 'cs:Connected ro:.* ds:UpToDate/UpToDate' /proc/drbd"


def refused(call, fun, *args):
    ok, text = call(fun, *args)
    assert not ok, f"{call.vm.name}: {fun} {args} was not refused: {text}"
    return text


def split_brain(call):
    ok, sb = call("drbd.split_brain", "r0")
    assert ok, sb
    return sb


@pytest.fixture(scope="module")
def calls(pair):
    """Formula synced in both VMs, and a loaded Salt caller for drbd.* per VM."""
    t = time.monotonic()
    both(pair, vmsalt.install_formula)
    record("drbd: install formula (both, parallel)", time.monotonic() - t)
    callers = {vm.name: vmsalt.Caller(vm) for vm in (pair.a, pair.b)}
    t = time.monotonic()
    both(pair, lambda vm: callers[vm.name].start())
    record("drbd: salt caller loaded (both, parallel)", time.monotonic() - t)
    return callers


def test_create_md_up_connected_inconsistent(pair, calls):
    conf = vmdrbd.resource_conf(secrets.token_hex(8))
    both(pair, lambda vm: vm.run(f"modprobe drbd && cat > /etc/drbd.d/r0.res <<'EOF'\n{conf}EOF\n"
                                 "drbdadm create-md r0 </dev/null && drbdadm up r0", timeout=120))
    wait_for(pair.a, cs("Connected"), 60, "Connected")
    for vm in (pair.a, pair.b):
        vmdrbd.assert_agrees(calls[vm.name], role="Secondary", disk="Inconsistent", connection="Connected",
                             replication="Established", peer_disk="Inconsistent", peer_role="Secondary")


def test_primary_refuses_inconsistent(pair, calls):
    text = refused(calls["mfs-a"], "drbd.primary", "r0")
    assert "Inconsistent" in text, text
    assert pair.a.run("drbdadm role r0").out.strip() == "Secondary/Secondary"


def test_initial_sync_source_and_target(pair, calls):
    # a slow resync holds the Sync states still while salt-call (15-30 s in the VM) looks at them
    both(pair, lambda vm: vm.run("drbdadm disk-options --c-plan-ahead=0 --resync-rate=256k r0"))
    ok, ret = calls["mfs-a"]("drbd.primary", "r0", force=True)
    assert ok and ret is True, ret
    wait_for(pair.a, cs("SyncSource"), 30, "SyncSource")
    vmdrbd.assert_agrees(calls["mfs-a"], role="Primary", disk="UpToDate", replication="SyncSource", peer_disk="Inconsistent")
    vmdrbd.assert_agrees(calls["mfs-b"], role="Secondary", disk="Inconsistent", replication="SyncTarget", peer_disk="UpToDate")
    both(pair, lambda vm: vm.run("drbdadm disk-options --c-plan-ahead=0 --resync-rate=100M r0"))
    record("drbd: initial sync of 64 MiB at 100M", wait_for(pair.b, synced(), 600, "synced"))
    vmdrbd.assert_agrees(calls["mfs-a"], role="Primary", disk="UpToDate", connection="Connected", replication="Established",
                         peer_disk="UpToDate")
    vmdrbd.assert_agrees(calls["mfs-b"], role="Secondary", disk="UpToDate", peer_role="Primary")


def test_filesystem_on_primary(pair):
    pair.a.run("mkfs.ext4 -q /dev/drbd0 && mkdir -p /mnt/r0 && mount /dev/drbd0 /mnt/r0 && echo one > /mnt/r0/one"
               " && sync", timeout=120)


def test_peer_lost_connecting_then_resync(pair, calls):
    pair.a.monitor("set_link n0 off")  # cable pulled on mfs-a: DRBD notices through its ping timeout
    wait_for(pair.a, cs("WFConnection"), 90, "WFConnection")
    wait_for(pair.b, cs("WFConnection"), 90, "WFConnection")
    mod = vmdrbd.assert_agrees(calls["mfs-a"], role="Primary", connection="Connecting")
    assert mod["peer_disk"] in (None, "DUnknown"), mod
    pair.a.run("echo two > /mnt/r0/two && sync")  # goes into the bitmap, resynced on reconnect
    pair.a.monitor("set_link n0 on")
    wait_for(pair.b, synced(), 120, "resynced")
    vmdrbd.assert_agrees(calls["mfs-b"], role="Secondary", disk="UpToDate", connection="Connected", peer_role="Primary")


def test_standalone_is_not_split_brain_and_outdated_is_refused(pair, calls):
    pair.b.run("drbdadm disconnect r0")
    mod = vmdrbd.assert_agrees(calls["mfs-b"], connection="StandAlone", disk="UpToDate")
    sb = split_brain(calls["mfs-b"])
    assert sb["split_brain"] is False and sb["connection"] == "StandAlone", (sb, mod)
    pair.b.run("drbdadm outdate r0")
    vmdrbd.assert_agrees(calls["mfs-b"], connection="StandAlone", disk="Outdated")
    text = refused(calls["mfs-b"], "drbd.primary", "r0")
    assert "Outdated" in text, text
    assert pair.b.run("drbdadm role r0").out.strip().startswith("Secondary")
    pair.b.run("drbdadm connect r0")
    wait_for(pair.b, synced(), 120, "resynced after outdate")


def test_diskless_after_detach(pair, calls):
    pair.b.run("drbdadm detach r0")
    vmdrbd.assert_agrees(calls["mfs-b"], disk="Diskless", connection="Connected", peer_role="Primary")
    text = refused(calls["mfs-b"], "drbd.primary", "r0")
    assert "Diskless" in text, text
    pair.b.run("drbdadm attach r0")
    wait_for(pair.b, synced(), 120, "re-attached and synced")


def test_split_brain_unresolved_with_two_primaries(pair, calls):
    a, b = pair.a, pair.b
    both(pair, lambda vm: vm.run("drbdadm disconnect r0"))
    b.run("drbdadm primary r0 && mkdir -p /mnt/r0 && mount /dev/drbd0 /mnt/r0 && echo b > /mnt/r0/only-b && sync")
    a.run("echo a > /mnt/r0/only-a && sync")
    t = time.monotonic()
    both(pair, lambda vm: vm.run("drbdadm connect r0"))
    # after-sb-2pri disconnect: both drop the connection, nobody's data is discarded
    for vm in (a, b):
        wait_for(vm, "dmesg | grep -q 'Split-Brain detected but unresolved'", 60, "split brain detected")
        wait_for(vm, cs("StandAlone"), 30, "StandAlone")
    record("drbd: split brain detected after reconnect", time.monotonic() - t)
    for vm in (a, b):
        sb = split_brain(calls[vm.name])
        assert sb["split_brain"] is True and "Split-Brain detected" in sb["evidence"], sb
        vmdrbd.assert_agrees(calls[vm.name], role="Primary", connection="StandAlone")
    assert a.run("ls /mnt/r0").out.split() == ["lost+found", "one", "only-a", "two"]
    assert b.run("ls /mnt/r0").out.split() == ["lost+found", "one", "only-b", "two"]
    for vm in (a, b):
        assert beacon_events(calls[vm.name]) == [("drbd/down", "split brain; connection StandAlone")], vm.name


def beacon_events(call, looks=2):
    """The mfsha beacon's own code, fed by real looks at the node (mfsha.node_state in the VM): the events of
    `looks` consecutive runs (debounce 2), as (tag, details) of the DRBD check."""
    spec = importlib.util.spec_from_file_location("mfsha_vm_beacon", REPO / "_beacons" / "mfsha.py")
    beacon = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(beacon)

    def node_state(**kwargs):  # positional: the caller's own `timeout` keyword would swallow node_state's
        order = beacon.NODE_ARGS + ("timeout", "client", "record")  # node_state's signature (test_node_args.py)
        assert set(kwargs) == set(order), kwargs
        ok, state = call("mfsha.node_state", *[kwargs[k] for k in order])
        assert ok, state
        return state

    def record_peers(vip, mountpoint):
        ok, ret = call("mfsha_storage.record_peers", vip, mountpoint)
        assert ok, ret
        return ret
    # the node's own record (what the loop reads) is the minion's business: test_beacon.py checks it
    beacon.__salt__ = {"mfsha.node_state": node_state, "mfsha_storage.record_peers": record_peers,
                       "mfsha.keep_record": lambda cluster, record: None}
    beacon.__opts__ = {"id": call.vm.name}
    config = [{"cluster": "vm"}, {"vip": "10.77.0.10"}, {"mountpoint": "/mnt/r0"}, {"storage": "drbd"},
              {"resource": "r0"}, {"debounce": 2}]
    assert beacon.validate(config)[0]
    events = [ev for _ in range(looks) for ev in beacon.beacon(config)]
    return [(ev["tag"], ev["details"]) for ev in events if ev["what"] == "drbd"]


def test_split_brain_manual_recovery(pair, calls):
    """README recovery: the victim (mfs-b) drops its changes with --discard-my-data; the survivor reconnects."""
    a, b = pair.a, pair.b
    b.run("umount /mnt/r0 && drbdadm secondary r0 && drbdadm connect --discard-my-data r0")
    a.run("drbdadm connect r0")
    wait_for(b, synced(), 120, "resynced from the survivor")
    for vm in (a, b):
        sb = split_brain(calls[vm.name])
        assert sb["split_brain"] is False, sb
    # the pair is consistent: the survivor's data, seen from the former victim after a handover
    a.run("umount /mnt/r0 && drbdadm secondary r0")
    b.run("drbdadm primary r0 && mount /dev/drbd0 /mnt/r0")
    assert b.run("ls /mnt/r0; cat /mnt/r0/only-a").out.split() == ["lost+found", "one", "only-a", "two", "a"]


def test_split_brain_one_primary_resolved_by_policy(pair, calls):
    """after-sb-1pri discard-secondary: the secondary's changes (and only those) are discarded automatically."""
    a, b = pair.a, pair.b  # b is Primary with the fs mounted now
    both(pair, lambda vm: vm.run("drbdadm disconnect r0"))
    a.run("drbdadm primary r0 && mount /dev/drbd0 /mnt/r0 && echo lost > /mnt/r0/a-while-split && sync"
          " && umount /mnt/r0 && drbdadm secondary r0")
    b.run("echo kept > /mnt/r0/b-while-split && sync")
    both(pair, lambda vm: vm.run("drbdadm connect r0"))
    wait_for(a, synced(), 120, "resynced by the after-sb-1pri policy")
    assert a.run("dmesg | grep 'Split-Brain detected, 1 primaries, automatically solved'").out
    sb = split_brain(calls["mfs-a"])
    assert sb["split_brain"] is False, sb
    files = b.run("ls /mnt/r0").out.split()
    assert "b-while-split" in files and "a-while-split" not in files, files
