"""The formula's DRBD path on the real DRBD 8.4 kernel: `state.apply mfsha` (salt-call --local in each VM, lab pillar
with `storage: type: drbd`) bootstraps r0 from blank disks, a second apply changes nothing, and heartbeat moves
drbddisk/Filesystem/IPaddr2/MFSMaster on graceful handover and on host death with files and metadata intact.
Tests run in file order on the module's VM pair (one cluster life)."""
import secrets
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import vmsalt
from vm_support import record

pytestmark = pytest.mark.vm

VIP = "10.77.0.10"
CFG = "/mfsconf/mfsmaster.cfg"
APPLY_TIMEOUT = 900
# heartbeat runs its resource scripts one by one; under TCG on a loaded host a handover (stop all, then start all on
# the peer) took 50-170 s, a takeover after host death 36-81 s
MOVE_TIMEOUT = 300


def lab_pillar():
    return {"mfsha": {"clusters": {"lab": {
        "nodes": {"mfs-a": {"hostname": "mfs-a", "address": "10.77.0.11"},
                  "mfs-b": {"hostname": "mfs-b", "address": "10.77.0.12"}},
        "preferred": "mfs-a",
        "vip": {"address": VIP, "prefix": 24, "interface": "eth0"},
        "storage": {"type": "drbd", "mountpoint": "/mfsconf", "fstype": "ext4",
                    "drbd": {"secret": secrets.token_hex(16), "disks": {"mfs-a": "/dev/vdb", "mfs-b": "/dev/vdb"}}},
        # salt-call takes minutes under TCG: the joining node waits longer than on real hosts
        "heartbeat": {"auth_key": secrets.token_hex(16), "join_timeout": 600},
        "master": {"config": {"MATIC_WORKERS": 1},
                   "exports": [{"network": "10.77.0.0/24", "path": "/", "options": "rw,alldirs,maproot=0"},
                               {"network": "10.77.0.0/24", "path": ".", "options": "rw"}]},
        "chunkservers": {"targets": ["mfs-cs*"], "hdds": ["/srv/mfs/hdd1"]},
        "metaloggers": {"targets": ["mfs-cs1"]},
        "clients": {"targets": ["mfs-client"]},
        # heartbeat + drbddisk + Filesystem + IPaddr2 + `mfsmaster -a` take ~60-90 s in a loaded TCG guest
        "failover": {"serve_timeout": 240, "enabled": False},  # salt-call --local: no minion daemon, no beacon
    }}}}


def both(pair, fn):
    with ThreadPoolExecutor(2) as ex:
        return dict(zip(("mfs-a", "mfs-b"), ex.map(fn, (pair.a, pair.b))))


def apply(vm):
    rc, data, text = vmsalt.salt_call(vm, "state.apply", "mfsha", timeout=APPLY_TIMEOUT, check=False)
    assert isinstance(data, dict), f"{vm.name}: state.apply mfsha returned no state results (rc {rc}):\n{text}"
    changed, failed = vmsalt.state_changes(data)
    slow = sorted(data.values(), key=lambda v: -float(v.get("duration") or 0))[:6]
    print(f"{vm.name}: slowest states: " + ", ".join(f"{v.get('__id__')} {float(v.get('duration') or 0) / 1000:.0f}s"
                                                     for v in slow))
    assert not failed and rc == 0, f"{vm.name}: state.apply mfsha rc {rc}, failed: {failed}\n{text[-6000:]}"
    return changed


def serving(vm):
    """This VM holds the VIP, has /mfsconf mounted and its mfsmaster answers on the VIP."""
    return (f"ip -br addr show eth0 | grep -qw {VIP} && mountpoint -q /mfsconf"
            f" && mfsmaster -c {CFG} test 2>/dev/null && timeout 2 bash -c '</dev/tcp/{VIP}/9421'")


