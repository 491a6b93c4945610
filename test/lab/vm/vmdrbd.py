"""DRBD checks on the real kernel: snapshots of `drbdadm status` and /proc/drbd beside the module's drbd.status."""
import json
import re

# 8.4 /proc/drbd cs: -> DRBD 9 (connection, replication); the test's own oracle, independent of _utils
_CS = {"Connected": ("Connected", "Established"), "WFConnection": ("Connecting", "Off"),
       "StandAlone": ("StandAlone", "Off"), "SyncSource": ("Connected", "SyncSource"),
       "SyncTarget": ("Connected", "SyncTarget")}


def resource_conf(secret, disk="/dev/vdb", rate="100M", sb=("discard-zero-changes", "discard-secondary", "disconnect")):
    """A hand-written DRBD 8.4 r0 (the raw tier does not depend on the formula's template)."""
    hosts = "".join(f"  on {n} {{ device /dev/drbd0; disk {disk}; address {ip}:7788; meta-disk internal; }}\n"
                    for n, ip in (("mfs-a", "10.77.0.11"), ("mfs-b", "10.77.0.12")))
    return (f"resource r0 {{\n  protocol C;\n"
            f"  net {{ cram-hmac-alg sha1; shared-secret \"{secret}\"; after-sb-0pri {sb[0]};"
            f" after-sb-1pri {sb[1]}; after-sb-2pri {sb[2]}; }}\n"
            f"  disk {{ c-plan-ahead 0; resync-rate {rate}; }}\n{hosts}}}\n")


def drbdadm_facts(status_text, proc_text):
    """What `drbdadm status` and /proc/drbd say, as drbd.status field names (only the fields they show)."""
    facts = {}
    lines = status_text.strip().splitlines()
    if lines:
        m = re.match(r"r0 role:(\S+)", lines[0])
        assert m, f"unexpected drbdadm status: {status_text!r}"
        facts["role"] = m.group(1)
    for key, field in (("disk", "disk"), ("replication", "replication"), ("peer-disk", "peer_disk")):
        m = re.search(rf"(?:^|\s){key}:(\S+)", status_text, re.M)
        if m:
            facts[field] = m.group(1)
    m = re.search(r"^\s+peer (?:connection:\S+ )?role:(\S+)", status_text, re.M)
    if m:
        facts["peer_role"] = m.group(1)
    m = re.search(r"^\s*0: cs:(\S+) ro:(\w+)/(\w+) ds:(\w+)/(\w+)", proc_text, re.M)
    if m:
        cs, ro, pro, ds, pds = m.groups()
        facts["connection"], repl = _CS.get(cs, (cs, None))
        if repl:
            facts.setdefault("replication", repl)
        facts.update(proc_role=ro, proc_disk=ds, proc_peer_role=pro, proc_peer_disk=pds)
    return facts


def snapshot(call):
    """drbdadm status and /proc/drbd, then drbd.status a second later (the tests hold the state still,
    e.g. with a slow resync) -> (facts, module's r0, raw text)."""
    res = call.vm.run("drbdadm status r0; echo @@proc; cat /proc/drbd")
    status, proc = res.out.split("@@proc\n", 1)
    ok, ret = call("drbd.status", "r0")
    assert ok, f"{call.vm.name}: drbd.status failed: {ret}"
    return drbdadm_facts(status, proc), ret.get("r0"), f"{res.out}--- drbd.status\n{json.dumps(ret, indent=1)}"


def assert_agrees(call, **expect):
    """drbd.status agrees with drbdadm status and /proc/drbd, and both show `expect`; returns the module's view.
    `call` is a vmsalt.Caller of the VM."""
    vm = call.vm
    facts, mod, raw = snapshot(call)
    assert mod is not None, f"{vm.name}: drbd.status has no r0:\n{raw}"
    where = f"{vm.name}: drbd.status vs drbdadm status / /proc/drbd:\n{raw}"
    for field in ("role", "disk", "replication", "peer_disk", "peer_role", "connection"):
        if field in facts:
            assert mod[field] == facts[field], f"{field}: module {mod[field]!r} != drbdadm {facts[field]!r}\n{where}"
    assert mod["role"] == facts["proc_role"] and mod["disk"] == facts["proc_disk"], where
    for field, want in expect.items():
        assert mod[field] == want, f"{field}: want {want!r}, got {mod[field]!r}\n{where}"
    return mod


