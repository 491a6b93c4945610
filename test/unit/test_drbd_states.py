"""_states/drbd.py through Salt's real loaders (salt-factories Loaders -> state.single), with drbdadm,
drbdsetup and dmesg replaced on PATH by executables that replay captured outputs (FakeCommands.install)."""

import pytest

from unit_support import FIXTURES, FakeCommands, salt_loaders

D = FIXTURES / "drbd"
JSON = "drbdsetup status --json"


@pytest.fixture(scope="module")
def loaders(tmp_path_factory):
    root = tmp_path_factory.mktemp("drbd-salt")
    return salt_loaders(root, **{"drbd.proc": str(root / "no-proc-drbd")})  # hermetic even on a DRBD host


@pytest.fixture
def fake(tmp_path, monkeypatch, loaders):
    cmds = FakeCommands(tmp_path)
    cmds.install(["drbdadm", "drbdsetup", "dmesg"], monkeypatch)
    yield cmds
    loaders.reset_state()


def status(fake, state, node, when="*", next_state=None):
    fake.on(JSON, D / f"live-9/drbdsetup-status-json__{state}__{node}.txt", state=when, next_state=next_state)


def moves(fake, before, cmd, after, node="mfsmaster1"):
    """The fake DRBD of NODE: status BEFORE (fake state "default") until CMD runs, then AFTER (fake state CMD)."""
    status(fake, before, node, when="default")
    fake.on(cmd, state="default", next_state=cmd)
    status(fake, after, node, when=cmd)


def test_module_loads_through_salt_loader(loaders):  # Salt 3008 ships no drbd module of its own
    assert "drbd.split_brain" in loaders.modules and "drbd.wait_synced" in loaders.modules


def test_up(loaders, fake):
    status(fake, "unconfigured", "mfsmaster1", when="default")
    fake.on("drbdadm up r0", state="default", next_state="up")
    status(fake, "connected-secondary-inconsistent", "mfsmaster1", when="up")
    ret = loaders.states.drbd.up(name="r0", test=True)
    assert ret.result is None and ret.changes == {} and "would bring r0 up" in ret.comment
    assert "drbdadm up r0" not in fake.calls
    ret = loaders.states.drbd.up(name="r0")
    assert ret.result is True and ret.changes == {"up": {"old": None, "new": "Secondary/Inconsistent/Connected"}}
    ret = loaders.states.drbd.up(name="r0")  # idempotent
    assert ret.result is True and ret.changes == {} and fake.calls.count("drbdadm up r0") == 1


def test_up_failure_comment_has_stderr(loaders, fake):
    status(fake, "unconfigured", "mfsmaster1")
    out = (D / "no-kernel-module/n1-up-r0.txt").read_text().splitlines()
    fake.on("drbdadm up r0", stderr="\n".join(out[1:-1]), rc=10)
    ret = loaders.states.drbd.up(name="r0")
    assert ret.result is False and "IP 10.0.0.1 not found on this host" in ret.comment
    assert "drbdadm up r0 failed with exit code 10" in ret.comment


def test_initialized(loaders, fake):
    fake.on("drbdadm dstate r0", stderr=D / "live-9/drbdadm-dstate__unconfigured__mfsmaster1.stderr.txt", rc=1,
            state="default")
    fake.on("drbdadm create-md r0", D / "live-9/drbdadm-create-md__mfsmaster1.txt", state="default",
            next_state="md")
    fake.on("drbdadm dstate r0", "Inconsistent\n", state="md")
    ret = loaders.states.drbd.initialized(name="r0", test=True)
    assert ret.result is None and "would create DRBD metadata" in ret.comment
    ret = loaders.states.drbd.initialized(name="r0")
    assert ret.result is True and ret.changes == {"metadata": "created"}
    ret = loaders.states.drbd.initialized(name="r0")
    assert ret.result is True and ret.changes == {} and "already present" in ret.comment
    assert fake.calls.count("drbdadm create-md r0") == 1 and "--force" not in " ".join(fake.calls)


def test_promoted(loaders, fake):
    moves(fake, "connected-secondary-secondary-uptodate", "drbdadm primary r0", "connected-primary-uptodate")
    ret = loaders.states.drbd.promoted(name="r0", test=True)
    assert ret.result is None and "would promote r0" in ret.comment and fake.state == "default"
    ret = loaders.states.drbd.promoted(name="r0")
    assert ret.result is True and ret.changes == {"role": {"old": "Secondary", "new": "Primary"}}
    ret = loaders.states.drbd.promoted(name="r0")
    assert ret.result is True and ret.changes == {} and "already Primary" in ret.comment


@pytest.mark.parametrize("state,node,force,why,test", [
    ("connected-secondary-uptodate", "mfsmaster2", False, "peer mfsmaster1 is Primary", False),
    ("connected-secondary-inconsistent", "mfsmaster1", False, "Inconsistent, not UpToDate", True),
    ("connecting-inconsistent-secondary", "mfsmaster1", True, "refusing to force r0 Primary", False),
    ("standalone-disconnected-secondary", "mfsmaster1", True, "refusing to force r0 Primary", True),
])
def test_promoted_refuses(loaders, fake, state, node, force, why, test):
    status(fake, state, node)
    ret = loaders.states.drbd.promoted(name="r0", force=force, test=test)
    assert ret.result is False and why in ret.comment and ret.changes == {}
    assert fake.calls == [JSON]


