"""_states/mfsmaster.py through real Salt loaders (salt-factories Loaders, proxied by state.single), with
`mfsmaster`/`mfscli` on PATH replaying real captured outputs and real sockets standing in for the client
port; the `lab` test drives a real private mfsmaster with no fakes at all."""

import json
import shutil
from pathlib import Path

import pytest

from unit_support import FakeCommands, HungMaster
from test_mfs_parse import Server
from test_mfsmaster_module import ME, MFS, fixture


class Node:
    def __init__(self, tmp_path, monkeypatch, state, data="data-kill9", server=None):
        self.server = Server(server) if server else None
        port = self.server.port if server else 1  # nothing listens on port 1
        self.data = tmp_path / "data"
        shutil.copytree(MFS / data, self.data)
        self.cfg = str(tmp_path / "mfsmaster.cfg")
        Path(self.cfg).write_text(f"WORKING_USER = {ME}\nDATA_PATH = {self.data}\n"
                                  f"MATOCL_LISTEN_HOST = 127.0.0.1\nMATOCL_LISTEN_PORT = {port}\n")
        self.fake = FakeCommands(tmp_path, state=state)
        self.fake.install(["mfsmaster", "mfscli"], monkeypatch)
        self.on(["test"], "mfsmaster-test__running", state="up")
        self.on(["test"], "mfsmaster-test__stopped", state="down")

    def on(self, args, captured, state="*", next_state=None):
        out, err, rc = fixture(captured)
        argv = ["mfsmaster", "-a", "-c", self.cfg] + args[1:] if args[0] == "-a" else ["mfsmaster", "-c", self.cfg] + args
        self.fake.on(" ".join(argv), stdout=out, stderr=err, rc=rc, state=state, next_state=next_state)

    def verbs(self):
        """The mfsmaster actions run so far (test/start/stop/kill)."""
        return [c.split()[-1] for c in self.fake.calls]

    def close(self):
        if self.server:
            self.server.close()


@pytest.fixture
def node(tmp_path, monkeypatch):
    made = []

    def make(state, **kwargs):
        made.append(Node(tmp_path / str(len(made)), monkeypatch, state, **kwargs))
        return made[-1]
    yield make
    for n in made:
        n.close()


@pytest.fixture
def states(mfs_loaders):
    return mfs_loaders.states.mfsmaster


# ---- running ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("test", [True, False])
def test_running_when_healthy_changes_nothing(states, node, test):
    n = node("up", server="answer")
    ret = states.running(name=n.cfg, test=test)
    assert ret.result is True and ret.changes == {}
    assert ret.comment.startswith("mfsmaster is running: mfsmaster 3.0.117 serving on 127.0.0.1:")
    assert "start" not in n.verbs()


def test_running_test_mode_is_honest(states, node):
    n = node("down", server="answer")
    n.on(["-a", "start"], "mfsmaster-start-a__after-kill9", next_state="up")
    ret = states.running(name=n.cfg, test=True)
    assert ret.result is None
    assert ret.comment == "mfsmaster would be started (mfsmaster -a, metadata version 1417 on disk)"
    assert ret.changes == {"mfsmaster": {"old": "stopped", "new": "running"}}
    assert n.verbs() == ["test"]


def test_running_starts_then_is_idempotent(states, node):
    n = node("down", server="answer")
    n.on(["-a", "start"], "mfsmaster-start-a__after-kill9", next_state="up")
    ret = states.running(name=n.cfg)
    assert ret.result is True, ret.comment
    assert ret.changes["mfsmaster"] == {"old": "stopped", "new": "running"}
    assert ret.changes["pid"] == int(fixture("mfsmaster-test__running")[1].read_text().split(":")[1])
    assert ret.comment.startswith("mfsmaster started: mfsmaster 3.0.117 serving")
    again = states.running(name=n.cfg)
    assert again.result is True and again.changes == {}
    assert n.verbs().count("start") == 1
    assert f"mfsmaster -a -c {n.cfg} start" in n.fake.calls


@pytest.mark.parametrize("test", [True, False])
def test_running_refuses_a_changelog_hole(states, node, test):
    n = node("down", data="data-hole")
    ret = states.running(name=n.cfg, test=test)
    assert ret.result is False and ret.changes == {}
    assert "cannot start from" in ret.comment and "changelog hole: changes 1266..1275 missing" in ret.comment
    assert "start" not in n.verbs()


def test_running_start_failure_comment_has_stderr(states, node):
    n = node("down")
    n.on(["-a", "start"], "mfsmaster-start-a__already-running")
    ret = states.running(name=n.cfg)
    assert ret.result is False
    assert "lockfile is already locked by another process" in ret.comment


def test_running_but_hung_is_reported_not_touched(states, node):
    n = node("up", server="hang")
    ret = states.running(name=n.cfg, probe_timeout=0.3)
    assert ret.result is False and ret.changes == {}
    assert ret.comment.startswith("mfsmaster is running but unhealthy: answer: no answer within 0.30 s")
    assert set(n.verbs()) == {"test"}


# ---- dead ------------------------------------------------------------------------------------------------

def test_dead(states, node):
    n = node("up")
    n.on(["stop"], "mfsmaster-stop__running", state="up", next_state="down")
    ret = states.dead(name=n.cfg, test=True)
    assert ret.result is None and ret.changes == {"mfsmaster": {"old": "running", "new": "stopped"}}
    assert "stop" not in n.verbs()
    ret = states.dead(name=n.cfg)
    assert ret.result is True and ret.comment == "mfsmaster stopped"
    assert ret.changes == {"mfsmaster": {"old": "running", "new": "stopped"}}
    again = states.dead(name=n.cfg)
    assert again.result is True and again.changes == {} and again.comment == "mfsmaster is already stopped"
    assert n.verbs().count("stop") == 1


def test_dead_kills_a_hung_master(states, node):
    n = node("hung")
    n.on(["stop"], "mfsmaster-stop__sigstopped", state="hung")
    hung = HungMaster(n.data, n.fake, f"mfsmaster -c {n.cfg} test")
    try:
        ret = states.dead(name=n.cfg, timeout=1, kill=True)
        assert ret.result is True and ret.comment == "mfsmaster stopped with SIGKILL", ret
        assert ret.changes == {"mfsmaster": {"old": "running", "new": "killed"}}
        assert [p.wait(timeout=5) for p in hung.procs] == [-9, -9]
    finally:
        hung.close()


def test_missing_config_fails_clearly(states, node):
    n = node("down")
    n.on(["test"], "mfsmaster-test__no-cfg", state="down")
    ret = states.dead(name=n.cfg)
    assert ret.result is False and "main config file" in ret.comment


# ---- lab: real daemon ------------------------------------------------------------------------------------

@pytest.mark.lab
def test_real_running_and_dead(mfs_lab):
    st, mod, cfg = mfs_lab.loaders.states.mfsmaster, mfs_lab.loaders.modules.mfsmaster, mfs_lab.cfg
    ret = st.running(name=cfg, test=True)
    assert ret.result is None and not mod.running(cfg)
    ret = st.running(name=cfg)
    mfs_lab.pids.append(ret.changes.get("pid"))
    assert ret.result is True and ret.changes["mfsmaster"]["new"] == "running", ret.comment
    assert st.running(name=cfg).changes == {}
    assert st.dead(name=cfg, test=True).result is None and mod.running(cfg)
    ret = st.dead(name=cfg)
    assert ret.result is True and ret.changes["mfsmaster"]["new"] == "stopped" and not mod.running(cfg)
    assert st.dead(name=cfg).changes == {}
    assert json.dumps(mod.data_path_ok(cfg)["problems"]) == "[]"
