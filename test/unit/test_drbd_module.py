"""_modules/drbd.py with cmd.run_all answered by captured DRBD outputs (FakeCommands)."""

import re

import pytest
from salt.exceptions import CommandExecutionError

from unit_support import FIXTURES, FakeCommands, load_salt_module
from test_drbd_parse import STATES, VERSION_DISK

D = FIXTURES / "drbd"
JSON = "drbdsetup status --json"
TEXT = "drbdsetup status --verbose --statistics"


def capture(name):
    """A no-kernel-module capture: '$ command', combined output, '[exit code: N]'."""
    lines = (D / "no-kernel-module" / name).read_text().splitlines()
    return "\n".join(lines[1:-1]) + "\n", int(re.match(r"\[exit code: (\d+)\]", lines[-1]).group(1))


@pytest.fixture
def fake(tmp_path):
    return FakeCommands(tmp_path)


def drbd(fake, **opts):
    return load_salt_module("_modules/drbd.py", salt={"cmd.run_all": fake.run_all}, opts=opts)


def live9(fake, state, node):
    fake.on(JSON, D / f"live-9/drbdsetup-status-json__{state}__{node}.txt")


def live84(fake, state, node):
    base = D / "live-8.4"
    fake.on(JSON, base / f"drbdsetup-status-json__{state}__{node}.txt",
            base / f"drbdsetup-status-json__{state}__{node}.stderr.txt", rc=20)
    fake.on(TEXT, base / f"drbdsetup-status-vs__{state}__{node}.txt")
    return str(base / f"proc-drbd__{state}__{node}.txt")


LIVE9_JSON = sorted((p.name.split("__")[1], p.name.split("__")[2][:-4])
                    for p in D.glob("live-9/drbdsetup-status-json__*.txt") if "unconfigured" not in p.name)
LIVE84_VS = sorted((p.name.split("__")[1], p.name.split("__")[2][:-4]) for p in D.glob("live-8.4/drbdsetup-status-vs__*"))


@pytest.mark.parametrize("state,node", LIVE9_JSON)
def test_status_drbd9(fake, state, node):
    live9(fake, state, node)
    mod = drbd(fake)
    res = mod.status("r0")["r0"]
    role, disk, connection, peer_role, peer_disk, _ = STATES[state]
    assert (res["role"], res["disk"], res["connection"], res["peer_role"], res["peer_disk"]) == (
        role, VERSION_DISK.get(("live-9", state), disk), connection, peer_role, peer_disk)
    assert res["source"] == "json"
    assert mod.is_primary("r0") is (role == "Primary")
    assert mod.uptodate("r0") is (VERSION_DISK.get(("live-9", state), disk) == "UpToDate")
    assert fake.calls == [JSON] * 3


@pytest.mark.parametrize("state,node", LIVE84_VS)
def test_status_84_fallback(fake, state, node):
    proc = live84(fake, state, node)
    res = drbd(fake, **{"drbd.proc": proc}).status()["r0"]
    role, disk, connection, peer_role, peer_disk, replication = STATES[state]
    got = (res["role"], res["disk"], res["connection"], res["peer_role"], res["peer_disk"], res["replication"])
    assert got == (role, disk, connection, peer_role, peer_disk, replication)
    assert res["source"] == "text" and fake.calls == [JSON, TEXT]
    # /proc/drbd (by minor) is attached to the volume and confirms 8.4's hidden StandAlone
    assert res["volumes"][0]["raw"]["proc"]["cs"] in (connection, "WFConnection", replication)


def test_sync_progress(fake):
    live9(fake, "syncsource-primary", "mfsmaster1")
    assert drbd(fake).sync_progress("r0") == pytest.approx(19.53)
    fake.on(JSON, D / "live-9/drbdsetup-status-json__connected-primary-uptodate__mfsmaster1.txt")
    assert drbd(fake).sync_progress("r0") == 100.0
    fake.on(JSON, D / "live-9/drbdsetup-status-json__peer-lost-connecting-secondary__mfsmaster1.txt")
    assert drbd(fake).sync_progress("r0") is None


def test_sync_progress_84(fake):
    proc = live84(fake, "synctarget-secondary", "mfsmaster2")
    assert drbd(fake, **{"drbd.proc": proc}).sync_progress("r0") == pytest.approx(24.05)


