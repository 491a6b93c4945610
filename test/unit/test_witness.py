"""The witness rule's two shell scripts, run for real with a stand-in `ping` and `logger` on PATH: mfsha-witness
(rendered from its template) and DRBD's fence-peer handler, fed captured /proc/drbd outputs."""
import stat
import subprocess

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
    return d


def witness(tmp_path, ping_nodes):
    text = jinja2.Template((FILES / "mfsha-witness.jinja").read_text()).render(
        mfsha={"cluster": "lab", "heartbeat": {"ping_nodes": ping_nodes}})
    return executable(tmp_path / "mfsha-witness", text)


def run(cmd, bindir, answers="", **env):
    return subprocess.run([str(cmd)], capture_output=True, text=True, timeout=20,
                          env={"PATH": f"{bindir}:/usr/bin:/bin", "ANSWERS": answers,
                               "LOG": str(bindir.parent / "log"), **env})


@pytest.mark.parametrize("nodes,answers,rc,out", [
    ([], "", 0, "no ping nodes configured"),
    (["10.0.0.1", "10.0.0.2", "10.0.0.3"], "10.0.0.3", 0, "ping node 10.0.0.3 answers"),
    (["10.0.0.1", "10.0.0.2"], "", 1, "no ping node answers (10.0.0.1 10.0.0.2)"),
])
def test_witness_rule(tmp_path, bindir, nodes, answers, rc, out):
    p = run(witness(tmp_path, nodes), bindir, answers)
    assert (p.returncode, p.stdout.strip()) == (rc, out), p.stderr


def fence_peer(tmp_path, helper, proc):
    """The handler with its two fixed paths pointed at a test witness and a captured /proc/drbd."""
    text = (FILES / "mfsha-fence-peer.sh").read_text()
    assert text.count("/usr/local/sbin/mfsha-witness") == 2 and text.count("/proc/drbd") == 1
    text = text.replace("/usr/local/sbin/mfsha-witness", str(helper)).replace("/proc/drbd", str(PROC / proc))
    return executable(tmp_path / "mfsha-fence-peer", text)


SECONDARY = "proc-drbd__peer-lost-wfconnection-secondary__mfsmaster1.txt"
PRIMARY = "proc-drbd__standalone-disconnected-primary__mfsmaster2.txt"


@pytest.mark.parametrize("answers,proc,rc,logged", [
    ("10.0.0.1", SECONDARY, 5, "r0: peer 10.0.0.12 unreachable and ping node 10.0.0.1 answers: the peer is taken as dead"),
    ("", SECONDARY, 6, "r0: refusing to promote: peer 10.0.0.12 unreachable and no ping node answers (10.0.0.1)"),
    ("", PRIMARY, 5, "r0: this Primary lost its peer and no ping node answers (10.0.0.1): it may be the isolated node"),
])
def test_fence_peer_exit_codes(tmp_path, bindir, answers, proc, rc, logged):
    """5: DRBD takes the peer as dead; 6: DRBD outdates this disk and refuses the promotion."""
    handler = fence_peer(tmp_path, witness(tmp_path, ["10.0.0.1"]), proc)
    p = run(handler, bindir, answers, DRBD_RESOURCE="r0", DRBD_MINOR="0", DRBD_PEER_ADDRESS="10.0.0.12")
    assert p.returncode == rc, p
    assert (tmp_path / "log").read_text() == f"-t mfsha-fence-peer {logged}\n"


def test_fence_peer_refuses_without_its_witness(tmp_path, bindir):
    handler = fence_peer(tmp_path, tmp_path / "missing", SECONDARY)
    p = run(handler, bindir, DRBD_RESOURCE="r0", DRBD_MINOR="0", DRBD_PEER_ADDRESS="10.0.0.12")
    assert p.returncode == 6, p
    assert "mfsha-witness is not installed" in (tmp_path / "log").read_text()
