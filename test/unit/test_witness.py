"""The witness rule's shell scripts, run for real with stand-ins for `ping`, `arping`, `logger` and `sleep` on PATH:
mfsha-witness (rendered from its template), DRBD's fence-peer handler fed captured /proc/drbd outputs, and the
holder's mfsha-selffence."""
import stat
import subprocess
import time

import jinja2
import pytest

from unit_support import FIXTURES, REPO

FILES = REPO / "mfsha" / "files"
PROC = FIXTURES / "drbd" / "live-8.4"


def executable(path, text):
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def bindir(tmp_path):
    """PATH with a `ping` that answers for the addresses in $ANSWERS (others time out after 1 s, as -W 1 does)
    and a `logger` that appends to $LOG."""
    d = tmp_path / "bin"
    d.mkdir()
    executable(d / "ping", '#!/bin/sh\nfor a; do :; done\ncase " $ANSWERS " in *" $a "*) exit 0;; esac\n'
                           'sleep 1; exit 1\n')
    executable(d / "logger", '#!/bin/sh\necho "$*" >> "$LOG"\n')
    executable(d / "sleep", '#!/bin/sh\nexec /bin/sleep 0.01\n')  # mfsha-selffence's rounds, fast
    return d


MFSHA = {"cluster": "lab", "heartbeat": {"deadtime": 3}, "nodes": [{"address": "10.0.0.11"}, {"address": "10.0.0.12"}],
         "vip": {"address": "10.0.0.10", "interface": "eth0"}, "os": {"ha_dir": "/etc/ha.d"}}


def render(tmp_path, name, ping_nodes):
    mfsha = dict(MFSHA, heartbeat=dict(MFSHA["heartbeat"], ping_nodes=ping_nodes))
    text = jinja2.Template((FILES / f"{name}.jinja").read_text()).render(mfsha=mfsha)
    return executable(tmp_path / name, text)


def witness(tmp_path, ping_nodes):
    return render(tmp_path, "mfsha-witness", ping_nodes)


def run(cmd, bindir, answers="", args=(), **env):
    return subprocess.run([str(cmd), *args], capture_output=True, text=True, timeout=20,
                          env={"PATH": f"{bindir}:/usr/bin:/bin", "ANSWERS": answers,
                               "LOG": str(bindir.parent / "log"), **env})


@pytest.mark.parametrize("nodes,answers,args,rc,out", [
    ([], "", (), 0, "no ping nodes configured"),
    ([], "", ("10.0.0.12",), 0, "no ping nodes configured"),
    (["10.0.0.1", "10.0.0.2", "10.0.0.3"], "10.0.0.3", (), 0, "10.0.0.3 answers"),
    (["10.0.0.1", "10.0.0.2"], "", (), 1, "no ping node answers (10.0.0.1 10.0.0.2)"),
    (["10.0.0.1"], "10.0.0.12", ("10.0.0.12",), 0, "10.0.0.12 answers"),
    (["10.0.0.1"], "", ("10.0.0.12",), 1, "no ping node answers (10.0.0.1; nor 10.0.0.12)"),
])
def test_witness_rule(tmp_path, bindir, nodes, answers, args, rc, out):
    """Exit 0 when anything answers (or no ping node is set: the classic rule), 1 when nothing does."""
    p = run(witness(tmp_path, nodes), bindir, answers, args)
    assert (p.returncode, p.stdout.strip()) == (rc, out), p.stderr


def fence_peer(tmp_path, helper, proc, mounts=""):
    """The handler with its fixed paths pointed at a test witness, a captured /proc/drbd and a /proc/mounts."""
    text = (FILES / "mfsha-fence-peer.sh").read_text()
    assert text.count("/usr/local/sbin/mfsha-witness") == 2 and text.count("/proc/drbd") == 1
    assert text.count("/proc/mounts") == 1
    (tmp_path / "mounts").write_text(mounts)
    text = (text.replace("/usr/local/sbin/mfsha-witness", str(helper)).replace("/proc/drbd", str(PROC / proc))
            .replace("/proc/mounts", str(tmp_path / "mounts")))
    return executable(tmp_path / "mfsha-fence-peer", text)


SECONDARY = "proc-drbd__peer-lost-wfconnection-secondary__mfsmaster1.txt"
PRIMARY = "proc-drbd__standalone-disconnected-primary__mfsmaster2.txt"


@pytest.mark.parametrize("answers,proc,rc,logged", [
    ("10.0.0.1", SECONDARY, 5, "r0: peer 10.0.0.12 unreachable and 10.0.0.1 answers: the peer is taken as dead"),
    ("", SECONDARY, 6, "r0: refusing to promote: peer 10.0.0.12 unreachable and no ping node answers (10.0.0.1)"),
    ("", PRIMARY, 5, "r0: this Primary lost its peer and no ping node answers (10.0.0.1): it may be the isolated node"),
])
def test_fence_peer_exit_codes(tmp_path, bindir, answers, proc, rc, logged):
    """5: DRBD takes the peer as dead; 6: DRBD outdates this disk and refuses the promotion."""
    handler = fence_peer(tmp_path, witness(tmp_path, ["10.0.0.1"]), proc)
    p = run(handler, bindir, answers, DRBD_RESOURCE="r0", DRBD_MINOR="0", DRBD_PEER_ADDRESS="10.0.0.12")
    assert p.returncode == rc, p
    assert (tmp_path / "log").read_text() == f"-t mfsha-fence-peer {logged}\n"