def test_unconfigured_drbd9(fake):
    live9(fake, "unconfigured", "mfsmaster1")
    mod = drbd(fake)
    assert mod.status() == {} and mod.is_primary("r0") is False
    with pytest.raises(CommandExecutionError, match="r0 is not up"):
        mod.role("r0")


def test_no_kernel_module_raises_with_stderr(fake):
    out, rc = capture("n1-drbdsetup-status-json.txt")
    fake.on(JSON, stderr=out, rc=rc)
    out, rc = capture("n1-drbdsetup-status-r0-vss.txt")
    fake.on(TEXT, stderr=out, rc=rc)
    with pytest.raises(CommandExecutionError) as err:
        drbd(fake).status()
    assert "Failed to modprobe drbd" in str(err.value) and TEXT in str(err.value) and "exit code 20" in str(err.value)


# --- promotion ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("state,node,why", [
    ("connected-secondary-uptodate", "mfsmaster2", "peer mfsmaster1 is Primary"),
    ("connected-secondary-inconsistent", "mfsmaster1", "not UpToDate"),
    ("standalone-disconnected-secondary", "mfsmaster1", "Outdated"),  # DRBD 9 outdates on disconnect
    ("diskless-secondary", "mfsmaster1", "Diskless"),
])
def test_primary_refuses(fake, state, node, why):
    live9(fake, state, node)
    with pytest.raises(CommandExecutionError, match=why):
        drbd(fake).primary("r0")
    assert fake.calls == [JSON]


def test_primary_safe_and_forced(fake):
    live9(fake, "connected-secondary-secondary-uptodate", "mfsmaster1")
    fake.on("drbdadm primary r0")
    assert drbd(fake).primary("r0") is True
    live9(fake, "connected-secondary-inconsistent", "mfsmaster1")
    fake.on("drbdadm primary --force r0")
    assert drbd(fake).primary("r0", force=True) is True
    assert fake.calls[-1] == "drbdadm primary --force r0"


def test_primary_already_primary_runs_nothing(fake):
    live9(fake, "connected-primary-uptodate", "mfsmaster1")
    assert drbd(fake).primary("r0") is True
    assert fake.calls == [JSON]


def test_primary_kernel_refusal_carries_stderr(fake):
    live9(fake, "peer-lost-connecting-secondary", "mfsmaster1")  # looks safe from here
    text = (D / "live-9/drbdadm-primary-refused-outdated__mfsmaster1.txt").read_text().splitlines()
    fake.on("drbdadm primary r0", stderr="\n".join(text[1:]), rc=17)
    with pytest.raises(CommandExecutionError, match="exit code 17: r0: State change failed.*UpToDate data"):
        drbd(fake).primary("r0")


# --- metadata -----------------------------------------------------------------------------------------------

def test_create_md_on_blank_disk(fake):
    fake.on("drbdadm dstate r0", stderr=D / "live-8.4/drbdadm-dstate__unconfigured__mfsmaster1.stderr.txt", rc=1)
    fake.on("drbdadm create-md r0", D / "live-8.4/drbdadm-create-md__mfsmaster1.txt")
    mod = drbd(fake)
    assert mod.has_metadata("r0") is False
    assert "New drbd meta data block successfully created." in mod.create_md("r0")


def test_create_md_refuses_existing_unless_forced(fake):
    out, rc = capture("md-dstate.txt")
    fake.on("drbdadm dstate r0", out.split("\n")[-2], rc=rc)  # drbdmeta's answer: 'Inconsistent'
    out, rc = capture("md-create-md.txt")
    fake.on("drbdadm create-md --force r0", out, rc=rc)
    mod = drbd(fake)
    with pytest.raises(CommandExecutionError, match="metadata already present"):
        mod.create_md("r0")
    assert "create-md" not in " ".join(fake.calls)
    assert "confirmation forced" in mod.create_md("r0", force=True)


def test_create_md_errors_carry_stderr(fake):
    out, rc = capture("n1-dstate-r0.txt")
    fake.on("drbdadm dstate r0", stderr=out, rc=rc)
    with pytest.raises(CommandExecutionError, match=r"open\(/dev/vdb\) failed"):
        drbd(fake).create_md("r0")
    fake.on("drbdadm dstate r0", stderr=D / "live-9/drbdadm-dstate__unconfigured__mfsmaster1.stderr.txt", rc=1)
    out, rc = capture("ns-create-md-real.txt")
    fake.on("drbdadm create-md r0", stderr=out, rc=rc)
    with pytest.raises(CommandExecutionError, match="drbdadm create-md r0 failed with exit code 20"):
        drbd(fake).create_md("r0")


