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
Writes bench/results.json ({type: {"runs", "median_s", "max_s", "bytes_lost"}}) and bench/rto.png.

  python tools/bench.py [--reuse LAB] [--rounds N] [--out DIR]
"""
import argparse
import json
import os
import struct
import sys
import time
import zlib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(REPO, "test", "lab"), os.path.join(REPO, "test", "integration")]

from failover_loop import loop_lab  # noqa: E402
from faultlib import maintenance, rto_summary, run_fault  # noqa: E402  (shared with tools/faults.py)
from labhosts import LabError  # noqa: E402

FAULTS = ("kill9", "sigstop", "host_death", "heartbeat_only_host_death")
COLORS = {"kill9": (31, 119, 180), "sigstop": (255, 127, 14), "host_death": (214, 39, 40),
          "heartbeat_only_host_death": (127, 127, 127)}
LIMIT_S = 150


def round_(lab, kind, n):
    rec = run_fault(lab, kind, limit=LIMIT_S, out=lambda line: None)
    lost = rec["bytes_lost"] if rec["bytes_lost"] is not None else rec["files_bytes"]
    print(f"bench: {kind} round {n}: fault on {rec['node']}, RTO {rec['rto_s']} s, bytes lost {lost}, "
          f"now active {lab.active()}", flush=True)
    return rec["rto_s"], lost


# ---- PNG without a plotting library -----------------------------------------------------------------------------

def png(path, width, height, pixels):
    """pixels: bytearray of RGB rows."""
    raw = b"".join(b"\x00" + bytes(pixels[y * width * 3:(y + 1) * width * 3]) for y in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def plot(results, path, targets):
    """RTO per run (dots) and median (bar) for each fault type, one column each in FAULTS order; grey grid line
    every 5 s; dashed lines at the targets (service-failure median 5 s, host death deadtime + 4 s)."""
    w, h, top, bottom, left = 640, 400, 20, 30, 40
    ymax = max([5.0] + [t for t in targets] + [r for v in results.values() for r in v["runs"] if r is not None]) * 1.1
    px = bytearray([255] * w * h * 3)

    def put(x, y, c):
        if 0 <= x < w and 0 <= y < h:
            px[(y * w + x) * 3:(y * w + x) * 3 + 3] = bytes(c)

    def ypos(v):
        return int(h - bottom - (v / ymax) * (h - top - bottom))
    for s in range(0, int(ymax) + 1, 5):
        for x in range(left, w - 10):
            put(x, ypos(s), (220, 220, 220) if s else (0, 0, 0))
    for y in range(top, h - bottom + 1):
        put(left, y, (0, 0, 0))
    for t in targets:
        for x in range(left, w - 10):
            if (x // 6) % 2 == 0:
                put(x, ypos(t), (0, 160, 0))
    col = (w - left - 20) // len(FAULTS)
    for i, kind in enumerate(FAULTS):
        res = results.get(kind)
        if not res:
            continue
        cx, c = left + 10 + col * i + col // 2, COLORS[kind]
        if res["median_s"] is not None:
            for x in range(cx - col // 3, cx + col // 3):
                for dy in (-1, 0, 1):
                    put(x, ypos(res["median_s"]) + dy, c)
        for j, r in enumerate(res["runs"]):
            y = ypos(r) if r is not None else top
            x = cx - col // 4 + (j * (col // 2)) // max(1, len(res["runs"]) - 1) if len(res["runs"]) > 1 else cx
            for dx in range(-2, 3):
                for dy in range(-2, 3):
                    put(x + dx, y + dy, c if r is not None else (0, 0, 0))
    png(path, w, h, px)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("ROUNDS", "20")))
    ap.add_argument("--reuse", help="use this running lab instead of bringing one up (and leave it running)")
    ap.add_argument("--out", default=os.path.join(REPO, "bench"))
    ap.add_argument("--faults", default=",".join(FAULTS))
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench: needs root (the lab)")
    lab = loop_lab(a.reuse, os.environ.get("MFSHA_BENCH_LAB", "mfsbench"))
    deadtime = lab.cluster_pillar()["heartbeat"]["deadtime"]
    results, started = {}, time.time()
    try:
        for kind in a.faults.split(","):
            runs, lost = [], 0
            for n in range(a.rounds):
                rto, b = round_(lab, kind, n)
                runs.append(rto)
                lost += b
            results[kind] = dict(rto_summary(runs), bytes_lost=lost)
    finally:
        try:
            maintenance(lab, False)
        except LabError as e:
            print(f"bench: {e}", file=sys.stderr)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    plot(results, os.path.join(a.out, "rto.png"), targets=(5.0, deadtime + 4.0))
    print(json.dumps({"rounds": a.rounds, "seconds": round(time.time() - started), "load": os.getloadavg(),
                      "results": {k: {x: v[x] for x in ("median_s", "max_s", "bytes_lost")} for k, v in results.items()}}))
    if not a.reuse:
        lab.down()
    failed = [k for k, v in results.items() if v["max_s"] is None or v["bytes_lost"]]
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