def diagnose(vm):
    # the heartbeat/MFSMaster/mfsmaster story without the `set gid/uid` lines of the tests' own `mfsmaster test` probes
    res = vm.run("ip -br a; cat /proc/drbd; mount | grep mfsconf; ps -eo pid,etime,args | grep -v '\\[';"
                 " grep -v -e kernel: -e 'set [gu]id to' /var/log/messages | tail -80; ls -la /mfsconf;"
                 " echo '--- salt log'; tail -25 /var/log/salt/minion", check=False)
    return res.out + res.err


def wait_serving(vm, timeout):
    t = time.monotonic()
    res = vm.run(f"for i in $(seq {timeout}); do {serving(vm)} && exit 0; sleep 1; done; exit 1",
                 timeout=timeout + 30, check=False)
    if res.rc:
        pytest.fail(f"{vm.name}: not serving after {timeout} s:\n{diagnose(vm)}")
    return time.monotonic() - t


def state_of(calls, name):
    ok, st = calls[name]("mfsha.node_state")
    assert ok, st
    return st


@pytest.fixture(scope="module")
def applied(pair):
    """The first deploy: formula + lab pillar in both VMs, then state.apply mfsha on both at once."""
    pillar = lab_pillar()
    t = time.monotonic()
    both(pair, vmsalt.install_formula)
    both(pair, lambda vm: vmsalt.write_pillar(vm, pillar))
    record("formula: install (both, parallel)", time.monotonic() - t)
    t = time.monotonic()
    try:
        changes = both(pair, apply)
    except AssertionError:
        for vm in (pair.a, pair.b):
            print(f"=== {vm.name}\n" + diagnose(vm))
        raise
    record("formula: bootstrap state.apply (both, parallel)", time.monotonic() - t)
    return changes


@pytest.fixture(scope="module")
def calls(pair, applied):
    callers = {vm.name: vmsalt.Caller(vm) for vm in (pair.a, pair.b)}
    both(pair, lambda vm: callers[vm.name].start())
    return callers


def _changed(changes, fragment):
    return [k for k in changes if fragment in k]


def test_bootstrap_creates_metadata_once_syncs_from_preferred_formats_once(pair, applied):
    for name in ("mfs-a", "mfs-b"):
        assert _changed(applied[name], "metadata-created"), f"{name}: no create-md: {list(applied[name])}"
    assert _changed(applied["mfs-a"], "filesystem-created"), list(applied["mfs-a"])
    assert not _changed(applied["mfs-b"], "filesystem-created"), list(applied["mfs-b"])
    log_a = pair.a.run("dmesg | grep drbd").out
    log_b = pair.b.run("dmesg | grep drbd").out
    assert "Began resync as SyncSource" in log_a and "Forced to consider local data as UpToDate" in log_a, log_a
    assert "Began resync as SyncTarget" in log_b, log_b
    assert "SyncSource" not in log_b and "Forced to consider" not in log_b, log_b
    assert "SyncTarget" not in log_a, log_a


def test_preferred_serves_with_seeded_metadata(pair, calls):
    record("formula: serving after bootstrap (wait)", wait_serving(pair.a, 120))
    st_a, st_b = state_of(calls, "mfs-a"), state_of(calls, "mfs-b")
    assert st_a["active"] and st_a["vip"] and st_a["mounted"], st_a
    assert not st_b["active"], st_b
    assert st_a["drbd"]["role"] == "Primary" and st_b["drbd"]["role"] == "Secondary", (st_a, st_b)
    assert st_a["drbd"]["disk"] == st_b["drbd"]["disk"] == "UpToDate", (st_a, st_b)
    ok, version = calls["mfs-a"]("mfsmaster.metadata_version", cfg=CFG, source="disk")
    assert ok and version >= 1, version
    pair.a.run("test -s /mfsconf/metadata.mfs -o -s /mfsconf/metadata.mfs.back; ls -l /mfsconf")


def test_second_apply_changes_nothing(pair, calls):
    t = time.monotonic()
    changes = both(pair, apply)
    record("formula: second state.apply (both, parallel)", time.monotonic() - t)
    assert changes == {"mfs-a": {}, "mfs-b": {}}, changes
    assert state_of(calls, "mfs-a")["active"]


