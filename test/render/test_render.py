"""Every file the formula lays down, rendered by real Salt from pillar.example and four other pillars."""
import os
import subprocess

import pytest


def lines(text):
    """The meaningful lines of a rendered file: no comments, no blanks, whitespace folded."""
    return [" ".join(ln.split()) for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def drbdadm_dump(tmp_path, text, hostname, resource, parser="drbdadm"):
    """Run the real DRBD parser on a rendered resource file as `hostname` (it must find itself in the file)."""
    res = tmp_path / f"{resource}.res"
    res.write_text(text)
    return subprocess.run(["unshare", "-u", "-n", "sh", "-c", f'hostname "$1"; exec {parser} -c "$2" dump "$3"',
                           "sh", hostname, str(res), resource], capture_output=True, text=True, timeout=30)


def drbd_res_both_generations(f, tmp_path, hostname, resource):
    """The rendered resource file as each kernel generation gets it, each accepted by that generation's parser."""
    chunk = f.ids()[f"mfsha-storage-drbd-resource-{resource}"]
    texts = {}
    for major, parser in ((9, "drbdadm"), (8, "/lib/drbd/drbdadm-84")):
        texts[major] = f._render(chunk["source"], {**chunk["context"], "drbd_major": major})
        out = drbdadm_dump(tmp_path, texts[major], hostname, resource, parser)
        assert out.returncode == 0, f"{parser}: {out.stderr}"
    return texts


def test_example_paris_preferred_node(formula, tmp_path):
    f = formula.use("paris-mfs1", "example")
    files = f.managed_files()
    # here nothing runs heartbeat or serves on the VIP: the preferred node bootstraps, so it writes the master's
    # files onto the storage it mounts itself
    assert sorted(files) == ["/etc/drbd.d/r0.res", "/etc/ha.d/authkeys", "/etc/ha.d/ha.cf", "/etc/ha.d/haresources",
                             "/etc/ha.d/resource.d/MFSGuard", "/etc/ha.d/resource.d/MFSMaster",
                             "/mfsconf/mfsexports.cfg", "/mfsconf/mfsmaster.cfg",
                             "/usr/local/sbin/mfsha-drbd-split-brain", "/usr/local/sbin/mfsha-fence-peer",
                             "/usr/local/sbin/mfsha-selffence", "/usr/local/sbin/mfsha-tickle",
                             "/usr/local/sbin/mfsha-witness"]
    ids = f.ids()
    bootstrap = ["mfsha-storage-drbd-r0-initial-sync-source", "mfsha-storage-drbd-r0-promoted-for-bootstrap",
                 "mfsha-storage-filesystem-created", "mfsha-storage-mounted-for-bootstrap",
                 "mfsha-master-metadata-present", "mfsha-heartbeat-bootstrap-storage-unmounted",
                 "mfsha-heartbeat-bootstrap-drbd-demoted", "mfsha-heartbeat-cluster-serves"]
    assert [i for i in bootstrap if i not in ids] == []
    assert "mfsha-heartbeat-join-after-cluster-serves" not in ids
    assert ids["mfsha-storage-filesystem-created"]["unless"] == "blkid -p /dev/drbd0"
    assert lines(files["/etc/ha.d/ha.cf"]) == [
        "logfacility daemon", "keepalive 1", "warntime 3", "deadtime 6", "initdead 12", "udpport 694",
        "ucast eth0 10.20.0.12", "auto_failback off", "crm off", "node paris-mfs1", "node paris-mfs2"]
    assert lines(files["/etc/ha.d/authkeys"]) == ["auth 1", "1 sha1 5b0d2e9a7c4f1386"]
    assert lines(files["/etc/ha.d/haresources"]) == [
        "paris-mfs1 MFSGuard drbddisk::r0 Filesystem::/dev/drbd0::/mfsconf::ext4 IPaddr2::10.20.0.10/24/eth0 MFSMaster"]
    resource_scripts_of_the_example(f, files)
    drbd_res_of_the_example(files)
    drbd_res_both_generations(f, tmp_path, "paris-mfs1", "r0")
    # no ping nodes in the example: the witness rule falls back to "a silent peer is dead"
    assert 'NODES=""' in files["/usr/local/sbin/mfsha-witness"]


def resource_scripts_of_the_example(f, files):
    """MFSGuard and MFSMaster as paris-mfs1 of the example gets them."""
    guard = files["/etc/ha.d/resource.d/MFSGuard"]  # partition guard: refuses while the VIP answers ARP
    assert "VIP=10.20.0.10" in guard and "IFACE=eth0" in guard
    assert 'timeout --preserve-status -s INT 0.5 arping -D -q -c 1 -w 1 -I "$IFACE" "$VIP"' in guard
    agent = files["/etc/ha.d/resource.d/MFSMaster"]
    assert "CFG=/mfsconf/mfsmaster.cfg" in agent and 'mfsmaster -a -c "$CFG" start || exit' in agent
    # a started master resets the dead holder's recorded connections to the VIP
    assert 'setsid /usr/local/sbin/mfsha-tickle "$VIP" /mfsconf ' in agent and "VIP=10.20.0.10" in agent
    # the tickle finds the formula's _utils (mfsha_hold) where this minion synced them
    assert "UTILS={}/utils".format(f.loaders.opts["extension_modules"]) in agent and "MFSHA_UTILS=$UTILS" in agent
    # "a short-lived mfsmaster command is no master": the module's list (mfsha_proc.SHORT_LIVED), rendered here
    short_lived = f.mod.mfsmaster.short_lived_commands()
    assert "test" in short_lived and '" "' + "".join(f' | *" {cmd} "' for cmd in short_lived) + ") ;;" in agent
    # laid out like a resource agent: one function per action, the dispatch at the end; valid sh
    for script, actions in ((agent, ("start", "stop", "fence", "status", "monitor")),
                            (guard, ("start", "stop", "status", "monitor"))):
        dispatch = script[script.rindex('case "$1" in'):]
        assert all(f"\n{a}) " in dispatch and f"_{a}() {{" in script for a in actions), dispatch
        assert subprocess.run(["sh", "-n"], input=script, text=True).returncode == 0


def drbd_res_of_the_example(files):
    """r0.res as paris-mfs1 of the example gets it."""
    res = lines(files["/etc/drbd.d/r0.res"])
    for want in ["resource r0 {", "device /dev/drbd0;", "protocol C;", "cram-hmac-alg sha1;",
                 'shared-secret "9c1e7f0b52d84a3e";', "after-sb-0pri discard-zero-changes;",
                 "after-sb-1pri discard-secondary;", "after-sb-2pri disconnect;", "resync-rate 100M;",
                 "on paris-mfs1 {", "disk /dev/vdb;", "address 10.20.0.11:7788;", "address 10.20.0.12:7788;"]:
        assert want in res, want
    # fencing by default: a disconnected node is promoted only under the witness rule
    assert 'fence-peer "/usr/local/sbin/mfsha-fence-peer";' in res and "fencing resource-only;" in res


def test_example_other_node_joins_once_the_cluster_serves(formula):
    f = formula.use("paris-mfs2", "example")
    files = f.managed_files()
    assert "ucast eth0 10.20.0.11" in files["/etc/ha.d/ha.cf"]
    assert not any(p.startswith("/mfsconf/") for p in files)  # never touches storage it has not mounted
    ids = f.ids()
    join = ids["mfsha-heartbeat-join-after-cluster-serves"]
    assert (join["name"], join["port"], join["timeout"]) == ("10.20.0.10", 9421, 180)
    assert not [i for i in ids if "bootstrap" in i or "initial-sync" in i or "filesystem" in i]
    # the scripts are the same on both nodes, so a redeploy on hosts that share /usr/local changes nothing
    first = formula.use("paris-mfs1", "example").managed_files()
    assert {p: t for p, t in files.items() if p.startswith("/usr/")} == {p: t for p, t in first.items()
                                                                         if p.startswith("/usr/")}


def test_example_second_site_shared_storage(formula):
    f = formula.use("berlin-mfs2", "example")
    files = f.managed_files()
    assert "/etc/drbd.d/r0.res" not in files
    assert lines(files["/etc/ha.d/haresources"]) == [
        "berlin-mfs1 MFSGuard Filesystem::/dev/disk/by-id/wwn-0x600508b1001c6d4b::/mfsconf::ext4 "
        "IPaddr2::192.168.7.20/24/bond0 MFSMaster"]
    ha_cf = lines(files["/etc/ha.d/ha.cf"])
    assert "deadtime 10" in ha_cf and "initdead 30" in ha_cf and "ucast bond0 192.168.7.21" in ha_cf
    assert lines(files["/etc/ha.d/authkeys"])[-1] == "1 sha1 e41a9d07c3b25f68"


def test_example_chunkserver_and_metalogger_use_the_vip(formula):
    f = formula.use("paris-cs1", "example")
    assert f.settings()["roles"] == ["chunkserver", "metalogger"]
    files = f.managed_files()
    assert lines(files["/etc/mfs/mfschunkserver.cfg"]) == [
        "MASTER_HOST = 10.20.0.10", "MASTER_PORT = 9420", "HDD_CONF_FILENAME = /etc/mfs/mfshdd.cfg",
        "MASTER_RECONNECTION_DELAY = 1"]
    assert lines(files["/etc/mfs/mfshdd.cfg"]) == ["/srv/mfs/hdd1"]
    assert lines(files["/etc/mfs/mfsmetalogger.cfg"]) == ["MASTER_HOST = 10.20.0.10", "MASTER_PORT = 9419",
                                                         "MASTER_RECONNECTION_DELAY = 1"]
    ids = f.ids()
    assert "mfsha-heartbeat-service" not in ids and "mfsha-client-mounted" not in ids


def test_example_client_mounts_the_vip(formula):
    ids = formula.use("paris-web3", "example").ids()
    mounted = ids["mfsha-client-mounted"]
    assert mounted["name"] == "mfsmount /mnt/mfs -o mfsmaster=10.20.0.10,mfsport=9421"
    assert ids["mfsha-client-fstab-entry"]["fs_mntops"] == "defaults,_netdev,mfsmaster=10.20.0.10,mfsport=9421"
    assert "mfsha-chunkserver-service" not in ids


def test_minion_without_role_gets_nothing_but_a_note(formula):
    ids = formula.use("unrelated-host", "example").ids()
    assert list(ids) == ["mfsha-no-role-for-this-minion"]


def test_shared_storage_pillar(formula):
    f = formula.use("lyon-m1", "shared")
    files = f.managed_files()
    assert lines(files["/etc/ha.d/haresources"]) == [
        "lyon-master-2.lan MFSGuard Filesystem::/dev/mapper/mfs-meta::/mfsconf::xfs IPaddr2::172.30.4.70/26/ens3 MFSMaster"]
    ha_cf = lines(files["/etc/ha.d/ha.cf"])
    assert ["node lyon-master-1.lan", "node lyon-master-2.lan"] == [ln for ln in ha_cf if ln.startswith("node ")]
    assert "ucast ens3 172.30.4.67" in ha_cf
    assert not any("drbd" in c["__id__"] for c in f.lowstate())
    meta = formula.use("lyon-log", "shared").managed_files()
    assert lines(meta["/etc/mfs/mfsmetalogger.cfg"])[0] == "MASTER_HOST = 172.30.4.70"


def test_custom_resource_and_mountpoint(formula, tmp_path):
    f = formula.use("oslo-b", "custom")
    files = f.managed_files()
    texts = drbd_res_both_generations(f, tmp_path, "oslo-b", "mfsmeta")
    for major, text in texts.items():
        res = lines(text)
        for want in ["resource mfsmeta {", "device /dev/drbd7;", "protocol B;", "after-sb-1pri consensus;",
                     "fencing resource-only;", 'fence-peer "/usr/lib/drbd/crm-fence-peer.9.sh";',
                     "disk /dev/sdb1;", "disk /dev/nvme0n1p3;", "address 10.44.1.2:7790;"]:
            assert want in res, (major, want)
        # fencing is a disk option in 8.4 and a net option in DRBD 9
        section = "net {" if major == 9 else "disk {"
        assert res.index("fencing resource-only;") > res.index(section)
    assert lines(files["/etc/ha.d/haresources"]) == [
        "oslo-a MFSGuard drbddisk::mfsmeta Filesystem::/dev/drbd7::/srv/mfsmeta::ext4 IPaddr2::10.44.1.100/24/eth0 MFSMaster"]
    assert "CFG=/srv/mfsmeta/mfsmaster.cfg" in files["/etc/ha.d/resource.d/MFSMaster"]
    cfg = f.settings()["master"]["config"]
    assert cfg["DATA_PATH"] == "/srv/mfsmeta" and cfg["EXPORTS_FILENAME"] == "/srv/mfsmeta/mfsexports.cfg"
    assert cfg["CHANGELOG_SAVE_MODE"] == 1 and cfg["NO_ATIME"] == 1 and cfg["WORKING_USER"] == "mfs"
    cs = formula.use("oslo-cs2", "custom").managed_files()
    assert lines(cs["/etc/mfs/mfshdd.cfg"]) == ["/srv/hdd1", "/srv/hdd2"]
    assert "HDD_LEAVE_SPACE_DEFAULT = 4GiB" in lines(cs["/etc/mfs/mfschunkserver.cfg"])
    client = formula.use("oslo-app", "custom").ids()["mfsha-client-mounted"]
    assert client["name"] == "mfsmount /data/mfs -o mfsmaster=10.44.1.100,mfsport=9421,mfsioretries=10"


def test_custom_heartbeat_timing(formula):
    files = formula.use("rome-2", "timing").managed_files()
    assert lines(files["/etc/ha.d/ha.cf"]) == [
        "logfacility daemon", "keepalive 2", "warntime 6", "deadtime 15", "initdead 40", "udpport 695",
        "ucast eth1 10.7.0.1", "auto_failback on", "crm off", "node rome-1", "node rome-2", "ping 10.7.0.254",
        "respawn hacluster /usr/libexec/heartbeat/ipfail", "respawn root /usr/local/sbin/mfsha-selffence"]
    assert os.path.exists("/usr/libexec/heartbeat/ipfail")  # the path ha.cf names is the package's
    assert 'NODES="10.7.0.254"' in files["/usr/local/sbin/mfsha-witness"]  # the takeover's witness
    fence = lines(files["/usr/local/sbin/mfsha-selffence"])
    assert "for a in 10.7.0.1 10.7.0.2; do" in fence and "SETTLE=17" in fence and "HA_RESOURCEDIR=/etc/ha.d/resource.d" in fence


@pytest.mark.parametrize("pillar,minion", [("example", "paris-mfs1"), ("custom", "oslo-a")])
def test_master_config_and_exports_render(formula, pillar, minion):
    """mfsmaster.cfg and mfsexports.cfg land on the mountpoint, so render them from their templates directly."""
    f = formula.use(minion, pillar)
    ctx = {"mfsha": f.settings()}
    cfg = lines(f._render("salt://mfsha/files/mfsmaster.cfg.jinja", ctx))
    mp = ctx["mfsha"]["storage"]["mountpoint"]
    assert f"DATA_PATH = {mp}" in cfg and f"EXPORTS_FILENAME = {mp}/mfsexports.cfg" in cfg
    assert "WORKING_USER = mfs" in cfg and cfg == sorted(cfg)
    exports = lines(f._render("salt://mfsha/files/mfsexports.cfg.jinja", ctx))
    assert exports and not any(ln.startswith("* ") for ln in exports)  # never everyone
    if pillar == "custom":  # no exports in the pillar: the VIP's subnet only
        assert exports == ["10.44.1.0/24 / rw,alldirs,maproot=0", "10.44.1.0/24 . rw"]


def test_clustermsg_fix_matches_the_packaged_shellfuncs(formula, tmp_path):
    """The file.replace pattern hits exactly the packaged ha_clustermsg line, the result is valid sh, and one printf
    delivers the framed message (one write, so two concurrent messages cannot interleave)."""
    import re
    chunk = formula.use("paris-mfs2", "example").ids()["mfsha-heartbeat-clustermsg-written-at-once"]
    packaged = open("/etc/ha.d/shellfuncs", encoding="utf-8").read()  # heartbeat's own file, never modified here
    fixed, count = re.subn(chunk["pattern"], chunk["repl"], packaged, flags=re.MULTILINE)  # as file.replace does
    assert count == 1
    assert re.search(chunk["pattern"], fixed, flags=re.MULTILINE) is None  # applied once: idempotent
    script = tmp_path / "shellfuncs"
    script.write_text(fixed)
    assert subprocess.run(["sh", "-n", str(script)], capture_output=True).returncode == 0
    fifo = tmp_path / "fifo-as-file"
    out = subprocess.run(["sh", "-c", f'. "$1"; HA_FIFO="$2"; echo "t=x" | ha_clustermsg', "sh", str(script), str(fifo)],
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    assert fifo.read_text() == ">>>\nt=x\n<<<\n"
