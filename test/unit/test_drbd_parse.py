"""Every captured DRBD status output through the pure parsers, checked against what its state name means."""

import csv
import re

import pytest

import mfsha_drbd as m
from unit_support import FIXTURES, fixture_text

DRBD = FIXTURES / "drbd"

# What each captured state means: (role, disk, connection, peer_role, peer_disk, replication).
# Written from the state names and DRBD semantics, not from parser output.
CONNECTED_SEC_SEC_UTD = ("Secondary", "UpToDate", "Connected", "Secondary", "UpToDate", "Established")
PRIMARY_UTD = ("Primary", "UpToDate", "Connected", "Secondary", "UpToDate", "Established")
SECONDARY_UTD = ("Secondary", "UpToDate", "Connected", "Primary", "UpToDate", "Established")
STATES = {
    "connected-secondary-inconsistent": ("Secondary", "Inconsistent", "Connected", "Secondary", "Inconsistent",
                                         "Established"),
    "connected-secondary-secondary-uptodate": CONNECTED_SEC_SEC_UTD,
    "connected-secondary-uptodate": SECONDARY_UTD,
    "connected-secondary-after-failover": SECONDARY_UTD,
    "connected-primary-uptodate": PRIMARY_UTD,
    "connected-primary-uptodate-after-failover": PRIMARY_UTD,
    "after-split-brain-resolve-survivor": PRIMARY_UTD,
    "after-split-brain-resolve-victim": SECONDARY_UTD,
    "syncsource-primary": ("Primary", "UpToDate", "Connected", "Secondary", "Inconsistent", "SyncSource"),
    "synctarget-secondary": ("Secondary", "Inconsistent", "Connected", "Primary", "UpToDate", "SyncTarget"),
    "diskless-secondary": ("Secondary", "Diskless", "Connected", "Primary", "UpToDate", "Established"),
    "primary-peer-diskless": ("Primary", "UpToDate", "Connected", "Secondary", "Diskless", "Established"),
    "peer-lost-wfconnection-secondary": ("Secondary", "UpToDate", "Connecting", "Unknown", "DUnknown", "Off"),
    "peer-lost-connecting-secondary": ("Secondary", "UpToDate", "Connecting", "Unknown", "DUnknown", "Off"),
    "wfconnection-inconsistent-secondary": ("Secondary", "Inconsistent", "Connecting", "Unknown", "DUnknown", "Off"),
    "connecting-inconsistent-secondary": ("Secondary", "Inconsistent", "Connecting", "Unknown", "DUnknown", "Off"),
    "standalone-disconnected-primary": ("Primary", "UpToDate", "StandAlone", "Unknown", "DUnknown", "Off"),
    "standalone-disconnected-secondary": ("Secondary", "UpToDate", "StandAlone", "Unknown", "DUnknown", "Off"),
    "standalone-split-brain-primary": ("Primary", "UpToDate", "StandAlone", "Unknown", "DUnknown", "Off"),
}
# DRBD 9 marks a Secondary Outdated when it is disconnected gracefully (live-9 captures); 8.4 keeps UpToDate.
VERSION_DISK = {("live-9", "standalone-disconnected-secondary"): "Outdated"}

# Status-like command kinds (file name prefix) fed through parse_status.
STATUS_KINDS = {"drbdadm-status", "drbdadm-status-all", "drbdsetup-status-json", "drbdsetup-status-vs", "proc-drbd",
                "drbdsetup-events2-now", "drbdsetup-events2-now-statistics", "drbdsetup84-events-now"}