def _write_probe(vm, calls, name):
    token = secrets.token_hex(8)
    vm.run(f"echo {token} > /mfsconf/{name} && sync")
    ok, version = calls[vm.name]("mfsmaster.metadata_version", cfg=CFG, host=VIP, port=9421)
    assert ok, version
    return token, version


def _check_probe(vm, calls, name, token, version):
    assert vm.run(f"cat /mfsconf/{name}").out.strip() == token
    ok, now = calls[vm.name]("mfsmaster.metadata_version", cfg=CFG, host=VIP, port=9421)
    assert ok and now >= version, f"metadata version went from {version} to {now}"


def test_graceful_handover_moves_everything_with_data(pair, calls):
    token, version = _write_probe(pair.a, calls, "probe-handover")
    pair.a.run("/usr/share/heartbeat/hb_standby all")
    record("formula: graceful handover mfs-a -> mfs-b serving", wait_serving(pair.b, MOVE_TIMEOUT))
    _check_probe(pair.b, calls, "probe-handover", token, version)
    st_a = state_of(calls, "mfs-a")
    assert not st_a["active"] and st_a["drbd"]["role"] == "Secondary", st_a


def test_host_death_fails_over_with_data(pair, calls):
    token, version = _write_probe(pair.b, calls, "probe-death")
    pair.b.kill()  # qemu SIGKILLed: the host is gone mid-flight, its page cache with it
    record("formula: host death of mfs-b -> mfs-a serving", wait_serving(pair.a, MOVE_TIMEOUT))
    print(pair.a.run("grep -e ResourceManager -e MFSMaster: /var/log/messages | tail -12", check=False).out)
    _check_probe(pair.a, calls, "probe-death", token, version)
    st = state_of(calls, "mfs-a")
    assert st["active"] and st["vip"] and st["mounted"] and st["master"]["healthy"], st
    assert st["drbd"]["role"] == "Primary" and st["drbd"]["disk"] == "UpToDate", st
    # fencing resource-only: DRBD asked mfsha-fence-peer before it promoted mfs-a without its peer; no ping nodes in
    # this pillar, so the handler took the silent peer as dead (exit 5) and DRBD marked its disk Outdated
    assert st["drbd"]["connection"] == "Connecting" and st["drbd"]["peer_disk"] == "Outdated", st
    log = pair.a.run("grep mfsha-fence-peer /var/log/messages", check=False).out
    assert "r0: peer 10.77.0.12 unreachable and no ping nodes configured: the peer is taken as dead" in log, log


def test_dead_host_rejoins_after_reboot(pair, calls):
    t = time.monotonic()
    pair.b.start()
    pair.b.wait_ready(180)
    record("formula: reboot of mfs-b", time.monotonic() - t)
    t = time.monotonic()
    apply(pair.b)  # a rebooted host: the formula brings r0 up and heartbeat back, no takeover (auto_failback off)
    record("formula: state.apply on the rebooted mfs-b", time.monotonic() - t)
    t = time.monotonic()
    res = pair.b.run("for i in $(seq 360); do grep -q 'cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate'"
                     " /proc/drbd && exit 0; sleep 0.5; done; cat /proc/drbd; exit 1", timeout=200, check=False)
    assert res.rc == 0, f"mfs-b did not resync as Secondary: {res}"
    record("formula: mfs-b resynced as Secondary (wait)", time.monotonic() - t)
    calls["mfs-b"].start()  # its saltcaller died with the host
    st_a, st_b = state_of(calls, "mfs-a"), state_of(calls, "mfs-b")
    assert st_a["active"] and st_a["master"]["healthy"] and not st_b["active"], (st_a, st_b)
    assert st_b["drbd"]["role"] == "Secondary" and st_b["drbd"]["connection"] == "Connected", st_b
    assert st_b["drbd"]["disk"] == st_b["drbd"]["peer_disk"] == "UpToDate", st_b
    pair.b.run("pgrep -f 'heartbeat: master control process'")
    pair.a.run(serving(pair.a))


