#!/usr/bin/env python3
"""RTO/RPO benchmark of mfsha on the network-namespace lab (`make bench`; ROUNDS=N, default 20).

Per round and fault type: write checksummed, fsync'ed files through the client's mfsmount, inject the fault into the
active master, then time until the first successful client create+write+fsync+read through the VIP (RTO), and count
the bytes of the pre-fault files that no longer read back identically (bytes lost, RPO). Fault types:
  kill9                      kill -9 of every mfsmaster process on the active node (the failover loop restarts it)
  sigstop                    SIGSTOP of every mfsmaster process (hung master; the loop kills and restarts it)
  host_death                 cable pulled + kill -9 of every process of the active host (heartbeat moves everything)
  heartbeat_only_host_death  the same with the loop in maintenance: heartbeat alone (baseline)
Each round starts healthy with a fresh failover book, so every fault is a first fault (no cooldown carried over).
Writes bench/results.json ({type: {"runs", "median_s", "max_s", "bytes_lost", "deadtime_s"}}) and bench/rto.png
(tools/plot.py). --plot-only redraws rto.png from the results.json in --out, without a lab.

  python tools/bench.py [--reuse LAB | --name LAB] [--rounds N] [--out DIR] [--faults A,B] [--plot-only]
"""
import argparse
import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # run as tools/bench.py: the repository root, for the lab package mfshalab

from mfshalab.faults import maintenance, run_fault  # noqa: E402  (shared with tools/faults.py)
from mfshalab.hosts import LabError  # noqa: E402
from mfshalab.loop import loop_lab  # noqa: E402
from mfshalab.report import rto_summary  # noqa: E402
import plot  # noqa: E402  (tools/plot.py beside this file: the chart)

FAULTS = tuple(plot.FAULTS)  # the chart's groups, in its order
LIMIT_S = 150


def round_(lab, kind, n):
    rec = run_fault(lab, kind, limit=LIMIT_S, out=lambda line: None)
    lost = rec["bytes_lost"] if rec["bytes_lost"] is not None else rec["files_bytes"]
    print(f"bench: {kind} round {n}: fault on {rec['node']}, RTO {rec['rto_s']} s, bytes lost {lost}, "
          f"now active {lab.active()}", flush=True)
    return rec["rto_s"], lost


def plot_only(out):
    """Redraw OUT/rto.png from OUT/results.json (tools/plot.py's defaults fill in a deadtime the file lacks)."""
    plot.main(["--results", os.path.join(out, "results.json"), "--out", os.path.join(out, "rto.png")])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("ROUNDS", "20")))
    ap.add_argument("--reuse", help="use this running lab instead of bringing one up (and leave it running)")
    ap.add_argument("--name", default=os.environ.get("MFSHA_BENCH_LAB", "mfsbench"),
                    help="the lab to bring up (default $MFSHA_BENCH_LAB, else mfsbench)")
    ap.add_argument("--out", default=os.path.join(REPO, "bench"))
    ap.add_argument("--faults", default=",".join(FAULTS))
    ap.add_argument("--plot-only", action="store_true", help="redraw OUT/rto.png from OUT/results.json; no lab")
    a = ap.parse_args()
    if a.plot_only:
        plot_only(a.out)
        return
    if os.geteuid() != 0:
        sys.exit("bench: needs root (the lab)")
    lab = loop_lab(a.reuse, a.name)
    deadtime = lab.cluster_pillar()["heartbeat"]["deadtime"]
    results, started = {}, time.time()
    try:
        for kind in a.faults.split(","):
            runs, lost = [], 0
            for n in range(a.rounds):
                rto, b = round_(lab, kind, n)
                runs.append(rto)
                lost += b
            results[kind] = dict(rto_summary(runs), bytes_lost=lost, deadtime_s=deadtime)
    finally:
        try:
            maintenance(lab, False)
        except LabError as e:
            print(f"bench: {e}", file=sys.stderr)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    plot.rto_plot(results, os.path.join(a.out, "rto.png"), deadtime)
    print(json.dumps({"rounds": a.rounds, "seconds": round(time.time() - started), "load": os.getloadavg(),
                      "results": {k: {x: v[x] for x in ("median_s", "max_s", "bytes_lost")} for k, v in results.items()}}))
    if not a.reuse:
        lab.down()
    failed = [k for k, v in results.items() if v["max_s"] is None or v["bytes_lost"]]
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
