"""Faults on the lab and what they cost: one run of one fault, for tools/bench.py, tools/faults.py and the tests.

run_fault(lab, name) heals the lab, writes checksummed fsync'ed files through the client, starts a Watcher that
samples both masters in the background (never two mfsmaster processes, never the shared storage mounted twice,
never the VIP on both), injects the fault (mfshalab.faults.catalogue), times until one client create+write+fsync+
read through the VIP works again (rto_s), writes more files, reads every file back (bytes_lost) and returns the
report record:

  {"fault", "rto_s", "bytes_lost", "two_masters", "two_primaries", "final_state",
   "node", "two_vips", "files_bytes", "samples", "notes", "observed", "seconds"}

rto_s is None when client I/O did not come back within the fault's limit; files are then still verified after the
fault is undone (what an operator finds). Every wait is bounded; every fault is undone, also after an error.
"""
import threading
import time

from mfshalab.faults.catalogue import FAULTS, LIMIT_S, LIMITS, PREPARE
from mfshalab.faults.common import (FILE_SIZE, bytes_lost, final_state, fresh_book, loop_actions, loop_idle,
                                    master_daemons, resume_all, write)
from mfshalab.faults.recovery import reset
from mfshalab.hosts import LabError


class Watcher:
    """Samples both masters every INTERVAL s in a thread; any sample with two holders sets the flag for good."""

    def __init__(self, lab, interval=0.3):
        self.lab, self.interval = lab, interval
        self.flags = {"two_masters": [], "two_primaries": [], "two_vips": []}
        self.samples, self.errors = 0, []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.t0 = time.monotonic()

    def start(self):
        self.thread.start()
        return self

    def sample(self):
        st = {m: self.lab.node_state(m) for m in self.lab.masters}
        for m, s in st.items():  # a master process, not the beacon's or the agent's `mfsmaster -c CFG test`
            s["mfsmaster"] = bool(master_daemons(self.lab, m))
        t = round(time.monotonic() - self.t0, 2)
        for key, what in (("two_masters", "mfsmaster"), ("two_primaries", "storage"), ("two_vips", "vip")):
            if all(s[what] for s in st.values()):
                self.flags[key].append(t)
        self.samples += 1

    def _run(self):
        while not self.stopping.wait(self.interval):
            try:
                self.sample()
            except Exception as e:  # noqa: BLE001 - a host restarting mid-sample; keep sampling, report it
                self.errors.append(f"{type(e).__name__}: {e}")

    def stop(self):
        self.stopping.set()
        self.thread.join(timeout=30)
        self.sample()  # and the end state
        return {k: bool(v) for k, v in self.flags.items()}


def inject(lab, name, ctx, watcher):
    """PREPARE, the fault itself, then every undo step (newest first) and the watcher stopped, also after an
    error. Returns (rto_s, the watcher's flags, the wall-clock time the fault's clock started)."""
    wall0 = time.time()
    try:
        if name in PREPARE:
            PREPARE[name](lab, ctx)
        ctx["t0"], wall0 = time.monotonic(), time.time()
        rto = FAULTS[name](lab, ctx)
    finally:
        errors = []
        for undo in reversed(ctx["undo"]):
            try:
                undo()
            except LabError as e:
                errors.append(str(e))
        flags = watcher.stop()
        if errors:
            raise LabError(f"{name}: undoing the fault failed: {errors}")
    return rto, flags, wall0


def lost_after(lab, name, ctx, state, manifest):
    """Bytes of MANIFEST (grown by the files written after the fault) that no longer read back; None when the
    cluster does not serve (nothing can be read: unknown, not zero)."""
    if not state.startswith("serving"):
        return None
    manifest.update(write(lab, f"{name}-after"))
    bad = {}
    lost = bytes_lost(lab, manifest, bad=bad)
    if bad:
        ctx["observed"]["lost_files"] = dict(sorted(bad.items())[:20])
    return lost


def run_fault(lab, name, limit=None, out=print, **opts):
    """Run fault NAME once on a healed lab (the failover loop installed); returns its report record.
    opts: cycles=N (cycles), hold=S (partition, isolated_*, salt_master_down)."""
    if name not in FAULTS:
        raise LabError(f"unknown fault {name!r}: {', '.join(FAULTS)}")
    started = time.monotonic()
    resume_all(lab)
    reset_note = reset(lab)
    fresh_book(lab)
    before = write(lab, f"{name}-before")
    node = lab.active()
    ctx = {"node": node, "limit": limit or LIMITS.get(name, LIMIT_S), "undo": [], "notes": [], "extra": None,
           "observed": {}, "cycles": 5, **opts}
    label = f"cycles_{ctx['cycles']}" if name == "cycles" else name
    watcher = Watcher(lab).start()
    rto, flags, wall0 = inject(lab, name, ctx, watcher)
    state = final_state(lab)
    if name != "cycles":  # a cycles run's switchovers are its notes
        loop_idle(lab)  # the client (and final_state) can be back before the runner records what it did
        ctx["observed"]["loop"] = loop_actions(lab, wall0)
    if ctx["observed"].get("operator_recovery"):
        state += " after operator recovery"
    manifest = dict(before, **(ctx["extra"] or {}))
    lost = lost_after(lab, name, ctx, state, manifest)
    rec = {"fault": label, "rto_s": rto, "bytes_lost": lost, "two_masters": flags["two_masters"],
           "two_primaries": flags["two_primaries"], "final_state": state, "node": node,
           "two_vips": flags["two_vips"], "files_bytes": FILE_SIZE * len(manifest), "samples": watcher.samples,
           "notes": ctx["notes"] + watcher.errors[:3],
           "observed": dict(ctx["observed"], **({"reset_before": reset_note} if reset_note else {})),
           "seconds": round(time.monotonic() - started, 1)}
    out(f"faults: {label}: fault on {node}, RTO {rto} s, bytes lost {lost}, two masters {flags['two_masters']}, "
        f"two primaries {flags['two_primaries']}, two VIPs {flags['two_vips']}, {state}; {'; '.join(rec['notes'])}")
    return rec
