"""tools/plot.py: bench/rto.png is drawn from bench/results.json (the committed benchmark run), by matplotlib."""
import json
import struct
import sys

import pytest
from unit_support import REPO

sys.path.insert(0, str(REPO / "tools"))
import plot  # noqa: E402

RESULTS = json.loads((REPO / "bench" / "results.json").read_text())


def png_size(path):
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def test_the_committed_chart_is_the_committed_results_drawn(tmp_path):
    # a results.json re-measured without redrawing rto.png (or the reverse) fails here: `make plot` redraws it
    out = tmp_path / "rto.png"
    plot.main(["--results", str(REPO / "bench" / "results.json"), "--out", str(out)])
    assert out.read_bytes() == (REPO / "bench" / "rto.png").read_bytes()


def test_same_results_same_file_and_every_fault_is_a_group(tmp_path):
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    plot.rto_plot(RESULTS, first, 6)
    plot.rto_plot(RESULTS, second, 6)
    assert first.read_bytes() == second.read_bytes()
    assert png_size(first) == (990, 572)
    assert set(RESULTS) == set(plot.FAULTS)


def test_a_run_that_never_came_back_is_drawn(tmp_path):
    results = {"kill9": {"runs": [4.5, None, 3.0], "median_s": 3.75, "max_s": None, "bytes_lost": 0},
               "host_death": {"runs": [None], "median_s": None, "max_s": None, "bytes_lost": 4096}}
    plot.rto_plot(results, tmp_path / "rto.png", 6)
    assert png_size(tmp_path / "rto.png") == (990, 572)


def test_an_unknown_fault_is_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match=r"unknown fault\(s\) \['kill8'\]"):
        plot.rto_plot({"kill8": RESULTS["kill9"]}, tmp_path / "rto.png", 6)
    assert not (tmp_path / "rto.png").exists()


@pytest.mark.parametrize("field,value,why", [
    ("runs", [], "runs must be a non-empty list"),
    ("runs", [4.5, "4.6"], "runs must be a non-empty list"),
    ("median_s", -1, "median_s must be seconds"),
    ("bytes_lost", None, "bytes_lost must be a whole number"),
])
def test_a_bad_record_is_refused_naming_its_field(tmp_path, field, value, why):
    with pytest.raises(ValueError, match=f"results: sigstop: {why}"):
        plot.rto_plot({"sigstop": dict(RESULTS["sigstop"], **{field: value})}, tmp_path / "rto.png", 6)
    assert not (tmp_path / "rto.png").exists()


def test_the_deadtime_comes_from_the_records_else_the_default():
    assert plot.deadtime_of(RESULTS, 6) == 6  # the committed run predates deadtime_s
    assert plot.deadtime_of({k: dict(v, deadtime_s=8) for k, v in RESULTS.items()}, 6) == 8
    mixed = {"kill9": dict(RESULTS["kill9"], deadtime_s=6), "sigstop": dict(RESULTS["sigstop"], deadtime_s=8)}
    with pytest.raises(ValueError, match=r"deadtime_s differs between faults: \[6, 8\]"):
        plot.deadtime_of(mixed, 6)


def test_a_bad_results_file_exits_naming_it(tmp_path):
    bad = tmp_path / "results.json"
    bad.write_text(json.dumps({"kill8": RESULTS["kill9"]}))
    with pytest.raises(SystemExit, match=r"results.json: results: unknown fault"):
        plot.main(["--results", str(bad), "--out", str(tmp_path / "rto.png")])
