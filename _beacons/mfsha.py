"""mfsha beacon: watches a MooseFS master node of an mfsha cluster and reports health transitions.

Each run takes one cheap, bounded look (mfsha.node_state: heartbeat, VIP, mount, mfsmaster protocol probe on the
active node, DRBD) and feeds it to a debouncer: a check must be bad `debounce` runs in a row before
`salt/beacon/<id>/mfsha/<what>/down` is sent, and good as many runs before `.../<what>/up`. Debounce filters
slowness (a probe timing out once under load); a master whose process is gone or stopped (SIGSTOP) is no such flake,
so it is reported at the first look (the orchestration re-checks before it acts anyway). A passive node watches
the VIP as a client would (`service`): that catches a master that answers only locally (a firewall) and a group
nobody holds (a failed start; heartbeat v1 never retries). It is the backstop, not the first detector, so it
reports only once the VIP has not served for `service_after` seconds (the loop's own restart gets that long), and
it probes only every PROBE_EVERY seconds.
The VIP holder also records the VIP's TCP peers on the replicated storage (see mfsha_storage.record_peers) and keeps
the storage's free-space reserve (mfsha_storage.keep_reserve). The node's own record (mfsha.keep_record: since when
each check has been down, and `last_version`, the metadata version this node's master last reported while healthy)
is what the loop acts on: it checks that DATA_PATH reaches last_version before it restarts. Events carry the same
fields for people reading the bus; the loop never takes them from an event, which any minion can forge.
Nothing is sent while a state holds, except that an unresolved fault is announced again every `repeat` seconds (so a
recovery the flap guard or maintenance held back is retried). The debouncer lives in module memory: a beacon reload
(sync, pillar refresh) starts it afresh, so a node that is already bad reports again; the reactor side is idempotent.

Configuration (written by mfsha/monitoring.sls from the pillar; `interval` counts minion loop ticks; cluster..peer
are node_state's arguments as mfsha.node_args builds them, _utils/mfsha_node.py, handed on as they are):

    beacons:
      mfsha:
        - interval: 1
        - cluster: paris
        - vip: 10.20.0.10
        - interface: eth0
        - port: 9421
        - mountpoint: /mfsconf
        - storage: drbd          # drbd | shared
        - resource: r0
        - peer: paris-mfs2       # heartbeat node name of the peer
        - debounce: 2
        - repeat: 60
        - service_after: 30      # seconds the VIP must fail from the passive node (failover:serve_timeout)
        - probe_timeout: 0.5     # protocol probe timeout (s); not `timeout`: beacon.present hands its kwargs to
                                 # beacons.list, where `timeout` is how long to wait for the minion's answer
        - reserve_mb: 64         # storage:reserve_mb
"""
import logging
import time

log = logging.getLogger(__name__)
__virtualname__ = "mfsha"
REQUIRED = ("cluster", "vip", "mountpoint")
# node_state's arguments that describe the node: mfsha_node.ARGS (a beacon cannot import _utils; a unit test holds
# the two equal), the keys monitoring.sls writes from mfsha.node_args
NODE_ARGS = ("cluster", "vip", "interface", "port", "mountpoint", "storage", "resource", "peer")
DEFAULTS = {"interface": "eth0", "port": 9421, "storage": "shared", "resource": "r0", "peer": None, "debounce": 2,
            "repeat": 60, "service_after": 30, "probe_timeout": 0.5, "reserve_mb": 0}
_TRACKERS = {}  # cluster -> Tracker; module memory, reset when Salt reloads beacons
# Seconds between the passive node's client probes of the VIP. `service` is judged only after service_after (30 s)
# anyway, and a probe of a hung master blocks the minion's main loop, where beacons run, for probe_timeout: every
# publish to this minion (the runner's own look) waits meanwhile.
PROBE_EVERY = 5
_PROBED = {}  # cluster -> time of the last client probe
_SEEN = {}  # cluster -> metadata version of this node's master at its last healthy look
_RECORDS = {}  # cluster -> the record last written by _keep_record


def __virtual__():
    return __virtualname__


def _config(config):
    cfg = dict(DEFAULTS)
    for item in config if isinstance(config, list) else [config]:
        cfg.update(item)
    return cfg