DRBD9 = "../live-9/proc-drbd__connected-primary-uptodate__mfsmaster1.txt"  # version lines only, no roles
MOUNTED = "/dev/drbd0 /mfsconf ext4 rw,relatime 0 0\n"


@pytest.mark.parametrize("env,mounts,rc", [
    ({"DRBD_MINOR": "0"}, MOUNTED, 5),
    ({}, MOUNTED, 5),  # DRBD 9 may run the connection's handler without a minor
    ({"DRBD_MINOR": "0"}, "/dev/drbd1 /other ext4 rw 0 0\n", 6),
    ({}, "", 6),
])
def test_fence_peer_drbd9_role_from_the_mount(tmp_path, bindir, env, mounts, rc):
    """DRBD 9's /proc/drbd names no role: the node with the device mounted is the Primary; others refuse."""
    handler = fence_peer(tmp_path, witness(tmp_path, ["10.0.0.1"]), DRBD9, mounts)
    p = run(handler, bindir, "", DRBD_RESOURCE="r0", DRBD_PEER_ADDRESS="10.0.0.12", **env)
    assert p.returncode == rc, p
    assert ("this Primary lost its peer" if rc == 5 else "refusing to promote") in (tmp_path / "log").read_text()


def test_fence_peer_refuses_without_its_witness(tmp_path, bindir):
    handler = fence_peer(tmp_path, tmp_path / "missing", SECONDARY)
    p = run(handler, bindir, DRBD_RESOURCE="r0", DRBD_MINOR="0", DRBD_PEER_ADDRESS="10.0.0.12")
    assert p.returncode == 6, p
    assert "mfsha-witness is not installed" in (tmp_path / "log").read_text()


def test_selffence_releases_a_cut_off_holder_and_takes_back_after_a_short_cut(tmp_path, bindir):
    """Holding the group, two silent rounds: master killed, group given up through ResourceManager. Network back and
    no one on the VIP (arping -D exit 0) for deadtime + 2 rounds: the group is taken back; never while silent."""
    calls, held, fenced = tmp_path / "calls", tmp_path / "held", tmp_path / "fenced"
    rm = executable(tmp_path / "ResourceManager", f'#!/bin/sh\necho "RM $*" >> {calls}\n')
    agent = executable(tmp_path / "MFSMaster", f'#!/bin/sh\necho "MFSMaster $*" >> {calls}\n')
    executable(bindir / "arping", "#!/bin/sh\nexit 0\n")
    executable(bindir / "ip", "#!/bin/sh\necho '2: eth0    inet 10.0.0.11/24 brd 10.0.0.255 scope global eth0'\n")
    text = render(tmp_path, "mfsha-selffence", ["10.0.0.1"]).read_text()
    text = (text.replace("/usr/local/sbin/mfsha-witness", str(witness(tmp_path, ["10.0.0.1"])))
            .replace("/usr/share/heartbeat/ResourceManager", str(rm)).replace('"$HA_RESOURCEDIR/MFSMaster"', str(agent))
            .replace("/run/mfsha-guard.held", str(held)).replace("/run/mfsha-selffenced", str(fenced)))
    script = executable(tmp_path / "selffence", text)
    answers = tmp_path / "answers"
    executable(bindir / "ping", f'#!/bin/sh\nfor a; do :; done\ngrep -qx "$a" {answers} 2>/dev/null\n')
    answers.write_text("10.0.0.12\n")
    held.touch()
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "LOG": str(tmp_path / "log")}
    proc = subprocess.Popen([str(script)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def wait(what, cond, timeout=15):
        end = time.monotonic() + timeout
        while not cond():
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < end, f"{what}: calls {calls.read_text() if calls.exists() else None}"
            time.sleep(0.05)

    def made():
        return calls.read_text().splitlines() if calls.exists() else []
    try:
        time.sleep(0.5)
        assert made() == [], "acted while the peer answered"
        answers.write_text("")  # cut off: neither the peer nor the ping node
        wait("release", lambda: made() == ["MFSMaster fence", "RM givegroup MFSGuard"] and fenced.exists())
        held.unlink()  # as MFSGuard stop does
        time.sleep(0.5)
        assert made() == ["MFSMaster fence", "RM givegroup MFSGuard"], "took the group back while cut off"
        answers.write_text("10.0.0.1\n")
        wait("take back", lambda: made()[-1:] == ["RM takegroup MFSGuard"])
        assert not fenced.exists()
    finally:
        proc.kill()
        proc.wait(timeout=10)
    log = (tmp_path / "log").read_text()
    assert "cut off: no ping node answers (10.0.0.1; nor 10.0.0.12): killing mfsmaster" in log, log
    assert "network back for 5 s and no one holds 10.0.0.10: taking the group back" in log, log
