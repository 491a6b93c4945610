"""Watching a failover as it happens: a timeline of what each master host holds, what heartbeat on the peer
believes, when the VIP serves again and when client I/O resumes. Polls real state only (addresses, mounts,
processes, cl_status, TCP, a client write); every wait is bounded."""
import datetime
import os
import re
import threading
import time

from mfshalab.hosts import LabError


class Timeline:
    """Events relative to t0, printed as they are recorded."""

    def __init__(self, out=print, t0=None):
        self.t0 = t0 if t0 is not None else time.monotonic()
        self.events = []
        self.out = out
        self.lock = threading.Lock()

    def mark(self, what, host="", t=None):
        t = (t if t is not None else time.monotonic()) - self.t0
        with self.lock:
            self.events.append({"t": round(t, 2), "host": host, "event": what})
        if self.out:
            self.out(f"  [{t:6.1f} s] {host:<10} {what}")
        return t

    def first(self, what):
        return next((e["t"] for e in self.events if e["event"] == what), None)


# syslog lines worth a place in a failover timeline (heartbeat, its resource scripts, mfsmaster)
LOG_EVENTS = [
    (re.compile(r"node (\S+): is dead"), "heartbeat log: node {0} is dead"),
    (re.compile(r"Resources being acquired from (\S+)\."), "heartbeat log: acquiring resources from {0}"),
    (re.compile(r"give up all HA resources \(standby\)"), "heartbeat log: giving up all resources (standby)"),
    (re.compile(r"all HA resource release completed"), "heartbeat log: resources released"),
    (re.compile(r"Running /etc/ha.d/resource.d/(\S+) .*\b(start|stop)$"), "heartbeat runs {0} {1}"),
    (re.compile(r"main master server module: listen on"), "mfsmaster listens (metadata loaded)"),
    (re.compile(r"chunkserver register end .* ip: (\S+) "), "chunkserver {0} registered"),
    (re.compile(r"mach_down takeover complete for node (\S+)\."), "heartbeat log: takeover from {0} complete"),
    (re.compile(r"Other node completed standby takeover"), "heartbeat log: peer completed the takeover"),
    (re.compile(r"mfsha-tickle: sent tickle ACKs to (\d+) connection"), "mfsha-tickle: {0} connections reset"),
]


class LogTail:
    """New lines of a lab host's syslog (written by holder.py with millisecond wall-clock times)."""

    def __init__(self, host):
        self.host, self.path = host.name, host.syslog_path
        self.pos = os.path.getsize(self.path) if os.path.exists(self.path) else 0

    def events(self):
        """[(monotonic time, text)] for the interesting lines written since the last call."""
        if not os.path.exists(self.path):
            return []
        if os.path.getsize(self.path) < self.pos:
            self.pos = 0  # new boot, new file
        with open(self.path, errors="replace") as f:
            f.seek(self.pos)
            data = f.read()
        lines = data.split("\n")
        self.pos += len(data.encode()) - len(lines[-1].encode())  # keep a partial last line for later
        out, skew = [], time.time() - time.monotonic()
        for line in lines[:-1]:
            parts = line.split(" ", 2)
            if len(parts) < 3:
                continue
            for rx, text in LOG_EVENTS:
                m = rx.search(parts[2])
                if m:
                    wall = datetime.datetime.fromisoformat(parts[0]).timestamp()
                    out.append((wall - skew, text.format(*m.groups())))
                    break
        return out


def peer_sees_dead(lab, peer, node):
    """heartbeat on PEER reports NODE dead (cl_status talks to the local heartbeat through its API socket)."""
    p = lab.host(peer).run(["cl_status", "nodestatus", node], timeout=5, check=False)
    return p.stdout.strip() == "dead"


class ClientProbe:
    """Client I/O from the moment the old master is gone (a handover keeps serving for a few seconds): one
    create+write+fsync+read through mfsmount after another in a thread, until one works or DEADLINE passes."""

    def __init__(self, lab, tl, deadline):
        self.lab, self.tl, self.deadline = lab, tl, deadline
        self.t, self.tries, self.started = None, 0, False

    def start(self):
        self.started = True
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while time.monotonic() < self.deadline and self.t is None:
            self.tries += 1
            if self.lab.probe(timeout=max(1, int(self.deadline - time.monotonic()))):
                self.t = self.tl.mark("client I/O resumed (create+write+fsync+read through mfsmount)", "mfs-client")
            else:
                time.sleep(0.2)


