"""mfshalab.report combine and rto_summary: the fault report's record for repeated runs, fed with real run_fault records
captured from `make faults` (test/unit/fixtures/faults/records.json: kill9, partition, cycles_5)."""
import copy
import json

import pytest

from mfshalab.report import combine, rto_summary
from unit_support import REPO

RECORDS = {r["fault"]: r for r in json.loads((REPO / "test/unit/fixtures/faults/records.json").read_text())}


def runs(name, *changes):
    """Copies of the captured record of NAME, one per dict of changes."""
    return [dict(copy.deepcopy(RECORDS[name]), **c) for c in changes]


def test_median_and_max_over_the_runs():
    rec = combine(runs("kill9", {"rto_s": 13.66}, {"rto_s": 4.5}, {"rto_s": 6.0}))
    assert (rec["fault"], rec["rto_s"], rec["rto_max_s"], rec["rto_runs"]) == ("kill9", 6.0, 13.66, [13.66, 4.5, 6.0])
    assert (rec["runs"], rec["bytes_lost"], rec["two_masters"], rec["two_primaries"]) == (3, 0, False, False)
    assert rec["final_state"] == "serving on mfs-a" == RECORDS["kill9"]["final_state"]
    assert rec["files_bytes"] == 3 * RECORDS["kill9"]["files_bytes"]
    assert [r["rto_s"] for r in rec["rounds"]] == [13.66, 4.5, 6.0]


def test_a_run_that_never_came_back_leaves_no_max():
    rec = combine(runs("kill9", {"rto_s": 4.5}, {"rto_s": None}, {"rto_s": 6.5}))
    assert (rec["rto_s"], rec["rto_max_s"]) == (5.5, None)
    assert rto_summary([None]) == {"runs": [None], "median_s": None, "max_s": None}


def test_bytes_are_summed_and_unknown_stays_unknown():
    assert combine(runs("kill9", {}, {"bytes_lost": 65536}))["bytes_lost"] == 65536
    assert combine(runs("kill9", {"bytes_lost": 65536}, {"bytes_lost": None}))["bytes_lost"] is None


@pytest.mark.parametrize("values, expected", [([False, False], False), ([False, True], True), ([None, False], None),
                                              ([None, True], True)])
def test_a_flag_raised_in_any_run_is_raised(values, expected):
    rec = combine(runs("partition", *({"two_masters": v, "two_primaries": v} for v in values)))
    assert rec["two_masters"] is expected and rec["two_primaries"] is expected


def test_the_first_run_not_serving_gives_the_final_state():
    rec = combine(runs("partition", {}, {"final_state": "nobody serves: no VIP"}, {"final_state": "ERROR: x"}))
    assert rec["final_state"] == "nobody serves: no VIP"
    assert combine(runs("partition", {}))["final_state"] == RECORDS["partition"]["final_state"]


def test_a_cycles_run_counts_each_cycle():
    rec = RECORDS["cycles_5"]
    note = next(n for n in rec["notes"] if n.startswith("cycle RTOs"))
    cycles = json.loads(note.split(": ", 1)[1])  # f_cycles now also puts them in observed (older capture)
    out = combine(runs("cycles_5", {"observed": {"cycle_rtos": cycles}}))
    assert out["rto_runs"] == cycles and out["rto_max_s"] == rec["rto_s"] == max(cycles)
    assert out["rto_s"] == round(sorted(cycles)[2], 2) and out["runs"] == 1