def test_promoted_refused_on_84_via_text_fallback(loaders, fake):
    base = D / "live-8.4"
    fake.on(JSON, base / "drbdsetup-status-json__connected-secondary-uptodate__mfsmaster2.txt",
            base / "drbdsetup-status-json__connected-secondary-uptodate__mfsmaster2.stderr.txt", rc=20)
    fake.on("drbdsetup status --verbose --statistics",
            base / "drbdsetup-status-vs__connected-secondary-uptodate__mfsmaster2.txt")
    ret = loaders.states.drbd.promoted(name="r0")
    assert ret.result is False and "peer peer is Primary" in ret.comment
    assert fake.calls == [JSON, "drbdsetup status --verbose --statistics"]


def test_promoted_force_for_initial_sync(loaders, fake):
    moves(fake, "connected-secondary-inconsistent", "drbdadm primary --force r0", "syncsource-primary")
    ret = loaders.states.drbd.promoted(name="r0", force=True)
    assert ret.result is True and "(forced)" in ret.comment and fake.state == "drbdadm primary --force r0"


def test_promoted_force_is_not_used_when_not_needed(loaders, fake):
    # failover: the peer is gone but this disk is UpToDate, so a plain promotion is safe and enough
    status(fake, "peer-lost-connecting-secondary", "mfsmaster1")
    fake.on("drbdadm primary r0")
    ret = loaders.states.drbd.promoted(name="r0", force=True)
    assert ret.result is True and fake.calls[-1] == "drbdadm primary r0"


def test_demoted(loaders, fake):
    moves(fake, "connected-primary-uptodate", "drbdadm secondary r0", "connected-secondary-secondary-uptodate")
    assert loaders.states.drbd.demoted(name="r0", test=True).result is None
    ret = loaders.states.drbd.demoted(name="r0")
    assert ret.result is True and ret.changes == {"role": {"old": "Primary", "new": "Secondary"}}
    ret = loaders.states.drbd.demoted(name="r0")
    assert ret.result is True and ret.changes == {}


def test_demoted_down_resource(loaders, fake):
    status(fake, "unconfigured", "mfsmaster1")
    ret = loaders.states.drbd.demoted(name="r0")
    assert ret.result is True and "down" in ret.comment


def test_synced(loaders, fake):
    status(fake, "syncsource-primary", "mfsmaster1", when="default", next_state="done")
    status(fake, "connected-primary-uptodate", "mfsmaster1", when="done")
    ret = loaders.states.drbd.synced(name="r0", timeout=30, test=True)
    assert ret.result is None and "19.53% done" in ret.comment and fake.state == "done"
    fake.on(JSON, D / "live-9/drbdsetup-status-json__syncsource-primary__mfsmaster1.txt", state="done",
            next_state="done2")
    status(fake, "connected-primary-uptodate", "mfsmaster1", when="done2")
    ret = loaders.states.drbd.synced(name="r0", timeout=30)
    assert ret.result is True and "synced (was" in ret.comment and ret.changes == {}
    assert loaders.states.drbd.synced(name="r0", timeout=30).comment == "r0 is in sync"


def test_synced_times_out(loaders, fake):
    status(fake, "peer-lost-connecting-secondary", "mfsmaster1")
    ret = loaders.states.drbd.synced(name="r0", timeout=1)
    assert ret.result is False and "not synced after 1s" in ret.comment and "Connecting" in ret.comment


def test_initial_sync_source_waits_for_the_peer_then_forces_a_fresh_pair(loaders, fake):
    status(fake, "connecting-inconsistent-secondary", "mfsmaster1", when="default", next_state="connected")
    status(fake, "connected-secondary-inconsistent", "mfsmaster1", when="connected")
    fake.on("drbdadm primary --force r0", state="connected", next_state="sync")
    status(fake, "syncsource-primary", "mfsmaster1", when="sync")
    ret = loaders.states.drbd.initial_sync_source(name="r0", timeout=10)
    assert ret.result is True and "(forced)" in ret.comment and fake.state == "sync"
    assert fake.calls.count("drbdadm primary --force r0") == 1


def test_initial_sync_source_never_forces_a_pair_with_data(loaders, fake):
    status(fake, "connected-secondary-secondary-uptodate", "mfsmaster1")
    ret = loaders.states.drbd.initial_sync_source(name="r0", timeout=10)
    assert ret.result is True and ret.changes == {} and "holds data" in ret.comment
    assert not any("primary" in c for c in fake.calls)


def test_initial_sync_source_gives_up_without_the_peer(loaders, fake):
    status(fake, "connecting-inconsistent-secondary", "mfsmaster1")
    ret = loaders.states.drbd.initial_sync_source(name="r0", timeout=2)
    assert ret.result is False and "peer not connected after 2s (Connecting)" in ret.comment
    assert not any("primary" in c for c in fake.calls)
