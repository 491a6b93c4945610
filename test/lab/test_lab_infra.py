"""The lab's own machinery, without Salt or the formula (~10 s): hosts are isolated from the machine and from each
other, a crash kills every process of a host, a restart is a clean boot, and teardown leaves nothing behind."""
import os
import subprocess

import pytest

from mfshalab.hosts import wait_for
from mfshalab.lab import HOSTS, Lab

pytestmark = pytest.mark.lab


@pytest.fixture
def bare_lab():
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    lab = Lab(os.environ.get("MFSHA_TEST_LAB", "mfstest") + "-infra", subnet="10.98.0")  # beside a session lab
    if lab.state.get("created"):
        lab.down()
    try:
        lab.create()
        yield lab
    finally:
        lab.down()


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def machine(cmd):
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def test_hosts_are_isolated(bare_lab):
    a, b = bare_lab.host("mfs-a"), bare_lab.host("mfs-b")
    assert a.run("hostname").stdout.strip() == "mfs-a"
    # private /etc: a write inside one host reaches neither the machine nor the other host
    a.run("echo lab > /etc/ha.d/ha.cf.labtest && mkdir -p /var/lib/mfs/labtest")
    assert not os.path.exists("/etc/ha.d/ha.cf.labtest") and not os.path.exists("/var/lib/mfs/labtest")
    assert b.run("ls /etc/ha.d/ha.cf.labtest", check=False).returncode != 0
    # the host's syslog (its own /dev/log) lands in its private /var/log
    a.run(["logger", "-t", "labtest", "hello from a"])
    wait_for("syslog line", lambda: "labtest: hello from a" in a.run("cat /var/log/syslog").stdout, 5)
    assert not os.path.exists("/dev/log") or "hello from a" not in open("/var/log/syslog", errors="replace").read()
    # the packaged files stay visible (shellfuncs, resource.d) and /run is private
    assert a.run("test -f /etc/ha.d/shellfuncs && test -x /etc/ha.d/resource.d/IPaddr2").returncode == 0
    assert "ps" in a.run("ps -e -o comm").stdout and len(a.run("ps -e -o pid=").stdout.split()) < 10
    # hosts talk over the bridge, by name
    assert b.run(["ping", "-c1", "-W2", "mfs-a"], check=False).returncode == 0


def test_crash_kills_every_process_and_restart_is_a_clean_boot(bare_lab):
    a, b = bare_lab.host("mfs-a"), bare_lab.host("mfs-b")
    a.spawn(["sleep", "1000"], os.path.join(a.dir, "sleep.log"))
    a.run(f"ip addr add {bare_lab.vip}/24 dev eth0")
    pids = a.pids()
    assert len(pids) >= 2
    bare_lab.crash("mfs-a")
    assert not [p for p in pids if alive(p)]
    assert b.run(["ping", "-c1", "-W1", "mfs-a"], check=False).returncode != 0
    bare_lab.restart("mfs-a", services=False)
    assert a.alive() and a.pids() != pids
    assert f"{bare_lab.vip}/" not in a.run("ip -o addr show dev eth0").stdout, "VIP survived a reboot"
    assert a.run("cat /etc/ha.d/ha.cf.labtest 2>/dev/null || true").stdout == ""
    # b's ARP entry for a failed while the cable was out: allow a few seconds to re-resolve
    wait_for("mfs-a reachable again", lambda: b.run(["ping", "-c1", "-W1", "mfs-a"], check=False).returncode == 0,
             15, interval=0.5)


def test_down_leaves_nothing(bare_lab):
    state = dict(bare_lab.state)
    pids = [p for n in HOSTS for p in bare_lab.host(n).pids()]
    bare_lab.down()
    netns = machine(["ip", "netns", "list"])
    assert not any(ns in netns for ns in [h["netns"] for h in state["hosts"].values()] + [state["bridge_ns"]])
    assert state["loop"]["image"] not in machine(["losetup", "-a"])
    assert not [p for p in pids if alive(p)]
