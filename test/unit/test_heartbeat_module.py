"""_modules/heartbeat.py: heartbeat's moves of the resource group (takeover, rejoin), with cl_status, hb_takeover,
the init script and `ip -o addr` answered by captured outputs (FakeCommands)."""
import pytest

from salt.exceptions import CommandExecutionError

from unit_support import FakeCommands, load_salt_module


# ---- takeover: nobody holds the group (captured `ip -o addr` of a lab node without / with the VIP) ----------------

IP_IDLE = "2: eth0    inet 10.99.0.12/24 scope global eth0\\       valid_lft forever preferred_lft forever"
IP_HELD = IP_IDLE + "\n2: eth0    inet 10.99.0.10/24 scope global secondary eth0\\       valid_lft forever preferred_lft forever"


@pytest.fixture
def node(tmp_path):
    fake = FakeCommands(tmp_path, state="idle")
    fake.on("cl_status rscstatus", stdout="none\n")
    fake.on("ip -o addr show dev eth0", stdout=IP_IDLE, state="idle")
    fake.on("ip -o addr show dev eth0", stdout=IP_HELD, state="held")
    mfsha = load_salt_module("_modules/mfsha.py", salt={"cmd.run_all": fake.run_all})
    mod = load_salt_module("_modules/heartbeat.py", salt={"cmd.run_all": fake.run_all, "mfsha.has_address":
                                                          mfsha.has_address, "mfsha.is_mounted": mfsha.is_mounted})
    mod._node = lambda: {"vip": "10.99.0.10", "interface": "eth0", "mountpoint": str(tmp_path / "not-mounted"),
                         "peer": "mfs-a"}
    return mod, fake


@pytest.mark.parametrize("peer, cmd, how", [
    ("active", "hb_takeover all", "hb_takeover all"),
    ("dead", "service heartbeat restart", "heartbeat restart (peer dead)"),
])
def test_takeover_through_heartbeat(node, peer, cmd, how):
    mod, fake = node
    fake.on("cl_status nodestatus mfs-a", stdout=peer + "\n")
    fake.on(cmd, next_state="held")
    res = mod.takeover(timeout=10)
    assert res["how"] == how and res["held_s"] < 10
    assert fake.calls.count(cmd) == 1
    assert mod.takeover(timeout=10)["how"] == "none: this node holds the resources"  # idempotent
    assert fake.calls.count(cmd) == 1


def test_takeover_failure_carries_stderr_and_a_held_back_request_is_asked_again(node):
    mod, fake = node
    fake.on("cl_status nodestatus mfs-a", stdout="active\n")
    fake.on("hb_takeover all", rc=1, stderr="hb_takeover: cannot talk to heartbeat\n")
    with pytest.raises(CommandExecutionError, match="hb_takeover all failed with exit code 1: hb_takeover: cannot talk"):
        mod.takeover(timeout=5)
    fake.on("hb_takeover all", rc=0)  # accepted, but heartbeat ignores it (its own standby is pending)
    with pytest.raises(CommandExecutionError, match="does not hold the resources after 11 s"):
        mod.takeover(timeout=11)
    assert fake.calls.count("hb_takeover all") == 1 + 2  # asked again after 10 s


def test_takeover_needs_heartbeat(node):
    mod, fake = node
    fake.on("cl_status rscstatus", rc=1, stderr="Heartbeat is stopped on this machine.\n")
    with pytest.raises(CommandExecutionError, match="heartbeat is not running here"):
        mod.takeover()


# ---- rejoin: heartbeat started again on a standby that lost it ----------------------------------------------------

def test_rejoin_starts_heartbeat_and_waits_for_the_peer(node):
    mod, fake = node
    fake.on("cl_status rscstatus", rc=1, stderr="Heartbeat is stopped on this machine.\n", state="idle")
    fake.on("heartbeat -s", rc=3, stdout="heartbeat is stopped. No process\n")
    fake.on("service heartbeat start", next_state="started")
    fake.on("cl_status nodestatus mfs-a", stdout="dead\n", state="started", next_state="joined")
    fake.on("cl_status nodestatus mfs-a", stdout="active\n", state="joined")
    fake.on("ip -o addr show dev eth0", stdout=IP_IDLE, state="started")
    fake.on("ip -o addr show dev eth0", stdout=IP_IDLE, state="joined")
    res = mod.rejoin(timeout=10)
    assert res["started"] and res["how"] == "service heartbeat start" and res["joined_s"] < 10
    assert fake.calls.count("service heartbeat start") == 1
    assert mod.rejoin(timeout=10)["how"] == "none: heartbeat runs"  # idempotent
    assert fake.calls.count("service heartbeat start") == 1


def test_rejoin_waits_for_a_heartbeat_still_shutting_down(node):
    mod, fake = node
    stopping = "heartbeat OK [pid 6119 et al] is running on mfs-b [mfs-b]..."
    for state in ("idle", "gone"):
        fake.on("cl_status rscstatus", rc=1, stderr="Heartbeat is stopped on this machine.\n", state=state)
    fake.on("heartbeat -s", stdout=stopping + "\n", state="idle")
    assert mod.rejoin(timeout=1) == {"started": False, "why": f"heartbeat is still shutting down after 1 s: {stopping}"}
    assert "service heartbeat start" not in fake.calls
    fake.on("heartbeat -s", stdout=stopping + "\n", state="idle", next_state="gone")  # then its emergency exit
    fake.on("heartbeat -s", rc=3, stdout="heartbeat is stopped. No process\n", state="gone")
    fake.on("service heartbeat start", state="gone", next_state="joined")
    fake.on("cl_status nodestatus mfs-a", stdout="active\n", state="joined")
    fake.on("ip -o addr show dev eth0", stdout=IP_IDLE, state="gone")
    res = mod.rejoin(timeout=10)
    assert res["started"] and res["how"] == "service heartbeat start"
    assert fake.calls.count("service heartbeat start") == 1


def test_rejoin_failure_carries_stderr_and_a_holder_is_refused(node):
    mod, fake = node
    fake.on("cl_status rscstatus", rc=1, stderr="Heartbeat is stopped on this machine.\n")
    fake.on("heartbeat -s", rc=3, stdout="heartbeat is stopped. No process\n")
    fake.on("service heartbeat start", rc=1, stderr="Heartbeat failure [rc=6]. Failed.\n")
    with pytest.raises(CommandExecutionError, match="service heartbeat start failed with exit code 1: Heartbeat failure"):
        mod.rejoin()
    fake.set_state("held")
    with pytest.raises(CommandExecutionError, match="holds the VIP or the storage"):
        mod.rejoin()
    assert fake.calls.count("service heartbeat start") == 1