def validate(config):
    if not isinstance(config, (list, dict)):
        return False, "mfsha beacon: configuration must be a list of key: value items"
    cfg = _config(config)
    missing = [k for k in REQUIRED if not cfg.get(k)]
    if missing:
        return False, f"mfsha beacon: missing {', '.join(missing)}"
    if cfg["storage"] not in ("drbd", "shared"):
        return False, f"mfsha beacon: storage must be drbd or shared, not {cfg['storage']!r}"
    for key, least in (("debounce", 1), ("repeat", 1), ("service_after", 1), ("reserve_mb", 0)):
        if not isinstance(cfg[key], int) or isinstance(cfg[key], bool) or cfg[key] < least:
            return False, f"mfsha beacon: {key} must be an integer >= {least}, not {cfg[key]!r}"
    return True, "valid beacon configuration"


def checks(state):
    """One look at the node -> {what: (bad, details[, sure])}; sure True means the fault is certain at once (no
    mfsmaster process, or a stopped one), so debounce does not apply. bad None means "not looked at this time"
    (the verdict and streak stand); a check left out is not this node's to judge (its verdict lapses: see Tracker).

    master/storage/vip are judged on the node that holds the storage or the VIP, `service` (the VIP as a client sees
    it, probed every PROBE_EVERY s) on the other node while its heartbeat runs. While heartbeat moves the resources
    (`transition`) nothing is looked at: a handover stops mfsmaster first, which is no fault, and a move is part of
    the outage a passive node is timing (a failed takeover is judged from the first bad look, not from the last
    move)."""
    hb = state["heartbeat"]
    out = {"heartbeat": (not hb["running"], "heartbeat is not running" if not hb["running"] else
                         f"heartbeat running, resources {hb['resources']}")}
    moving = hb["resources"] == "transition"
    if moving:
        out.update({what: (None, "") for what in ("master", "storage", "vip", "service")})
    elif state["active"]:
        master = state.get("master") or {}
        out["master"] = (not master.get("healthy"), master.get("detail") or "storage not mounted",
                         not master.get("process") or bool(master.get("stopped")))
        out["storage"] = (not state["mounted"], "storage not mounted on the VIP holder" if not state["mounted"] else
                          "storage mounted")
        out["vip"] = (not state["vip"], "VIP missing on the storage holder" if not state["vip"] else "VIP present")
    elif hb["running"]:  # the passive node's client view
        serves = state.get("vip_serves")
        out["service"] = (None, "") if serves is None else \
            (not serves, "the VIP serves" if serves else "the VIP does not serve (seen from this passive node)")
    drbd = state.get("drbd")
    if drbd is not None or state.get("drbd_error"):
        problems = [state["drbd_error"]] if state.get("drbd_error") else []
        if drbd:
            if drbd.get("split_brain"):
                problems.append("split brain")
            if drbd["disk"] != "UpToDate":
                problems.append(f"local disk {drbd['disk']}")
            if drbd["connection"] != "Connected":
                problems.append(f"connection {drbd['connection']}")
        out["drbd"] = (bool(problems), "; ".join(problems) or
                       f"{drbd['role']} {drbd['disk']}/{drbd['peer_disk']} {drbd['connection']}")
    return out


class Tracker:
    """Debounce and transition logic, fed one look at a time (pure: tested without Salt)."""

    def __init__(self, debounce=2, repeat=60, hold=None):
        self.debounce, self.repeat = debounce, repeat
        self.hold = hold or {}  # what -> seconds a check must stay bad before it is reported down
        self.items = {}

    def update(self, results, now):
        """results: {what: (bad, details[, sure])} -> list of events {what, state (down|up), since, details, repeat}.
        A check missing from results is not this node's to judge any more (the node took or gave up the group, or
        its heartbeat stopped): its state is forgotten, silently. Kept, a stale `down` would be announced again at
        once when the check next fails, without its debounce or hold and with the old `since`."""
        for what in set(self.items) - set(results):
            del self.items[what]
        events = []
        for what, (bad, details, *sure) in sorted(results.items()):
            if bad is None:
                continue
            it = self.items.setdefault(what, {"state": "up", "streak": 0, "first": None, "since": None, "sent": None,
                                                 "repeats": 0})
            want = "down" if bad else "up"
            if want == it["state"]:
                it["streak"], it["first"] = 0, None
                if bad and self.repeat and now - it["sent"] >= self.repeat:
                    it["sent"], it["repeats"] = now, it["repeats"] + 1
                    events.append({"what": what, "state": "down", "since": it["since"], "details": details,
                                   "repeat": it["repeats"]})
                continue
            it["streak"] += 1
            it["first"] = it["first"] or now
            if bad and now - it["first"] < self.hold.get(what, 0):
                continue
            if it["streak"] >= (1 if bad and sure and sure[0] else self.debounce):
                it.update(state=want, streak=0, since=it["first"], first=None, sent=now, repeats=0)
                events.append({"what": what, "state": want, "since": it["since"], "details": details, "repeat": 0})
        return events