# Kinds not fed to parse_status, and why. A new kind in the fixture dir fails test_every_kind_is_accounted_for.
OTHER_KINDS = {
    "drbd-overview": "deprecated script, not shipped by Debian's drbd-utils 9.22; DRBD 9 variant truncates states",
    "drbdadm-sh-status": "8.4-only shell-variable dump; the module reads drbdsetup status instead",
    "drbdadm-role": "parse_role", "drbdadm-cstate": "parse_cstate", "drbdadm-dstate": "parse_dstate",
    "drbdadm-version": "parse_version", "dmesg-split-brain": "split_brain_in_log",
    "drbdsetup84-show": "configuration, not status", "drbdadm-dump": "configuration",
    "drbdadm-dump-drbd9-syntax-under-84-kernel": "configuration", "drbdadm-dry-run-up": "dry-run commands",
    "drbdadm-create-md": "create-md output (module tests)",
    "drbdadm-primary-refused-outdated": "error output (module tests)",
}
# Sources that carry no resync progress: events2 without --statistics under 8.4.
NO_PROGRESS = {("live-8.4", "drbdsetup-events2-now"), ("live-8.4", "drbdsetup84-events-now")}


def _index():
    with open(DRBD / "index.tsv", encoding="utf-8") as fh:
        return {row["file"]: row for row in csv.DictReader(fh, delimiter="\t")}


def _live_files():
    """(relpath, version dir, kind, state) for every captured file named <kind>__<state>__<node>.txt."""
    out = []
    for path in sorted(DRBD.glob("live-*/*.txt")):
        parts = path.name.split("__")
        state = parts[1] if len(parts) == 3 else None
        out.append((str(path.relative_to(DRBD)), path.parent.name, parts[0], state))
    return out


LIVE = _live_files()
STATUS_FILES = [f for f in LIVE if f[2] in STATUS_KINDS and not f[0].endswith(".stderr.txt")]


def test_fixture_dir_found_and_indexed():
    index = _index()
    assert len(STATUS_FILES) > 200
    # the index lists (nearly) every file; exit codes come from it where present
    assert sum(f[0] in index for f in STATUS_FILES) > 180


def test_every_kind_is_accounted_for():
    kinds = {kind for _, _, kind, _ in LIVE}
    assert kinds <= STATUS_KINDS | set(OTHER_KINDS), kinds - STATUS_KINDS - set(OTHER_KINDS)


def test_every_state_has_an_expectation():
    states = {state for _, _, _, state in STATUS_FILES if state and state != "unconfigured"}
    assert states <= set(STATES), states - set(STATES)


def _expect_key(version, kind):
    return "minor:0" if kind == "proc-drbd" and version == "live-8.4" else "r0"


@pytest.mark.parametrize("relpath,version,kind,state", STATUS_FILES, ids=[f[0] for f in STATUS_FILES])
def test_status_fixture(relpath, version, kind, state):
    text = fixture_text(f"drbd/{relpath}")
    exit_code = _index().get(relpath, {}).get("exit_code", "0")
    if exit_code != "0":
        # 8.4 prints drbdsetup usage for --json (exit 20); DRBD 9 prints a comment when nothing is configured
        if "USAGE:" in text:
            with pytest.raises(ValueError):
                m.parse_status(text)
        else:
            assert m.parse_status(text) == {}
        return
    parsed = m.parse_status(text)
    if state == "unconfigured" or (kind == "proc-drbd" and version == "live-9"):
        assert parsed == {}  # DRBD 9's /proc/drbd shows only its version
        return
    assert list(parsed) == [_expect_key(version, kind)]
    res = parsed[_expect_key(version, kind)]
    role, disk, connection, peer_role, peer_disk, replication = STATES[state]
    disk = VERSION_DISK.get((version, state), disk)
    got = (res["role"], res["disk"], res["connection"], res["peer_role"], res["peer_disk"], res["replication"])
    assert got == (role, disk, connection, peer_role, peer_disk, replication)
    if replication.startswith("Sync") and (version, kind) not in NO_PROGRESS:
        assert 0 < res["sync_done"] < 100
    else:
        assert res["sync_done"] is None
    # split brain cannot be read from status: StandAlone is undecided, anything else rules it out
    assert res["split_brain"] is (None if connection == "StandAlone" else False)
    assert bool(m.promotion_blockers(res)) is not (disk == "UpToDate" and peer_role != "Primary")
    assert m.is_synced(res) is (disk == peer_disk == "UpToDate" and connection == "Connected")