# --- plain actions, conf ------------------------------------------------------------------------------------

def test_actions_use_conf(fake):
    for verb in ("up", "down", "adjust", "secondary"):
        fake.on(f"drbdadm -c /etc/mfsha/drbd.conf {verb} r0")
    mod = drbd(fake, **{"drbd.conf": "/etc/mfsha/drbd.conf"})
    assert all(getattr(mod, verb)("r0") for verb in ("up", "down", "adjust", "secondary"))
    fake.on("drbdadm -c /other.conf up r0")
    assert mod.up("r0", conf="/other.conf")


def test_up_failure_carries_stderr(fake):
    out, rc = capture("n1-up-r0.txt")
    fake.on("drbdadm up r0", stderr=out, rc=rc)
    with pytest.raises(CommandExecutionError, match="IP 10.0.0.1 not found on this host"):
        drbd(fake).up("r0")


# --- split brain --------------------------------------------------------------------------------------------

def test_split_brain_drbd9(fake):
    live9(fake, "standalone-split-brain-primary", "mfsmaster1")
    fake.on("dmesg", D / "live-9/dmesg-split-brain__mfsmaster1.txt")
    got = drbd(fake).split_brain("r0")
    assert got["split_brain"] is True and "Split-Brain detected" in got["evidence"]


def test_split_brain_84(fake):
    proc = live84(fake, "standalone-split-brain-primary", "mfsmaster1")
    fake.on("dmesg", D / "live-8.4/dmesg-split-brain__mfsmaster1.txt")
    got = drbd(fake, **{"drbd.proc": proc}).split_brain("r0")
    assert got == {"split_brain": True, "connection": "StandAlone", "evidence": got["evidence"]}
    assert got["evidence"].endswith("block drbd0: Split-Brain detected but unresolved, dropping connection!")


def test_plain_disconnect_is_not_split_brain(fake):
    live9(fake, "standalone-disconnected-primary", "mfsmaster2")
    log = (D / "live-9/dmesg-split-brain__mfsmaster2.txt").read_text()
    fake.on("dmesg", log[:log.index("Split-Brain")].rsplit("\n", 1)[0])  # the log up to the disconnect
    assert drbd(fake).split_brain("r0")["split_brain"] is False


def test_connected_is_not_split_brain_without_reading_log(fake):
    live9(fake, "connected-primary-uptodate", "mfsmaster1")
    assert drbd(fake).split_brain("r0") == {"split_brain": False, "connection": "Connected", "evidence": None}
    assert "dmesg" not in fake.calls


# --- version, wait ------------------------------------------------------------------------------------------

def test_version(fake):
    fake.on("drbdadm --version", D / "live-9/drbdadm-version__mfsmaster1.txt")
    proc = str(D / "live-8.4/proc-drbd__connected-primary-uptodate__mfsmaster1.txt")
    assert drbd(fake, **{"drbd.proc": proc}).version() == {"kernel": "8.4.11", "utils": "9.22.0"}
    fake.on("drbdadm --version", D / "no-kernel-module/drbdadm--version.txt")  # modinfo errors, rc=0 included
    assert drbd(fake, **{"drbd.proc": "/nonexistent/drbd"}).version() == {"kernel": None, "utils": "9.22.0"}


def test_wait_synced(fake):
    fake.on(JSON, D / "live-9/drbdsetup-status-json__syncsource-primary__mfsmaster1.txt", state="default",
            next_state="synced")
    fake.on(JSON, D / "live-9/drbdsetup-status-json__connected-primary-uptodate__mfsmaster1.txt", state="synced")
    res = drbd(fake).wait_synced("r0", timeout=10, interval=0.01)
    assert res["peer_disk"] == "UpToDate" and fake.calls == [JSON, JSON]


def test_wait_synced_times_out(fake):
    live9(fake, "syncsource-primary", "mfsmaster1")
    with pytest.raises(CommandExecutionError, match="not synced after 0.05s.*SyncSource.*19.53"):
        drbd(fake).wait_synced("r0", timeout=0.05, interval=0.01)
