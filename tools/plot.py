#!/usr/bin/env python3
"""Draw bench/rto.png from bench/results.json (matplotlib): one group per fault, a dot per run, a bar at the
median, and the RTO targets as named lines over the faults they apply to. Needs no lab:

  python tools/plot.py [--results bench/results.json] [--out bench/rto.png] [--deadtime S]

The host-death target is heartbeat's deadtime + 4 s. A results file written by tools/bench.py records the deadtime
of its lab (`deadtime_s` in each fault); for one that does not, --deadtime (default: the lab pillar's) gives it.
"""
import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")  # files only: no display on a lab or CI machine
import matplotlib.pyplot as plt  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # run as tools/plot.py: the repository root, for the lab package mfshalab
from mfshalab.pillar import HEARTBEAT_TIMING  # noqa: E402

# fault -> (label under its group, colour); the order is the order of the groups
FAULTS = {
    "kill9": ("kill -9 mfsmaster\n(restart in place)", "tab:blue"),
    "sigstop": ("SIGSTOP mfsmaster\n(killed, restarted)", "tab:orange"),
    "host_death": ("host death\n(heartbeat, loop on)", "tab:red"),
    "heartbeat_only_host_death": ("host death\n(heartbeat only)", "tab:gray"),
}
SERVICE_FAULTS = ("kill9", "sigstop")  # service failures the loop repairs; the rest are host deaths
SERVICE_MEDIAN_S, SERVICE_MAX_S, HOST_DEATH_MARGIN_S = 5.0, 8.0, 4.0


def deadtime_of(results, default):
    """The heartbeat deadtime the results were measured with: the one their records name, else DEFAULT."""
    seen = {rec["deadtime_s"] for rec in results.values() if "deadtime_s" in rec}
    if len(seen) > 1:
        raise ValueError(f"results: deadtime_s differs between faults: {sorted(seen)}")
    return seen.pop() if seen else default


def _group(ax, x, kind, rec):
    """Dots for the runs (spread across the group, in run order), a bar at the median; a run that never came back
    is a cross at the top."""
    label, colour = FAULTS[kind]
    runs, width = rec["runs"], 0.6
    xs = [x - width / 2 + width * i / max(1, len(runs) - 1) for i in range(len(runs))] if len(runs) > 1 else [x]
    came_back = [(px, r) for px, r in zip(xs, runs) if r is not None]
    ax.scatter([p for p, _ in came_back], [r for _, r in came_back], s=18, color=colour, alpha=0.8, zorder=3)
    lost = [px for px, r in zip(xs, runs) if r is None]
    if lost:
        ax.scatter(lost, [ax.get_ylim()[1] * 0.97] * len(lost), marker="x", color="black", zorder=3)
    if rec["median_s"] is not None:
        ax.hlines(rec["median_s"], x - width / 2 - 0.05, x + width / 2 + 0.05, color=colour, linewidth=3, zorder=4)
        ax.annotate(f"{rec['median_s']:.2f} s", (x + width / 2 + 0.07, rec["median_s"]), va="center", fontsize=8)
    return f"{label}\n{len(runs)} runs, {rec['bytes_lost']} bytes lost"


def _target(ax, xs, y, style, label):
    """A target line over the groups at XS only (it applies to those faults)."""
    ax.hlines(y, min(xs) - 0.45, max(xs) + 0.45, colors="green", linestyles=style, linewidth=1.2, label=label, zorder=2)


def check(results):
    """ValueError naming the fault and field that cannot be drawn; nothing is written then."""
    unknown = sorted(set(results) - set(FAULTS))
    if unknown:
        raise ValueError(f"results: unknown fault(s) {unknown}; known: {list(FAULTS)}")
    for kind, rec in results.items():
        runs = rec.get("runs")
        if not isinstance(runs, list) or not runs or any(not _seconds(r, none_ok=True) for r in runs):
            raise ValueError(f"results: {kind}: runs must be a non-empty list of seconds (null: never came back)")
        if not _seconds(rec.get("median_s"), none_ok=True):
            raise ValueError(f"results: {kind}: median_s must be seconds or null")
        if not isinstance(rec.get("bytes_lost"), int) or isinstance(rec["bytes_lost"], bool):
            raise ValueError(f"results: {kind}: bytes_lost must be a whole number")


def _seconds(value, none_ok):
    return (value is None and none_ok) or (isinstance(value, (int, float)) and not isinstance(value, bool)
                                           and value >= 0)


def rto_plot(results, path, deadtime):
    """Write the RTO chart of RESULTS ({fault: {"runs", "median_s", "max_s", "bytes_lost"}}) to PATH."""
    check(results)
    kinds = [k for k in FAULTS if k in results]
    top = max([SERVICE_MAX_S, deadtime + HOST_DEATH_MARGIN_S]
              + [r for k in kinds for r in results[k]["runs"] if r is not None])
    fig, ax = plt.subplots(figsize=(9, 5.2), dpi=110)
    ax.set_ylim(0, top * 1.15)
    ticks = [_group(ax, x, k, results[k]) for x, k in enumerate(kinds)]
    service = [x for x, k in enumerate(kinds) if k in SERVICE_FAULTS]
    hosts = [x for x, k in enumerate(kinds) if k not in SERVICE_FAULTS]
    if service:
        _target(ax, service, SERVICE_MEDIAN_S, "--", f"target: service failure, median <= {SERVICE_MEDIAN_S:g} s")
        _target(ax, service, SERVICE_MAX_S, ":", f"target: service failure, max <= {SERVICE_MAX_S:g} s")
    if hosts:
        _target(ax, hosts, deadtime + HOST_DEATH_MARGIN_S, "-.",
                f"target: host death <= deadtime + {HOST_DEATH_MARGIN_S:g} s = {deadtime + HOST_DEATH_MARGIN_S:g} s")
    ax.plot([], [], "o", color="dimgray", markersize=4, label="one run")
    ax.plot([], [], "-", color="dimgray", linewidth=3, label="median of the runs")
    ax.set_xticks(range(len(kinds)), ticks, fontsize=8)
    ax.set_xlim(-0.6, len(kinds) - 0.4)
    ax.set_xlabel("fault injected on the active master (dots in run order, left to right)", fontsize=9)
    ax.set_ylabel("RTO (s): fault to the first client\ncreate+write+fsync+read through the VIP")
    ax.set_title(f"mfsha failover on the network-namespace lab (heartbeat deadtime {deadtime:g} s)", fontsize=10)
    ax.grid(axis="y", color="0.9")
    ax.legend(loc="upper left", fontsize=8, framealpha=0.95)
    fig.tight_layout()
    # no Software/date metadata: the same results give the same file
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", default=os.path.join(REPO, "bench", "results.json"))
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "rto.png"))
    ap.add_argument("--deadtime", type=float, default=HEARTBEAT_TIMING["deadtime"],
                    help="heartbeat deadtime (s) for results that do not record it (default: the lab pillar's)")
    a = ap.parse_args(argv)
    with open(a.results) as f:
        results = json.load(f)
    try:
        rto_plot(results, a.out, deadtime_of(results, a.deadtime))
    except ValueError as e:
        sys.exit(f"plot: {a.results}: {e}")
    print(f"plot: {a.out}")


if __name__ == "__main__":
    main()