SMALL = [f for f in LIVE if f[2] in ("drbdadm-role", "drbdadm-cstate", "drbdadm-dstate")
         and not f[0].endswith(".stderr.txt")]


@pytest.mark.parametrize("relpath,version,kind,state", SMALL, ids=[f[0] for f in SMALL])
def test_role_cstate_dstate(relpath, version, kind, state):
    text = fixture_text(f"drbd/{relpath}")
    role, disk, connection, peer_role, peer_disk, replication = STATES[state]
    disk = VERSION_DISK.get((version, state), disk)
    peer_known = version == "live-8.4"  # 8.4's role prints local/peer, DRBD 9 only local
    if kind == "drbdadm-role":
        assert m.parse_role(text) == (role, peer_role if peer_known else None)
    elif kind == "drbdadm-cstate":
        # DRBD 9's cstate is the connection only; 8.4 folds replication in except for plain Connected
        plain = connection == "Connected" and (version == "live-9" or replication == "Established")
        assert m.parse_cstate(text) == (connection, None if plain else replication)
    else:
        assert m.parse_dstate(text) == (disk, peer_disk)


def test_small_parsers_reject_errors():
    with pytest.raises(ValueError):
        m.parse_role(fixture_text("drbd/live-9/drbdadm-role__unconfigured__mfsmaster1.stderr.txt"))


def test_version():
    assert m.parse_version(fixture_text("drbd/live-9/drbdadm-version__mfsmaster1.txt")) == {
        "kernel": "9.2.12", "utils": "9.22.0"}
    assert m.parse_version(fixture_text("drbd/no-kernel-module/drbdadm--version.txt")) == {
        "kernel": None, "utils": "9.22.0"}
    assert m.parse_version(fixture_text("drbd/live-8.4/proc-drbd__unconfigured__mfsmaster1.txt"))["kernel"] == "8.4.11"


# --- public samples and doc excerpts (first line names the source; '# ---' separates blocks) ---------------

def _blocks(relpath):
    text = fixture_text(f"drbd/{relpath}")
    if text.startswith("# source:"):
        text = text.split("\n", 1)[1]
    return [b for b in re.split(r"^# ---.*$", text, flags=re.M) if b.strip()]


