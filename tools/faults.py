#!/usr/bin/env python3
"""The fault matrix of mfsha on the network-namespace lab (`make faults`; `make soak` for 50 failover cycles).

Each fault runs ROUNDS times (default 3; cycles once, its cycles being the runs) on a healed lab with the failover
loop installed (mfshalab.faults, the same code test_faults.py asserts on): checksummed fsync'ed files are written
through the client before and after it, both masters are sampled throughout. The report is a JSON list with one
record per fault (mfshalab.report.combine): {"fault", "rto_s" (median), "rto_max_s", "rto_runs", "bytes_lost",
"two_masters", "two_primaries", "final_state", "runs", "rounds" (each run's own), ...}.

  python tools/faults.py [--reuse LAB | --name LAB] [--faults kill9,sigstop,...] [--rounds N] [--cycles N]
                         [--out F] [--merge]

--merge keeps the records of other faults already in the report (soak adds its cycles record to the matrix).
Exit 1 when a fault lost bytes, ran two masters or two primaries, or did not end serving, in any run.
"""
import argparse
import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # run as tools/faults.py: the repository root, for the lab package mfshalab

from mfshalab.faults import FAULTS, MATRIX, run_fault  # noqa: E402
from mfshalab.hosts import LabError  # noqa: E402
from mfshalab.loop import loop_lab  # noqa: E402
from mfshalab.report import combine, error_record, failed, write_report  # noqa: E402


def arguments():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reuse", help="use this running lab instead of bringing one up (and leave it running)")
    ap.add_argument("--name", default=os.environ.get("MFSHA_FAULTS_LAB", "faults"),
                    help="the lab to bring up (default $MFSHA_FAULTS_LAB, else faults)")
    ap.add_argument("--faults", default=",".join(MATRIX), help=f"comma list of {', '.join(FAULTS)}")
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("ROUNDS", "3")))
    ap.add_argument("--cycles", type=int, default=int(os.environ.get("CYCLES", "5")))
    ap.add_argument("--out", default=os.path.join(REPO, "faults", "report.json"))
    ap.add_argument("--merge", action="store_true", help="keep the other faults' records already in --out")
    return ap.parse_args()


def runs_of(lab, name, a):
    """NAME's runs (one for cycles, its cycles being the runs), a run that raised recorded as an error."""
    runs, label = [], f"cycles_{a.cycles}" if name == "cycles" else name
    for _ in range(1 if name == "cycles" else a.rounds):
        try:
            runs.append(run_fault(lab, name, cycles=a.cycles))
        except LabError as e:  # the matrix goes on; the record says what broke
            print(f"faults: {name}: ERROR {e}", file=sys.stderr, flush=True)
            runs.append(error_record(label, e))
    return runs


def main():
    a = arguments()
    if os.geteuid() != 0:
        sys.exit("faults: needs root (the lab)")
    names = a.faults.split(",")
    unknown = [n for n in names if n not in FAULTS]
    if unknown:
        sys.exit(f"faults: unknown fault(s) {unknown}; known: {', '.join(FAULTS)}")
    lab = loop_lab(a.reuse, a.name)
    started, records, old = time.time(), [], []
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    if a.merge and os.path.exists(a.out):
        with open(a.out) as f:
            old = json.load(f)
    for name in names:
        records.append(combine(runs_of(lab, name, a)))
        write_report(a.out, records, old)  # after every fault: a late failure keeps the others
    print(json.dumps({"seconds": round(time.time() - started), "load": os.getloadavg(), "report": a.out,
                      "faults": {r["fault"]: {k: r[k] for k in ("rto_s", "rto_max_s", "bytes_lost", "two_masters",
                                                                "two_primaries", "final_state")} for r in records}},
                     indent=1))
    if not a.reuse:
        lab.down()
    sys.exit(1 if any(failed(r) for r in records) else 0)


if __name__ == "__main__":
    main()
