"""Root never follows a link the mfs user planted on the storage (issue 21 item 3), on the lab with the real beacon,
Salt, mfsmaster and metalogger. Each test plants links as the mfs user (runuser) at the names root writes there,
each to its own bait file outside the storage (mfshalab/faults/security.py), forces the code path that writes the
name, and shows every bait unchanged (content, owner, mode), the refusal reported where a file is read, the cluster serving
and no acknowledged byte lost. test_faults.py runs the same plants through the loop (fault symlink_in_data_path)."""
import json
import os
import stat

import pytest

from mfshalab.faults import security as fs
from mfshalab.faults import (FILL as DISK_FILL, bytes_lost, free_space, fresh_book, host_path, loop_idle, maintenance,
                             write)
from mfshalab.hosts import wait_for

pytestmark = pytest.mark.lab
MNT = "/srv/mfsconf"  # lab pillar storage mountpoint
CFG = f"{MNT}/mfsmaster.cfg"
TICKLE = "/usr/local/sbin/mfsha-tickle"


@pytest.fixture
def sec(loop):
    """The healed lab (loop installed), its holder and what a test plants: removed at the end, also on failure,
    with the full-disk filler, and the loop out of maintenance."""
    lab = loop
    lab.heal()
    fresh_book(lab)
    node = lab.active()
    ctx = {"lab": lab, "node": node, "baits": {}, "extra": [], "mark": fs.log_mark(lab, node),
           "manifest": write(lab, "symlinks-before")}
    yield ctx
    free_space(lab, MNT)
    fs.remove_planted(lab, node, MNT, ctx["baits"])
    for path in ctx["extra"]:
        if os.path.lexists(host_path(lab, node, path)):
            os.unlink(host_path(lab, node, path))
    maintenance(lab, False)


def plant(ctx, names):
    baits = fs.plant(ctx["lab"], ctx["node"], MNT, names)
    ctx["baits"].update(baits)
    return baits, fs.fingerprint(ctx["lab"], ctx["node"], baits)


def regular_of(ctx, name, uid=0):
    """MNT/name is a regular file (not a link) of UID."""
    try:
        st = os.lstat(host_path(ctx["lab"], ctx["node"], f"{MNT}/{name}"))
    except FileNotFoundError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_uid == uid


def serving_without_loss(ctx):
    lab = ctx["lab"]
    lab.wait_serving(90)
    assert lab.probe(timeout=60), "client write+read through the VIP failed"
    manifest = dict(ctx["manifest"], **write(lab, "symlinks-after"))
    assert bytes_lost(lab, manifest) == 0


def test_beacon_replaces_planted_peers_and_reserve_links(sec):
    """record_peers reads its old file: a link there is refused (logged with the path) and replaced; keep_reserve
    makes the reserve through an O_EXCL temporary file, so a link at its temporary name is never truncated."""
    lab, node = sec["lab"], sec["node"]
    names = [n for n in fs.root_written(fs.nodename(lab, node)) if ".mfsha-peers." in n or fs.RESERVE in n]
    lab.host(node).run(["runuser", "-u", "mfs", "--", "rm", "-f", f"{MNT}/{fs.RESERVE}"], timeout=10)
    baits, before = plant(sec, names)
    peers = f".mfsha-peers.{fs.nodename(lab, node)}"
    wait_for("the beacon rewriting its peers file", lambda: regular_of(sec, peers), 30, interval=0.5)
    fs.reserve_back(lab, node, MNT)
    assert fs.fingerprint(lab, node, baits) == before
    refused = fs.refusals(lab, node, sec["mark"], MNT)
    assert any(f"{MNT}/{peers}: is a symlink; refused" in line and "it is replaced" in line for line in refused), \
        refused
    serving_without_loss(sec)


def test_tickle_skips_planted_peers_files(sec):
    """mfsha-tickle on a survivor reads the other nodes' peers files: a link (to a root file, to /dev/zero) or a
    FIFO is skipped with the reason, never read (the old os.stat + open followed both, and read /dev/zero forever)."""
    lab, node = sec["lab"], sec["node"]
    other = f".mfsha-peers.{fs.nodename(lab, lab.peer(node))}"
    baits, before = plant(sec, [other])
    h = lab.host(node)
    for name, make in ((".mfsha-peers.zero", ["ln", "-s", "/dev/zero"]), (".mfsha-peers.fifo", ["mkfifo"])):
        h.run(["runuser", "-u", "mfs", "--", *make, f"{MNT}/{name}"], timeout=10)
        sec["extra"].append(f"{MNT}/{name}")
    # run as MFSMaster start runs it: with the minion's synced _utils (mfsha_hold) named in MFSHA_UTILS
    utils = h.run(["sed", "-n", "s/^UTILS=//p", "/etc/ha.d/resource.d/MFSMaster"], timeout=10).stdout.strip()
    assert utils and h.run(["test", "-f", f"{utils}/mfsha_hold.py"], timeout=10, check=False).returncode == 0, utils
    p = h.run(["env", f"MFSHA_UTILS={utils}", TICKLE, lab.vip, MNT], timeout=30, check=False)
    assert p.returncode == 0, p.stderr
    for name, why in ((other, "(a symlink)"), (".mfsha-peers.zero", "(a symlink)"),
                      (".mfsha-peers.fifo", "not a regular file")):
        assert f"refused {MNT}/{name}: " in p.stderr and why in p.stderr, p.stderr
    assert any("mfsha-tickle" in line and f"refused {MNT}/{other}" in line for line in h.syslog()), "not in syslog"
    assert fs.fingerprint(lab, node, baits) == before
    serving_without_loss(sec)