def _holder_chores(cfg):
    """The holder keeps its VIP's TCP peers (mfsha_storage.record_peers) and the free-space reserve
    (mfsha_storage.keep_reserve) on the replicated storage; a failure costs only the survivor's tickle or the reserve
    (a full disk is the usual reason), so it is logged and the health look goes on."""
    for what, fun, args in (("the VIP's peers", "mfsha_storage.record_peers", (cfg["vip"], cfg["mountpoint"])),
                            ("the reserve", "mfsha_storage.keep_reserve", (cfg["mountpoint"], cfg["reserve_mb"]))):
        try:
            __salt__[fun](*args)
        except OSError as exc:
            log.warning("mfsha beacon: keeping %s in %s failed: %s", what, cfg["mountpoint"], exc)


def _keep_record(cluster, tracker):
    """This node's own word for the loop, which reads it back through mfsha.node_state (an event's copy of it can
    be forged by any minion; this file is root's): since when each check has been down, and the metadata version
    this node's master last reported healthy. Written only when it changes (a transition), never per tick."""
    down = {what: it["since"] for what, it in sorted(tracker.items.items()) if it["state"] == "down"}
    record = {"down": down, "last_version": _SEEN.get(cluster) if down else None}
    if _RECORDS.get(cluster) == record:
        return
    try:
        __salt__["mfsha.keep_record"](cluster, record)
        _RECORDS[cluster] = record
    except OSError as exc:
        log.warning("mfsha beacon: writing this node's record for %s failed: %s", cluster, exc)


def beacon(config):
    cfg = _config(config)
    now = time.time()
    probe = now - _PROBED.get(cfg["cluster"], 0) >= PROBE_EVERY
    state = __salt__["mfsha.node_state"](**{k: cfg[k] for k in NODE_ARGS}, timeout=cfg["probe_timeout"],
                                         client=probe, record=False)
    if state.get("vip_serves") is not None:
        _PROBED[cfg["cluster"]] = now
    if state["vip"] and state["mounted"]:
        _holder_chores(cfg)
    master = state.get("master") or {}
    if master.get("healthy") and master.get("metadata_version"):
        _SEEN[cfg["cluster"]] = master["metadata_version"]
    elif not state["active"]:
        _SEEN.pop(cfg["cluster"], None)
    tracker = _TRACKERS.get(cfg["cluster"])
    hold = {"service": cfg["service_after"]}
    if tracker is None or (tracker.debounce, tracker.repeat, tracker.hold) != (cfg["debounce"], cfg["repeat"], hold):
        tracker = _TRACKERS[cfg["cluster"]] = Tracker(cfg["debounce"], cfg["repeat"], hold)
    events = tracker.update(checks(state), state["time"])
    _keep_record(cfg["cluster"], tracker)  # before the events leave: the loop reads it when one arrives
    out = []
    for ev in events:
        ev.update(tag=f"{ev['what']}/{ev['state']}", node=__opts__["id"], cluster=cfg["cluster"],
                  active=state["active"], heartbeat=state["heartbeat"]["resources"],
                  last_version=_SEEN.get(cfg["cluster"]))
        log.info("mfsha beacon: %s %s since %s: %s", ev["what"], ev["state"], ev["since"], ev["details"])
        out.append(ev)
    return out
