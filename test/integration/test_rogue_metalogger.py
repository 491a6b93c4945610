"""A rogue metalogger (issue 21 item 4): the client minion, matched by the metalogger targets, answers
mfsmaster.changelog_since with crafted changelog lines while the loop fills a changelog hole
(mfshalab/faults/rogue.py). The fill must refuse and say which minion, write nothing into DATA_PATH (checksums of
its changelog files before and after), lose no acknowledged byte and never run two masters; the operator recovery
from the real metalogger (mfs-cs1) brings the service back, and the rogue's module and the pillar are restored with
the fault."""
import pytest

from mfshalab.faults import rogue as faults_rogue
from mfshalab.faults import run_fault

pytestmark = pytest.mark.lab


def test_the_fill_refuses_a_rogue_metaloggers_lines(loop):
    rec = run_fault(loop, "rogue_metalogger")
    print({k: v for k, v in rec.items()})
    seen = rec["observed"]
    assert seen["outcome"] == "mfsha/failover/failed", seen
    reason = seen["reason"]
    assert "the metalogger fill is refused" in reason and "not moved" in reason, reason
    assert f"{faults_rogue.ROGUE} has '" in reason and "DATA_PATH has sha256" in reason, reason  # both sides named
    assert seen["changelogs_unchanged"] is True and seen["crafted_files"] == [], seen
    assert rec["bytes_lost"] == 0, rec
    assert rec["two_masters"] is False and rec["two_primaries"] is False and rec["two_vips"] is False, rec
    assert rec["samples"] > 10, rec
    assert rec["final_state"].startswith(f"serving on {rec['node']}") and "after operator recovery" in \
        rec["final_state"], rec
    # the rogue is gone: the real module answers on the client again and the pillar is the lab's own
    assert loop.cluster_pillar()["metaloggers"]["targets"] == ["mfs-cs1"]
    assert not faults_rogue._is_rogue(faults_rogue._ask_rogue(loop))
