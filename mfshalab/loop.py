"""The failover loop on the lab (test_failover_loop.py, the fault catalogue, tools/bench.py and tools/faults.py): put
the mfsha runner and reactor on the lab's Salt master exactly as an operator would, and watch the master's event bus."""
import json
import os
import time

import yaml

from mfshalab.formula import REPO, VENV_BIN
from mfshalab.hosts import LabError, wait_for
from mfshalab.lab import Lab, install_cleanup
from mfshalab.salt import FILE_IGNORE


def install_loop(lab, timeout=120):
    """`salt-run saltutil.sync_all` on the master, mfsha/reactor.sls applied with salt-call --local on the Salt
    master host (its config dir as mfsha_reactor_dir), then a master restart so it reads the reactor config."""
    ret = lab.salt.cmd("mfs*", "saltutil.sync_all", timeout=timeout)
    if set(ret) != set(lab.minions):
        raise LabError(f"saltutil.sync_all answered by {sorted(ret)} only")
    p = lab.salt.run_cmd("saltutil.sync_all", timeout=timeout)
    if p.returncode:
        raise LabError(f"salt-run saltutil.sync_all: exit {p.returncode}: {p.stdout[-1500:]} {p.stderr[-1500:]}")
    calldir = os.path.join(lab.rundir, "salt", "call")
    os.makedirs(calldir, exist_ok=True)
    with open(os.path.join(calldir, "minion"), "w") as f:
        yaml.safe_dump({"id": lab.salt_host, "file_client": "local", "file_roots": {"base": [REPO]},
                        "root_dir": calldir, "cachedir": f"{calldir}/cache", "pki_dir": f"{calldir}/pki",
                        "sock_dir": f"{calldir}/sock", "log_file": f"{calldir}/minion.log",
                        "file_ignore_regex": FILE_IGNORE, "fileserver_followsymlinks": False,
                        "mfsha_reactor_dir": os.path.join(lab.salt.confdir, "master.d")}, f)
    p = lab.host(lab.salt_host).run([f"{VENV_BIN}/salt-call", "--local", "-c", calldir, "--out=json",
                                     "state.apply", "mfsha.reactor"], timeout=timeout, check=False)
    ret = json.loads(p.stdout)["local"] if p.stdout.strip().startswith("{") else None
    if not isinstance(ret, dict) or not all(v["result"] for v in ret.values()):
        raise LabError(f"salt-call state.apply mfsha.reactor: {p.stdout[-2000:]} {p.stderr[-2000:]}")
    lab.salt.restart_master()
    p = lab.salt.run_cmd("mfsha.status", timeout=timeout)
    if p.returncode or "cluster lab" not in p.stdout:
        raise LabError(f"salt-run mfsha.status: exit {p.returncode}: {p.stdout[-1500:]} {p.stderr[-1500:]}")


def loop_lab(reuse, name):
    """For the tools: the running lab REUSE as it is, or a fresh lab NAME (a leftover of that name torn down first,
    this one torn down on SIGTERM/exit by install_cleanup); either way with the failover loop installed."""
    lab = Lab(reuse or name)
    if not reuse:
        install_cleanup(lab)
        if lab.state.get("created"):
            lab.down()
        lab.up()
    install_loop(lab)
    return lab


class Events:
    """`salt-run state.event` on the Salt master host, its lines (`tag<TAB>json`) collected in a file."""

    def __init__(self, lab, name="events"):
        self.lab = lab
        self.path = os.path.join(lab.rundir, "salt", f"{name}-{time.time_ns()}.log")
        self.proc = lab.host(lab.salt_host).spawn(
            ["env", "PYTHONUNBUFFERED=1", f"{VENV_BIN}/salt-run", "-c", lab.salt.confdir, "state.event", "*"],
            self.path)
        # subscribed only once an event sent after the start shows up (seconds on a loaded machine)
        end = time.monotonic() + 60
        while not self.matching("mfsha/watch/ready"):
            if time.monotonic() > end:
                self.close()
                raise LabError(f"salt-run state.event did not see events within 60 s ({self.path})")
            lab.salt.run_cmd("event.send", "mfsha/watch/ready", timeout=30)
            time.sleep(1)

    def all(self):
        out = []
        with open(self.path, errors="replace") as f:
            for line in f:
                tag, _, data = line.rstrip("\n").partition("\t")
                if tag.startswith(("mfsha/", "salt/beacon/")):
                    try:
                        out.append((tag, json.loads(data)))
                    except json.JSONDecodeError:
                        out.append((tag, {"raw": data}))
        return out

    def matching(self, prefix):
        return [(t, d) for t, d in self.all() if t.startswith(prefix)]

    def wait(self, prefix, timeout, count=1):
        """The first COUNT events whose tag starts with PREFIX; raises after TIMEOUT s with what was seen."""
        try:
            return wait_for(f"event {prefix}", lambda: (self.matching(prefix)[:count]
                                                        if len(self.matching(prefix)) >= count else None), timeout, 0.3)
        except LabError as e:
            raise LabError(f"{e}; mfsha events seen: {[t for t, _ in self.all()]}") from None

    def close(self):
        try:
            os.killpg(self.proc.pid, 9)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)
