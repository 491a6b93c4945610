"""Real salt-master and salt-minions for the lab: configs under the run dir, one process each inside its host.

The master serves the repo root as file_roots (salt://mfsha, salt://_modules, ...) and the generated lab pillar.
Minions use Debian's init scripts for services: Salt picks systemd on this machine otherwise (see report).
"""
import json
import os
import signal

import yaml

from mfshalab.formula import REPO, VENV_BIN
from mfshalab.hosts import LabError, wait_for

# .venv is a symlink into /var/cache: never walk it; .git, the tests and this lab are not formula files
FILE_IGNORE = [r"^\.git/", r"^\.venv", r"^test/", r"^mfshalab/", r"__pycache__"]


def master_config(rundir, master_id):
    d = os.path.join(rundir, "salt")
    return {
        "id": master_id,
        "user": "root",
        "interface": "0.0.0.0",
        "root_dir": d,
        "pki_dir": f"{d}/pki",
        "cachedir": f"{d}/cache",
        "sock_dir": f"{d}/sock",
        "pidfile": f"{d}/master.pid",
        "log_file": f"{d}/master.log",
        "log_level_logfile": "info",
        "auto_accept": True,
        "worker_threads": 3,
        "file_roots": {"base": [REPO]},
        "fileserver_followsymlinks": False,
        "file_ignore_regex": FILE_IGNORE,
        "pillar_roots": {"base": [os.path.join(rundir, "pillar")]},
        # other tests (failover loop) add reactor config here and restart the master
        "default_include": "master.d/*.conf",
    }


def minion_config(rundir, minion_id, master_addr):
    d = os.path.join(rundir, minion_id, "salt")
    return {
        "id": minion_id,
        "master": master_addr,
        "user": "root",
        "root_dir": d,
        "pki_dir": f"{d}/pki",
        "cachedir": f"{d}/cache",
        "sock_dir": f"{d}/sock",
        "pidfile": f"{d}/minion.pid",
        "log_file": f"{d}/minion.log",
        "log_level_logfile": "info",
        # PID 1 is not systemd, but a stray /usr/bin/systemctl makes systemd_service load in "offline" mode and
        # service.running then does nothing ("Running in OFFLINE mode. Nothing to do"): init.d scripts only.
        "providers": {"service": "debian_service"},
        "disable_modules": ["systemd_service"],
        "acceptance_wait_time": 1,
        "random_reauth_delay": 0,
        "auth_tries": 20,
        "default_include": "minion.d/*.conf",
    }


def write_config(confdir, name, cfg):
    os.makedirs(os.path.join(confdir, name + ".d"), exist_ok=True)
    with open(os.path.join(confdir, name), "w") as f:
        yaml.safe_dump(cfg, f, default_flow_style=False)


class Salt:
    """The lab's Salt: `salt` commands run inside the Salt master host, as an operator would type them."""

    def __init__(self, lab):
        self.lab = lab
        self.confdir = os.path.join(lab.rundir, "salt", "conf")

    def start_master(self):
        host = self.lab.host(self.lab.salt_host)
        write_config(self.confdir, "master", master_config(self.lab.rundir, self.lab.salt_host))
        host.spawn([f"{VENV_BIN}/salt-master", "-c", self.confdir, "-l", "warning"],
                   os.path.join(self.lab.rundir, "salt", "master.out"))

    def start_minion(self, name):
        host = self.lab.host(name)
        confdir = os.path.join(host.dir, "salt", "conf")
        cfg = minion_config(self.lab.rundir, name, self.lab.host(self.lab.salt_host).addr)
        if name == self.lab.salt_host:
            cfg["mfsha_reactor_dir"] = os.path.join(self.confdir, "master.d")
        write_config(confdir, "minion", cfg)
        host.spawn([f"{VENV_BIN}/salt-minion", "-c", confdir, "-l", "warning"],
                   os.path.join(host.dir, "salt", "minion.out"))

    def stop_minion(self, name, timeout=30):
        """SIGTERM the host's salt-minion processes by PID and wait until they are gone."""
        self._stop(self.lab.host(name), "salt-minion", timeout)

    def restart_minion(self, name):
        self.stop_minion(name)
        self.start_minion(name)

    def stop_master(self, timeout=30):
        self._stop(self.lab.host(self.lab.salt_host), "salt-master", timeout)

    def restart_master(self):
        """Restart the salt-master (e.g. after adding master.d/*.conf) and wait for every minion."""
        self.stop_master()
        self.start_master()
        self.wait_minions(self.lab.minions)

    @staticmethod
    def _stop(host, daemon, timeout):
        def pids():
            return [p for p, c in host.processes().items() if f"/{daemon} -c " in c]
        for pid in pids():
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        wait_for(f"{daemon} on {host.name} to stop", lambda: not pids(), timeout)

    def cmd(self, target, fun, *args, timeout=120, tgt_type=None):
        """`salt TARGET FUN ARGS` on the master host; returns {minion: return}. Raises if a minion did not answer."""
        argv = [f"{VENV_BIN}/salt", "-c", self.confdir, "--out=json", "--static", "-t", str(timeout)]
        if tgt_type:
            argv.append({"list": "-L", "compound": "-C", "pcre": "-E"}[tgt_type])
        argv += [target, fun, *args]
        p = self.lab.host(self.lab.salt_host).run(argv, timeout=timeout + 30, check=False)
        try:
            ret = json.loads(p.stdout) if p.stdout.strip() else {}
        except json.JSONDecodeError as e:
            raise LabError(f"salt {target} {fun}: exit {p.returncode}, unparsable output: {p.stdout[-2000:]}"
                           f"{p.stderr[-2000:]}") from e
        if not ret and p.returncode:
            raise LabError(f"salt {target} {fun}: exit {p.returncode}: {p.stderr.strip()[-2000:]}")
        return ret

    def run_cmd(self, *args, timeout=120):
        """`salt-run ARGS` on the master host; returns CompletedProcess."""
        return self.lab.host(self.lab.salt_host).run(
            [f"{VENV_BIN}/salt-run", "-c", self.confdir, *args], timeout=timeout, check=False)

    def wait_minions(self, minions, timeout=90):
        """Wait until every minion answers test.ping through the master."""
        def all_up():
            try:
                ret = self.cmd(",".join(minions), "test.ping", timeout=5, tgt_type="list")
            except LabError:
                return False
            return all(ret.get(m) is True for m in minions)
        wait_for("minions " + ",".join(minions), all_up, timeout, interval=1)

    def apply(self, target="mfs*", sls="mfsha", timeout=300, tgt_type=None):
        """`salt TARGET state.apply SLS`: returns {minion: {"changes": n, "failed": [ids], "result": raw}}."""
        ret = self.cmd(target, "state.apply", sls, timeout=timeout, tgt_type=tgt_type)
        return {m: summarize(r) for m, r in ret.items()}


def summarize(ret):
    """Count changed and failed states of one minion's state.apply return (a list means a render error)."""
    if not isinstance(ret, dict):
        return {"changes": 0, "failed": [f"render error: {ret}"], "result": ret}
    failed = [k for k, v in ret.items() if not v.get("result")]
    changes = sum(1 for v in ret.values() if v.get("changes"))
    return {"changes": changes, "failed": failed, "result": ret}
