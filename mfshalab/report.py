"""The fault report: repeated runs of one fault summed up into one record of faults/report.json (tools/faults.py),
and the RTO summary of tools/bench.py's results.json. Records in, records out; write_report writes the file."""
import json
import statistics

from mfshalab.formula import write_durably


def rto_summary(runs):
    """Median over the runs that came back; max only when every run came back (a run that never did has no max)."""
    ok = [r for r in runs if r is not None]
    return {"runs": runs, "median_s": round(statistics.median(ok), 2) if ok else None,
            "max_s": max(ok) if ok and len(ok) == len(runs) else None}


def combine(recs):
    """One report record for the runs of one fault (run_fault's records, in order). rto_s is the median RTO and
    rto_max_s the max, over the runs, or over the cycles of a cycles run; bytes are summed; a flag is set when any run
    set it (None, unknown, when none set it and one could not tell); final_state is the first that is not serving,
    else the last run's. Each run's own record, trimmed, stays under "rounds"."""
    runs = [t for r in recs for t in r["observed"].get("cycle_rtos", [r["rto_s"]])]
    rto = rto_summary(runs)
    lost = [r["bytes_lost"] for r in recs]

    def flag(k):
        vals = [r[k] for r in recs]
        return True if True in vals else None if None in vals else False
    bad = [r["final_state"] for r in recs if not r["final_state"].startswith("serving")]
    return {"fault": recs[0]["fault"], "rto_s": rto["median_s"], "rto_max_s": rto["max_s"], "rto_runs": runs,
            "bytes_lost": None if None in lost else sum(lost), "two_masters": flag("two_masters"),
            "two_primaries": flag("two_primaries"), "two_vips": flag("two_vips"),
            "final_state": (bad or [recs[-1]["final_state"]])[0], "runs": len(recs),
            "files_bytes": sum(r["files_bytes"] for r in recs), "samples": sum(r["samples"] for r in recs),
            "seconds": round(sum(r["seconds"] for r in recs), 1),
            "rounds": [{k: r[k] for k in ("node", "rto_s", "bytes_lost", "final_state", "notes", "observed")}
                       for r in recs]}


def failed(rec):
    """A combined record that breaks a promise: bytes lost, two masters or two primaries (or unknown), not serving."""
    return rec["bytes_lost"] != 0 or rec["two_masters"] is not False or rec["two_primaries"] is not False or \
        not rec["final_state"].startswith("serving")


def error_record(label, error):
    """The record of a run that raised (the matrix goes on; the record says what broke)."""
    return {"fault": label, "rto_s": None, "bytes_lost": None, "two_masters": None, "two_primaries": None,
            "two_vips": None, "node": None, "final_state": f"ERROR: {str(error)[:500]}", "files_bytes": 0,
            "samples": 0, "notes": [], "observed": {}, "seconds": 0}


def write_report(path, records, old=()):
    """PATH = OLD's records of other faults + RECORDS, written whole through a temporary file: a reader (or a late
    failure) never sees half a report."""
    labels = {r["fault"] for r in records}
    write_durably(path, json.dumps([r for r in old if r["fault"] not in labels] + list(records), indent=1))
