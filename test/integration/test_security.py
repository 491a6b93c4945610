"""Security on the lab. Forged events (issue 21): from the client minion, the reactor injection and forged
`salt/beacon/<master>/mfsha/*/down` events with hostile id, since, last_version, tag and payload sizes: no file appears
on any host, no action is taken on a healthy cluster, each loop run says healthy or ignored, and a forged
last_version does not keep a recoverable master down (the `forged_event` fault, mfshalab/faults/forged.py).
Links planted on the storage: test_symlinks.py; a rogue metalogger: test_rogue_metalogger.py.

Secrets on the lab (issue 7 "Security"): the pillar's heartbeat authkeys secret (and the DRBD shared secret when
the pillar has one) never shows in `salt ... state.apply` output, also when authkeys is rewritten, nor in any log the
lab writes (Salt master and minions, syslog and heartbeat logs of every host, event logs); authkeys is 0600 root.

Covered elsewhere: pillar values that would inject into a command line or config (test/unit/test_pillar.py),
sha1 never crc and exports defaults (test/render), events forged by non-members (test_failover_loop.py)."""
import os
import time

import pytest

from mfshalab.faults import forged as faults_forged
from mfshalab.faults import loop_history, run_fault
from mfshalab.formula import VENV_BIN
from mfshalab.lab import Lab
from test_faults import check

pytestmark = pytest.mark.lab
AUTHKEYS = "/etc/ha.d/authkeys"


@pytest.fixture
def sec(request):
    """The healed session lab; MFSHA_LAB_REUSE=<name> uses a running lab of that name instead."""
    reuse = os.environ.get("MFSHA_LAB_REUSE")
    lab = Lab(reuse) if reuse else request.getfixturevalue("lab")
    lab.heal()
    return lab


def secrets(lab):
    c = lab.cluster_pillar()
    out = {"heartbeat auth_key": c["heartbeat"]["auth_key"]}
    drbd = (c["storage"].get("drbd") or {}).get("secret")
    if drbd:
        out["drbd secret"] = drbd
    assert all(len(v) >= 12 for v in out.values()), "the lab pillar has no real secret to look for"
    return out


def salt_out(lab, *args):
    """Raw `salt ... --out=json` output (stdout + stderr), as an operator's terminal or CI log would keep it."""
    p = lab.host(lab.salt_host).run([f"{VENV_BIN}/salt", "-c", lab.salt.confdir, "--out=json", "--static",
                                     "-t", "300", *args], timeout=360, check=False)
    return p.stdout + p.stderr


def log_files(lab):
    """Every log the lab writes under its run dir: Salt's *.log/*.out, each host's /var/log (overlay upper dir)."""
    for root, _, files in os.walk(lab.rundir):
        in_var_log = f"{os.sep}ov{os.sep}var{os.sep}log" in root
        for f in files:
            if in_var_log or f.endswith((".log", ".out")):
                yield os.path.join(root, f)


def test_authkeys_is_0600_root_on_both_masters(sec):
    for m in sec.masters:
        out = sec.host(m).run(["stat", "-c", "%a %U %G", AUTHKEYS]).stdout.split()
        assert out == ["600", "root", "root"], f"{m}: {AUTHKEYS} is {out}"


def test_secrets_absent_from_state_output_and_logs(sec):
    lab = sec
    found = secrets(lab)
    master = lab.masters[0]
    # a rewrite of authkeys is where a diff would print the secret: make the file differ first
    lab.host(master).run(f"echo '# tampered' >> {AUTHKEYS}")
    outputs = {"state.apply test=True": salt_out(lab, master, "state.apply", "mfsha", "test=True"),
               "state.apply": salt_out(lab, master, "state.apply", "mfsha"),
               "state.apply all": salt_out(lab, "mfs*", "state.apply", "mfsha")}
    assert "mfsha-heartbeat-authkeys" in outputs["state.apply"], outputs["state.apply"][-2000:]
    assert "# tampered" not in lab.host(master).run(["cat", AUTHKEYS]).stdout, "authkeys was not rewritten"
    leaks = [(what, where) for what, secret in found.items() for where, text in outputs.items() if secret in text]
    checked = 0
    for path in log_files(lab):
        with open(path, errors="replace") as f:
            text = f.read()
        checked += 1
        leaks += [(what, os.path.relpath(path, lab.rundir)) for what, secret in found.items() if secret in text]
    assert checked > 10, f"only {checked} log files under {lab.rundir}"
    assert leaks == [], f"secrets found in: {leaks}"


def test_forged_events_run_nothing_and_move_nothing(loop):
    # by time, not by count: the book keeps the last HISTORY entries only, so a long session's count stops growing
    start = time.time()
    rec = run_fault(loop, "forged_event")
    check(rec)
    obs = rec["observed"]
    assert obs["pwned_hosts"] == [], f"the injection ran: {obs['pwned_hosts']}"
    results = [r["result"] for r in obs["forged"]]
    assert len(results) == len(faults_forged.hostile(rec["node"])), results
    assert set(results) <= {"healthy", "ignored"}, obs["forged"]
    assert results[-1] == "ignored" and "'mfs-client' is not a master node" in obs["forged"][-1]["reason"]
    # the loop acted once in all: the restart after the real kill -9, not kept down by the forged last_version
    assert obs["after_kill9"]["result"] == "restarted", obs["after_kill9"]
    acted = [h for h in loop_history(loop) if h["time"] >= start]
    assert [h["action"] for h in acted] == ["restart"], acted
