"""mfsha.clean rendered by real Salt: what it removes from each kind of host, that it removes everything `mfsha`
laid down there and nothing of the storage's or the chunks' data, and that a node holding the group gets the refusal
and nothing else. The refusal is also applied for real (its one state changes nothing). The lab test
(test/integration/test_clean.py) applies it to the lab's holder and standby."""
import copy
import subprocess

from render_support import REPO, load_pillar


def pillar(**storage):
    p = copy.deepcopy(load_pillar("example"))
    p["mfsha"]["clusters"]["paris"]["storage"].update(storage)
    return p


def absent(f):
    return {c["name"] for c in f.lowstate("mfsha.clean") if (c["state"], c["fun"]) == ("file", "absent")}


def test_clean_is_never_part_of_mfsha(formula):
    assert "clean" not in (REPO / "mfsha/init.sls").read_text()
    for minion in ("paris-mfs2", "paris-cs1", "paris-web3"):
        assert not [i for i in formula.use(minion, "example").ids() if "clean" in i], minion


def test_a_standby_loses_everything_mfsha_laid_down_but_the_data(formula):
    f = formula.use("paris-mfs2", "example")
    installed = {p for p in f.managed_files() if not p.startswith("/mfsconf/")}
    ids = f.ids("mfsha.clean")
    gone = absent(f)
    assert installed and installed <= gone, installed - gone
    mountpoint = "/mfsconf"
    assert not [p for p in gone if p.startswith(mountpoint)]  # nothing on the storage, ever
    assert ids["mfsha-clean-beacon-absent"]["name"] == "mfsha" and ids["mfsha-clean-beacon-absent"]["save"] is True
    hb = ids["mfsha-clean-heartbeat-stopped"]
    assert (hb["state"], hb["fun"], hb["name"], hb["enable"]) == ("service", "dead", "heartbeat", False)
    assert hb["sig"] == "heartbeat: master control process"  # its init script says "running" once ha.cf is gone
    down = ids["mfsha-clean-drbd-r0-down"]
    assert down["name"] == "drbdadm down r0" and down["onlyif"] == "test -e /sys/block/drbd0"
    assert {"cmd": "mfsha-clean-drbd-r0-down"} in ids["mfsha-clean-drbd-/etc/drbd.d/r0.res"]["require"]
    rmdir = ids["mfsha-clean-storage-mountpoint"]
    assert rmdir["name"] == "rmdir /mfsconf" and "! mountpoint -q /mfsconf" in rmdir["onlyif"]
    # the metadata, the backing disk and the filesystem are never touched
    text = " ".join(str(c) for c in f.lowstate("mfsha.clean"))
    for word in ("wipe-md", "create-md", "mkfs", "/dev/vdb", "dd ", "rm -"):
        assert word not in text, word
    # every change waits for the guard: it re-checks that this node still holds nothing
    guard = ids["mfsha-clean-still-standby"]
    changing = [c for c in f.lowstate("mfsha.clean") if c["__id__"] != guard["__id__"]]
    assert all(c.get("require") for c in changing if c["__id__"] != "mfsha-clean-beacon-absent")
    assert ids["mfsha-clean-beacon-absent"]["require"] == [{"cmd": "mfsha-clean-still-standby"}]


def test_the_guard_runs_and_says_standby_here(formula):
    """This machine holds nothing of paris: the guard's own script (run by sh as cmd.run would) says so."""
    guard = formula.use("paris-mfs2", "example").ids("mfsha.clean")["mfsha-clean-still-standby"]
    assert guard["stateful"] is True
    out = subprocess.run(["sh", "-c", guard["name"]], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.strip().splitlines()[-1].startswith("changed=no "), out


def test_shared_storage_standby_has_no_drbd_states(formula):
    f = formula.use("lyon-m1", "shared")
    assert not [i for i in f.ids("mfsha.clean") if "drbd" in i]
    assert "/etc/ha.d/ha.cf" in absent(f)


def refusal(formula, minion, p):
    f = formula.use(minion, p)
    low = f.lowstate("mfsha.clean")
    assert [(c["state"], c["fun"]) for c in low] == [("test", "fail_without_changes")], low
    return f, low[0]["comment"]


def test_a_node_with_the_storage_mounted_is_refused_and_nothing_changes(formula):
    """/proc stands for the storage: it is mounted on this machine, as the storage is on the holder."""
    f, comment = refusal(formula, "paris-mfs2", pillar(mountpoint="/proc"))
    assert comment == ("mfsha.clean refused on paris-mfs2: it has the storage mounted on /proc (cluster paris); "
                       "nothing was changed. Hand the group to paris-mfs1 first (salt-run mfsha.switchover paris), "
                       "then apply mfsha.clean here.")
    ret = f.mod.state.apply("mfsha.clean")
    assert [(v["result"], v["changes"]) for v in ret.raw.values()] == [(False, {})], ret.raw
    assert comment in [v["comment"] for v in ret.raw.values()]


def test_a_node_serving_the_vip_is_refused(formula):
    """127.0.0.1 stands for the VIP: this machine has it, as the holder has the VIP."""
    p = pillar()
    c = p["mfsha"]["clusters"]["paris"]
    c["nodes"]["paris-mfs1"]["address"], c["nodes"]["paris-mfs2"]["address"] = "127.0.0.11", "127.0.0.12"
    c["vip"].update(address="127.0.0.1", prefix=8)
    del c["master"]["exports"]
    _, comment = refusal(formula, "paris-mfs1", p)
    assert comment.startswith("mfsha.clean refused on paris-mfs1: it serves the VIP 127.0.0.1 (cluster paris);")


def test_targets_lose_daemons_configs_and_mount_never_data(formula):
    f = formula.use("paris-cs1", "example")
    ids = f.ids("mfsha.clean")
    assert absent(f) == set(f.managed_files()) == {"/etc/mfs/mfschunkserver.cfg", "/etc/mfs/mfshdd.cfg",
                                                   "/etc/mfs/mfsmetalogger.cfg"}
    for role, service in (("chunkserver", "moosefs-chunkserver"), ("metalogger", "moosefs-metalogger")):
        s = ids[f"mfsha-clean-{role}-service"]
        assert (s["fun"], s["name"], s["enable"]) == ("dead", service, False)
    assert "/srv/mfs/hdd1" not in str(f.lowstate("mfsha.clean"))  # the chunks stay
    client = formula.use("paris-web3", "example").ids("mfsha.clean")
    assert client["mfsha-clean-client-unmounted"]["name"] == "/mnt/mfs"
    fstab = client["mfsha-clean-client-fstab-entry"]
    assert (fstab["fun"], fstab["name"], fstab["fs_file"]) == ("fstab_absent", "mfsmount", "/mnt/mfs")
    assert "test -z \"$(ls -A /mnt/mfs)\"" in client["mfsha-clean-client-mountpoint"]["onlyif"]


def test_a_minion_without_role_has_nothing_to_clean(formula):
    assert list(formula.use("unrelated-host", "example").ids("mfsha.clean")) == ["mfsha-clean-nothing-here"]