# per block: {resource: (role, disk, connection, peer_disk, sync_done or None)}
PUBLIC = {
    "public/drbd84-proc-drbd-connected-dualprimary.txt": [
        {"minor:1": ("Primary", "UpToDate", "Connected", "UpToDate", None)}],
    "public/drbd84-proc-drbd-splitbrain-both-nodes.txt": [
        {"minor:0": ("Secondary", "UpToDate", "StandAlone", "DUnknown", None)},
        {"minor:0": ("Primary", "UpToDate", "StandAlone", "DUnknown", None)}],
    "public/drbd84-proc-drbd-syncsource-progress-docs-mangled.txt": [
        {"minor:0": ("Primary", "UpToDate", "Connected", "Inconsistent", 19.5)}],
    "public/drbd9-drbdadm-status-lifecycle-pacemaker-docs.txt": [
        {"wwwdata": ("Secondary", "Inconsistent", "Connecting", "DUnknown", None)},
        {"wwwdata": ("Secondary", "Inconsistent", "Connected", "Inconsistent", None)},
        {"wwwdata": ("Primary", "UpToDate", "Connected", "Inconsistent", None)},
        {"wwwdata": ("Primary", "UpToDate", "Connected", "Inconsistent", None)},  # SyncSource without done:
        {"wwwdata": ("Secondary", "UpToDate", "Connected", "UpToDate", None)}],
    "public/drbd9-drbdadm-status-multivol-3node-2res.txt": [
        {"test": ("Primary", "UpToDate", "Connected", "UpToDate", None),
         "res": ("Primary", "UpToDate", "Connected", "UpToDate", None)}],
    "public/drbd9-drbdadm-status-single-syncsource.txt": [
        {"single": ("Primary", "UpToDate", "Connected", "Inconsistent", 96.47)}],
    "public/drbd9-drbdadm-status-standalone-noquorum-3node.txt": [
        {"linstor_db": ("Secondary", "Diskless", "StandAlone", "DUnknown", None)},
        {"linstor_db": ("Secondary", "Diskless", "StandAlone", "DUnknown", None)},
        {"linstor_db": ("Secondary", "UpToDate", "Connecting", "DUnknown", None)}],
    "public/drbd9-drbdsetup-status-json-2res-quorum-false.json": [
        {"1-single-0": ("Secondary", "UpToDate", "Connected", "UpToDate", None),
         "1-single-1": ("Secondary", "UpToDate", "Connected", "UpToDate", None)}],
    "public/drbd9-drbdsetup-status-json-primary-uptodate.json": [
        {"beijing": ("Primary", "UpToDate", "Connected", "UpToDate", None)}],
    "public/drbd9-drbdsetup-status-json-secondary-lowerpending.json": [
        {"shanghai": ("Secondary", "UpToDate", "Connected", "UpToDate", None)}],
    "public/drbd9-drbdsetup-status-json-syncsource-nan.json": [
        {"shanghai": ("Primary", "UpToDate", "Connected", "Inconsistent", 0.0)}],
    "public/drbd9-events2-sync.txt": [
        {"some-resource": ("Secondary", "UpToDate", "Connected", "Inconsistent", 37.5)},
        {"some-resource": ("Secondary", "UpToDate", "Connected", "Inconsistent", 37.5)}],
    "public/drbd9-events2-may-promote-quorum.txt": [
        {"some-resource": ("Secondary", "UpToDate", "StandAlone", "DUnknown", None)}],  # no peer at all
    "public/drbd9-events2-helper-timestamps.txt": [
        {"some-resource": ("Secondary", "Diskless", "StandAlone", "DUnknown", None)}],
    "public/drbd9-events2-timestamps-statistics-drbdtop.txt": [  # test0 ends 'unconfigured:true'
        {"test3": ("Secondary", "UpToDate", "Connected", "UpToDate", None)}],
    "public/drbd9-events2-full-reactor-parser-cases.txt": [
        {"foo": ("Primary", "Attaching", "Connected", "UpToDate", None)}],
    "docs/drbdsetup-status__connected-primary-uptodate__drbdsetup-9.0-manpage.txt": [
        {"drbd0": ("Primary", "UpToDate", "Connected", "UpToDate", None)}],
    "docs/drbdsetup-status-verbose__connected-primary__drbdsetup-9.0-manpage.txt": [  # caught mid-handshake
        {"drbd0": ("Primary", "UpToDate", "Connecting", "UpToDate", None)}],
    "docs/proc-drbd__3res-mixed-roles__drbd-doc-8.4-users-guide.txt": [
        {"minor:0": ("Secondary", "UpToDate", "Connected", "UpToDate", None),
         "minor:1": ("Primary", "UpToDate", "Connected", "UpToDate", None),
         "minor:2": ("Secondary", "UpToDate", "Connected", "UpToDate", None)}],
    "docs/proc-drbd__connected-secondary-inconsistent__drbd-doc-8.4-users-guide.txt": [
        {"minor:0": ("Secondary", "Inconsistent", "Connected", "Inconsistent", None)}],
}
NOT_STATUS = {"public/drbd9-drbdsetup-show-json.json": "configuration (drbdsetup show --json)",
              "docs/drbd-overview__3res-connected-primary-mounted__drbd-doc-8.4-users-guide.txt": "drbd-overview"}


def test_every_public_sample_is_accounted_for():
    files = {str(p.relative_to(DRBD)) for d in ("public", "docs") for p in (DRBD / d).iterdir()}
    assert files == set(PUBLIC) | set(NOT_STATUS)


@pytest.mark.parametrize("relpath", sorted(PUBLIC))
def test_public_sample(relpath):
    blocks = _blocks(relpath)
    assert len(blocks) == len(PUBLIC[relpath])
    for block, expected in zip(blocks, PUBLIC[relpath]):
        parsed = m.parse_status(block)
        got = {name: (r["role"], r["disk"], r["connection"], r["peer_disk"], r["sync_done"])
               for name, r in parsed.items()}
        assert got == expected