def mark_changes(lab, tl, seen, res, peer):
    """Timeline entries for what changed on each master since SEEN (updated); the VIP's arrival on PEER."""
    for m in lab.masters:
        st = lab.node_state(m)
        for k, label in (("up", "host"), ("storage", "storage mounted"), ("vip", f"VIP {lab.vip}"),
                         ("mfsmaster", "mfsmaster process")):
            if st[k] != seen[m][k]:
                t = tl.mark(f"{label} {'up' if st[k] else 'gone'}" if k == "up" else
                            f"{label} {'present' if st[k] else 'gone'}", m)
                if m == peer and k == "vip" and st[k] and res["vip_moved"] is None:
                    res["vip_moved"] = t
        seen[m] = st


def mark_two_holders(lab, tl, seen, res):
    """The safety property: never two holders of the master, the shared storage or the VIP at once."""
    for k, key in (("mfsmaster", "two_masters"), ("storage", "two_storage"), ("vip", "two_vip")):
        holders = [m for m in lab.masters if seen[m][k]]
        if len(holders) > 1 and not res[key]:
            res[key] = True
            tl.mark(f"TWO holders of {k} at once: {', '.join(holders)}", "!!")


def mark_detection(lab, tl, tails, res, old, expect_detect):
    """The masters' new syslog lines into the timeline; when heartbeat (its log or cl_status on the peer) first
    declared OLD dead."""
    for tail in tails:
        for t, text in tail.events():
            t = tl.mark(text, tail.host, t=t)
            if text == f"heartbeat log: node {old} is dead" and expect_detect:
                res["detected"] = min(res["detected"] or t, t)
    peer = lab.peer(old)
    if expect_detect and res["detected"] is None and lab.host(peer).alive() and peer_sees_dead(lab, peer, old):
        res["detected"] = tl.mark(f"heartbeat declares {old} dead", peer)


def watch_failover(lab, old, tl, timeout=90, client=True, expect_detect=True, before=None):
    """After a fault on master OLD: poll until another master holds VIP + storage + mfsmaster, the VIP serves,
    and (CLIENT) one client create/write/fsync/read completes. Returns the timings (s after tl.t0) and events.
    Raises LabError with the timeline when the deadline passes."""
    deadline = tl.t0 + timeout
    seen = before or {m: lab.node_state(m) for m in lab.masters}
    res = {"old": old, "new_active": None, "detected": None, "vip_moved": None, "serving": None,
           "client_resumed": None, "two_masters": False, "two_storage": False, "two_vip": False}
    probe = ClientProbe(lab, tl, deadline)
    tails = [LogTail(lab.host(m)) for m in lab.masters]
    while True:
        now = time.monotonic()
        mark_detection(lab, tl, tails, res, old, expect_detect)
        mark_changes(lab, tl, seen, res, lab.peer(old))
        if client and not probe.started and not seen[old]["mfsmaster"]:
            probe.start()
        mark_two_holders(lab, tl, seen, res)
        new = lab.active()
        if new and new != old and res["serving"] is None and lab.serving(timeout=1):
            res["serving"] = tl.mark(f"mfsmaster serves on {lab.vip}:9421", new)
            res["new_active"] = new
        if res["serving"] is not None and (not client or probe.t is not None):
            res["client_resumed"] = probe.t
            break
        if now > deadline:
            raise LabError(f"failover from {old} not complete after {timeout}s: {res}\n" +
                           "\n".join(f"{e['t']:6.1f} {e['host']} {e['event']}" for e in tl.events))
        time.sleep(0.2)
    res = {k: round(v, 2) if isinstance(v, float) else v for k, v in res.items()}
    res["events"] = sorted(tl.events, key=lambda e: e["t"])
    res["client_probes"] = probe.tries
    return res
