"""Forged events (issue 21, "How it is proven"): from the client minion, the reactor injection and forged
`salt/beacon/<master>/mfsha/*/down` events with hostile id, since, last_version, tag and payload sizes. No file
appears on any host, no action is taken on a healthy cluster, and each loop run says healthy or ignored; a forged
last_version does not keep a recoverable master down. Runs through faultlib.run_fault (the `forged_event` row of
faults/report.json), which also samples for two masters and checks every byte written before and after."""
import pytest

import faults_forged  # noqa: F401  (registers forged_event)
from faultlib import loop_history, run_fault
from test_faults import check

pytestmark = pytest.mark.lab


def test_forged_events_run_nothing_and_move_nothing(loop):
    before = len(loop_history(loop))
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
    assert [h["action"] for h in loop_history(loop)[before:]] == ["restart"], loop_history(loop)[before:]