def _messages_since(vm, mark, pattern):
    return vm.run(f"tail -n +{mark} /var/log/messages | grep -E '{pattern}'", check=False).out


def test_cut_off_standby_is_never_promoted(pair, calls):
    """mfs-b loses its only link while mfs-a serves: heartbeat there declares mfs-a dead and no ARP answer comes for
    the VIP, so only the witness rule stops a second master and a second DRBD primary. The pair has no third host:
    mfs-b's ping node list is pointed at an address nobody holds (its switch is gone too), restored afterwards.
    MFSGuard refuses the group; a manual promotion meets DRBD's fence-peer handler, which refuses it and outdates
    mfs-b's disk. Plugged back in, mfs-b resyncs from mfs-a."""
    a, b = pair.a, pair.b
    witness = "/usr/local/sbin/mfsha-witness"
    saved = b.run(f"cat {witness}").out
    mark = int(b.run("wc -l < /var/log/messages").out) + 1
    b.run(f"sed -i 's/^NODES=.*/NODES=\"10.77.0.99\"/' {witness}")
    b.monitor("set_link n0 off")
    try:
        res = b.run(f"for i in $(seq 300); do tail -n +{mark} /var/log/messages"
                    " | grep -q 'Giving up resources due to failure of MFSGuard' && exit 0; sleep 0.5; done; exit 1",
                    timeout=200, check=False)
        log = _messages_since(b, mark, "MFSGuard|ResourceManager|heartbeat.*dead")
        assert res.rc == 0, f"heartbeat on mfs-b never gave up the group:\n{log}\n{diagnose(b)}"
        assert "MFSGuard: refusing the resources: no ping node answers (10.77.0.99)" in log, log
        st = state_of(calls, "mfs-b")
        assert st["drbd"]["role"] == "Secondary" and not st["mounted"] and not st["vip"], st
        promote = b.run("drbdadm primary r0", check=False)
        assert promote.rc != 0, promote
        fence = _messages_since(b, mark, "mfsha-fence-peer|fence-peer")
        assert "r0: refusing to promote: peer 10.77.0.11 unreachable and no ping node answers (10.77.0.99)" in fence, \
            fence
        st = state_of(calls, "mfs-b")
        assert st["drbd"]["role"] == "Secondary" and st["drbd"]["disk"] == "Outdated", st
        a.run(serving(a))  # mfs-a served while mfs-b was cut off
    finally:
        b.monitor("set_link n0 on")
        b.run(f"cat > {witness} <<'__EOF__'\n{saved}__EOF__\n")
    t = time.monotonic()
    res = b.run("for i in $(seq 400); do grep -q 'cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate' /proc/drbd"
                " && exit 0; sleep 0.5; done; cat /proc/drbd; exit 1", timeout=220, check=False)
    assert res.rc == 0, f"mfs-b did not resync from mfs-a: {res}\n{diagnose(b)}"
    record("formula: cut-off mfs-b resynced as Secondary (wait)", time.monotonic() - t)
    # heartbeat meets the peer it declared dead by restarting on both sides; the group may move once
    record("formula: serving after the cut-off standby's return", wait_serving_either(pair, MOVE_TIMEOUT))
    roles = [state_of(calls, n)["drbd"]["role"] for n in ("mfs-a", "mfs-b")]
    assert sorted(roles) == ["Primary", "Secondary"], roles


def wait_serving_either(pair, timeout):
    t = time.monotonic()
    while time.monotonic() - t < timeout:
        for vm in (pair.a, pair.b):
            if vm.run(serving(vm), check=False).rc == 0:
                return time.monotonic() - t
        time.sleep(2)
    pytest.fail(f"neither node serving after {timeout} s:\n{diagnose(pair.a)}\n{diagnose(pair.b)}")