def test_multivolume_multipeer_detail():
    (block,) = _blocks("public/drbd9-drbdadm-status-multivol-3node-2res.txt")
    res = m.parse_status(block)["test"]
    assert sorted(res["volumes"]) == [0, 1]
    assert sorted(res["peers"]) == ["node2", "node3"]
    assert all(sorted(p["volumes"]) == [0, 1] for p in res["peers"].values())


def test_json_nan_and_raw_kept():
    (block,) = _blocks("public/drbd9-drbdsetup-status-json-syncsource-nan.json")
    res = m.parse_status(block)["shanghai"]
    pv = res["peers"]["SLE12-sp4-node2"]["volumes"][0]
    assert pv["raw"]["estimated-seconds-to-finish"] is None
    assert res["volumes"][0]["raw"]["lower-pending"] == 3


def test_84_text_hides_standalone_but_proc_shows_it():
    text = m.parse_status(fixture_text("drbd/live-8.4/drbdadm-status__standalone-split-brain-primary__mfsmaster1.txt"))
    proc = m.parse_status(fixture_text("drbd/live-8.4/proc-drbd__standalone-split-brain-primary__mfsmaster1.txt"))
    assert text["r0"]["peers"] == {} and text["r0"]["connection"] == "StandAlone"
    assert proc["minor:0"]["raw"]["cs"] == "StandAlone"


def test_garbage_is_rejected():
    with pytest.raises(ValueError):
        m.parse_status("hello world\nfoo")
    with pytest.raises(ValueError):
        m.parse_status('{"name": "r0"}')  # JSON but not the list drbdsetup prints


# --- events2 ------------------------------------------------------------------------------------------------

def test_events2_keeps_unknown_keys_and_timestamps():
    events = m.parse_events2(_blocks("public/drbd9-events2-full-reactor-parser-cases.txt")[0])
    assert events[1]["props"]["xxx"] == "bla"
    assert events[2]["props"]["open"] == "yes" and events[2]["props"]["blocked"] == "upper"
    timed = m.parse_events2(_blocks("public/drbd9-events2-timestamps-statistics-drbdtop.txt")[0])
    assert timed[0]["time"] == "2017-03-27T08:28:17.072611-07:00" and timed[0]["object"] == "resource"
    helper = m.parse_events2(_blocks("public/drbd9-events2-helper-timestamps.txt")[0])
    assert helper[0] == {"time": None, "action": "exists", "object": "-", "props": {}}
    assert [e["action"] for e in helper[-2:]] == ["call", "response"]
    assert helper[-1]["props"]["status"] == "1"


def test_events2_split_brain_helper_marks_resource():
    lines = _blocks("public/drbd9-events2-helper-timestamps.txt")[0].splitlines()
    # the same helper line DRBD emits, with the split-brain handler instead of before-resync-target
    lines = [ln.replace("helper:before-resync-target", "helper:split-brain") for ln in lines]
    assert m.events2_state(m.parse_events2(lines))["some-resource"]["split_brain"] is True


def test_events2_rejects_non_event_lines():
    with pytest.raises(ValueError):
        m.parse_events2(["xxx resource name:foo"])


# --- kernel log -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("relpath", sorted(str(p.relative_to(DRBD)) for p in DRBD.glob("live-*/dmesg-split-brain__*")))
def test_split_brain_in_log(relpath):
    text = fixture_text(f"drbd/{relpath}")
    line = m.split_brain_in_log(text, "r0", [0])
    assert line and "Split-Brain detected but unresolved" in line
    assert m.split_brain_in_log(text) == line
    assert m.split_brain_in_log(text, "r1", [1]) is None
    before = text[:text.index("Split-Brain detected")].rsplit("\n", 1)[0]
    assert m.split_brain_in_log(before, "r0", [0]) is None
    # the peers reconnecting afterwards resolves it
    assert m.split_brain_in_log(text + "\n[ 999.0] drbd r0 peer: conn( Connecting -> Connected ) [connected]\n",
                                "r0", [0]) is None