def test_fill_and_full_disk_restart_never_follow_planted_links(sec):
    """The issue's attack: links at the metalogger fill and the full-disk marker (and their temporary names), then
    the fill (mfsmaster.add_changelog, chowned to mfs) and a restart on a full storage (release of the reserve, the
    marker, the refusal to start without the tail, the restart with it): links replaced, baits unchanged."""
    lab, node = sec["lab"], sec["node"]
    maintenance(lab, True)
    loop_idle(lab)
    names = [n for n in fs.root_written(fs.nodename(lab, node)) if fs.FILL in n or fs.WAS_FULL in n]
    baits, before = plant(sec, names)
    # as the loop's fill: every change from the replay start on (a shorter fill would reopen a hole it covered)
    start = lab.salt.cmd(node, "mfsmaster.data_path_ok", f"cfg={CFG}", timeout=60)[node]["metadata_version"]
    tail = lab.salt.cmd("mfs-cs1", "mfsmaster.changelog_since", str(start), "data_path=/var/lib/mfs")
    lines = tail["mfs-cs1"]["lines"]
    assert lines, tail
    ret = lab.salt.cmd(node, "mfsmaster.add_changelog", json.dumps(lines), f"cfg={CFG}", timeout=60)[node]
    assert isinstance(ret, dict) and ret["hole"] is None, ret
    assert regular_of(sec, fs.FILL, int(lab.host(node).run(["id", "-u", "mfs"], timeout=10).stdout))  # fchown'ed
    h = lab.host(node)
    h.run(f"fallocate -l $(($(df --output=avail -B1 {MNT} | tail -1) - 65536)) {MNT}/{DISK_FILL}", timeout=60)
    ret = lab.salt.cmd(node, "mfsha.restart_master", f"cfg={CFG}", "grace=3", "timeout=60", timeout=120)[node]
    assert isinstance(ret, dict) and (ret["started"], ret["refused"]) == (False, "missing_changes"), ret
    assert "changes the master acknowledged are missing" in ret["reason"] and "reserve was released" in ret["reason"], \
        ret
    assert regular_of(sec, fs.WAS_FULL)  # the marker replaced the planted link
    free_space(lab, MNT)
    ret = lab.salt.cmd(node, "mfsha.restart_master", f"cfg={CFG}", "timeout=60", "tail_checked=True", timeout=120)
    assert isinstance(ret[node], dict) and ret[node]["started"] and ret[node]["pid"], ret
    assert not os.path.lexists(host_path(lab, node, f"{MNT}/{fs.WAS_FULL}"))
    assert fs.fingerprint(lab, node, baits) == before
    maintenance(lab, False)
    fs.reserve_back(lab, node, MNT)
    serving_without_loss(sec)


def test_state_apply_replaces_planted_config_links(sec):
    """mfsha.storage_file (mfsmaster.cfg, mfsexports.cfg): a planted link is replaced, its target neither written nor
    read (file.managed wrote through it; with follow_symlinks False it still read it for the diff)."""
    lab, node = sec["lab"], sec["node"]
    maintenance(lab, True)  # while mfsmaster.cfg is a link the beacon sees no master: the loop only reports
    loop_idle(lab)
    names = ["mfsmaster.cfg", "mfsexports.cfg", fs.tmp_name("mfsmaster.cfg"), fs.tmp_name("mfsexports.cfg")]
    baits, before = plant(sec, names)
    ret = lab.salt.cmd(node, "state.apply", "mfsha", timeout=300)[node]
    assert isinstance(ret, dict), ret
    failed = [k for k, v in ret.items() if not v["result"]]
    assert failed == [], failed
    for sid in ("mfsha-master-config-file", "mfsha-master-exports-file"):
        res = next(v for k, v in ret.items() if f"_|-{sid}_|-" in k)
        assert res["changes"]["because"] == "is a symlink (not followed)", res
    assert regular_of(sec, "mfsmaster.cfg") and regular_of(sec, "mfsexports.cfg")
    with open(host_path(lab, node, CFG)) as f:
        assert f"DATA_PATH = {MNT}" in f.read()
    assert fs.fingerprint(lab, node, baits) == before
    maintenance(lab, False)
    serving_without_loss(sec)
