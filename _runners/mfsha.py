"""mfsha operator commands and the recovery decision of the failover loop (beacon -> reactor -> orchestrate).

  salt-run mfsha.status [cluster] [fmt=data]     a table per cluster (or the data behind it)
  salt-run mfsha.switchover <cluster>           planned handover through heartbeat, refused with reasons when unsafe
  salt-run mfsha.maintenance <cluster> on|off   the loop only reports while on (persisted in the master's cachedir)
  salt-run mfsha.recover minion=<id>            what mfsha/orch/recover.sls runs for a beacon event

THE RULE (also in README, "The rule"), evaluated on a fresh look at both nodes, never on the event (an event is
only a hint of which cluster to look at: any minion can forge one, see mfsha_event):
act only for a master node of a cluster in the Salt master's pillar, with failover enabled, no maintenance and
heartbeat not moving the resources. When exactly one node holds them: if its mfsmaster answers the protocol, do
nothing, unless the VIP fails both from the passive node and from the Salt master (a firewall: the master answers
only locally), which is a move; and if the peer answers, holds nothing and runs no heartbeat, start heartbeat there
(mfsha.rejoin), once per `cooldown`. Otherwise restart mfsmaster in place (`-a`) if the node holds storage and VIP, its
heartbeat runs and fewer than `restart_budget` restarts happened in the last `cooldown` seconds; else (or when the
restart does not serve within `serve_timeout`) hand every resource to the peer through heartbeat (hb_standby) if no
move happened in the last `cooldown` seconds, both heartbeats run and the peer's DRBD disk may be promoted
(promotion_blockers). When no node holds them and the VIP does not serve (a failed start: heartbeat v1 gives the
group up and never retries), and that has lasted past heartbeat's own retry (settle_s: 45 s + 2 x deadtime from the
first bad look the nodes recorded), take them through heartbeat on a node whose heartbeat runs and whose disk may be
promoted, the preferred node first, once per `cooldown`. Never restart or move from a DATA_PATH that lacks changes the
master acknowledged: a changelog hole that stops the restart, or a tail short of the version the node's master last
reported healthy (last_version, from the node's own beacon record; a full disk) is filled once from the metaloggers'
copy of the change stream (the one that holds every missing change) and the step run again; if none holds them,
stay down. A storage
with less free space than its reserve (storage:reserve_mb) gets the reserve back before the restart.
Anything else is refused with the reason. Each run fires `mfsha/failover/<result>` with its reason and timeline.
"""
import contextlib
import fcntl
import importlib
import json
import logging
import os
import time

import salt.client
import salt.exceptions
import salt.fileclient
import salt.pillar
import salt.utils.minions
import yaml

import mfsha_event
import mfsha_files  # synced _utils (salt-run saltutil.sync_all on the master)
import mfsha_fill
import mfsha_glob
import mfsha_mfs
import mfsha_pillar
import mfsha_redact

# A running minion or master keeps a module's first import; the synced _utils of an upgrade must load too (mfsha_mfs
# uses mfsha_files, mfsha_pillar uses mfsha_glob and mfsha_redact: those first).
for _mod in (mfsha_event, mfsha_files, mfsha_mfs, mfsha_glob, mfsha_redact, mfsha_pillar, mfsha_fill):
    importlib.reload(_mod)

log = logging.getLogger(__name__)
__virtualname__ = "mfsha"
HISTORY = 50  # entries kept per cluster


def __virtual__():
    return __virtualname__


# ---- the master's view: pillar, persistent book, minion calls ---------------------------------------------------

def _defaults():
    client = salt.fileclient.FSClient(__opts__)
    try:
        path = client.cache_file("salt://mfsha/defaults.yaml", "base")
    finally:
        client.destroy()
    if not path:
        raise salt.exceptions.SaltInvocationError("mfsha: salt://mfsha/defaults.yaml not found in file_roots")
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _clusters():
    """Every cluster of the Salt master's own pillar (give it each site's pillar), validated."""
    pillar = salt.pillar.get_pillar(__opts__, __grains__ if "__grains__" in globals() else {}, __opts__["id"],
                                    saltenv="base").compile_pillar()
    return mfsha_pillar.validate(pillar.get("mfsha"), _defaults())


def cluster_of(clusters, minion):
    """Name of the cluster whose master nodes include `minion`, else None (membership, not the event's word)."""
    return next((name for name, c in clusters.items() if minion in [n["id"] for n in c["nodes"]]), None)


def _dir():
    path = os.path.join(__opts__["cachedir"], "mfsha")
    os.makedirs(path, exist_ok=True)
    return path


def _book(name):
    try:
        with open(os.path.join(_dir(), f"{name}.json"), encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return {"maintenance": False, "history": []}


def _save(name, book):
    book["history"] = book["history"][-HISTORY:]
    mfsha_files.write_durably(os.path.join(_dir(), f"{name}.json"), json.dumps(book, indent=1))


@contextlib.contextmanager
def _lock(name):
    """One recovery or switchover per cluster at a time; a second one yields False instead of waiting."""
    with open(os.path.join(_dir(), f"{name}.lock"), "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


def _call(minions, fun, kwarg=None, timeout=10, tgt_type="list"):
    """{minion: (ok, return)} of `fun` on every minion of the list; no answer is (False, "no answer"). With another
    tgt_type, `minions` is that target and the minions that answered are reported."""
    client = salt.client.get_local_client(__opts__["conf_file"])
    ret = client.cmd(minions, fun, kwarg=kwarg or {}, tgt_type=tgt_type, timeout=timeout, full_return=True)
    out = {}
    for m in minions if tgt_type == "list" else sorted(ret):
        r = ret.get(m)
        if not isinstance(r, dict) or "ret" not in r:
            out[m] = (False, "no answer")
        else:
            out[m] = (r.get("retcode", 0) == 0 and r.get("success", True), r["ret"])
    return out


def _node_kwargs(c):
    st = c["storage"]
    # one call for both nodes: each picks its own peer from the map
    peers = {n["id"]: next(p["hostname"] for p in c["nodes"] if p["id"] != n["id"]) for n in c["nodes"]}
    return {"cluster": c["name"], "vip": c["vip"]["address"], "interface": c["vip"]["interface"],
            "port": c["master"]["config"]["MATOCL_LISTEN_PORT"], "mountpoint": st["mountpoint"],
            "storage": st["type"], "resource": st["drbd"]["resource"], "peer": peers, "timeout": 1.0}


# What THE RULE reads of a node_state answer: key -> accepted types (a different module version, or a broken one,
# must read as "no usable answer", never crash the runner)
SHAPE = {"active": (bool,), "vip": (bool,), "mounted": (bool,), "heartbeat": (dict,), "master": (dict, type(None)),
         "drbd": (dict, type(None)), "blockers": (list, type(None)), "vip_serves": (bool, type(None)),
         "record": (dict, type(None))}


def malformed(state):
    """Why a node_state answer cannot be used (missing or mistyped keys), or None."""
    if not isinstance(state, dict):
        return f"answer is a {type(state).__name__}, not node_state's mapping"
    bad = [k for k, types in SHAPE.items() if not isinstance(state.get(k), types)]
    hb = state.get("heartbeat") or {}
    if not bad and not (isinstance(hb.get("running"), bool) and isinstance(hb.get("resources"), (str, type(None)))):
        bad.append("heartbeat")
    return f"malformed node_state answer (missing or mistyped: {', '.join(bad)})" if bad else None


def _facts(c, nodes=None, client=True):
    """Fresh mfsha.node_state of the cluster's nodes, {id: state | {"answered": False, "error"}}; client=False skips
    the passive nodes' probe of the VIP."""
    nodes = nodes or [n["id"] for n in c["nodes"]]
    ret = _call(nodes, "mfsha.node_state", dict(_node_kwargs(c), client=client), timeout=8)
    out = {}
    for node, (ok, r) in ret.items():
        why = None if not ok else malformed(r)
        out[node] = dict(r, answered=True) if ok and not why else {"answered": False, "error": why or r}
    return out


SERVICE_CHECKS = ("master", "storage", "vip", "service")  # the beacon checks that mean "clients are not served"


def first_down(facts, now):
    """When the service was first seen down, by the nodes' own beacon records (node_state's `record`), never by an
    event: the earliest `since` of a service check a node reports down, at most `now`; `now` when none does."""
    times = [t for f in facts.values() if f.get("answered")
             for what, t in ((f.get("record") or {}).get("down") or {}).items()
             if what in SERVICE_CHECKS and isinstance(t, (int, float)) and not isinstance(t, bool)]
    return min(min(times), now) if times else now


def own_last_version(facts, node):
    """The metadata version NODE's master last reported healthy, from NODE's own beacon record (None: unknown)."""
    version = ((facts.get(node) or {}).get("record") or {}).get("last_version")
    return version if isinstance(version, int) and not isinstance(version, bool) and version > 0 else None


def _serving(c):
    """(ok, detail) of a protocol probe of the VIP from the Salt master, like a client sees it."""
    ok, _, detail = mfsha_mfs.probe(c["vip"]["address"], int(c["master"]["config"]["MATOCL_LISTEN_PORT"]), 1.0)
    return ok, detail


def _serves(state):
    """The node holds VIP and storage and its mfsmaster answers the protocol (seen from the node itself)."""
    return bool(state.get("answered") and state["vip"] and state["mounted"] and (state["master"] or {}).get("healthy"))


def _look(c):
    """(facts, outside): fresh looks at both nodes, and the Salt master's own probe of the VIP (None when THE RULE
    does not need it). The client's view of the VIP is taken only when the one holder serves locally or nobody holds
    the group: on the restart path a hung master would only cost the probes' timeouts."""
    facts = _facts(c, client=False)
    holders = _holders(facts)
    if len(holders) > 1 or (holders and not _serves(facts[holders[0]])):
        return facts, None
    others = [n for n, f in sorted(facts.items()) if n not in holders and f.get("answered")]
    if others:
        facts.update(_facts(c, others))
    outside = None
    if not holders or any(facts[n].get("vip_serves") is False for n in others):
        outside = _serving(c)[0]
    return facts, outside


# ---- the decision (pure) -----------------------------------------------------------------------------------------

def settle_s(c):
    """How long nobody may hold the group before the loop takes it: after a failed start heartbeat v1 gives the group
    up and runs `sleep 30; hb_standby` (the peer's one try; ResourceManager), after MFSMaster's own bounded retries
    (~10 s); a takeover before that is swallowed or undone."""
    return 45 + 2 * c["heartbeat"]["deadtime"]


def _holders(facts):
    return [n for n, f in sorted(facts.items()) if f.get("answered") and f["active"]]


def move_blockers(facts, active, peer):
    """Reasons not to hand the resources from `active` to `peer` through heartbeat; empty when it is safe."""
    a, p = facts[active], facts[peer]
    reasons = []
    if not a.get("answered"):
        reasons.append(f"no answer from {active}: {a.get('error')}")
    elif not a["heartbeat"]["running"]:
        reasons.append(f"heartbeat is not running on {active}: it cannot hand the resources over")
    if not p.get("answered"):
        reasons.append(f"no answer from peer {peer}: {p.get('error')}")
        return reasons
    if not p["heartbeat"]["running"]:
        reasons.append(f"heartbeat is not running on peer {peer}")
    if p.get("blockers"):
        reasons.append(f"peer {peer} may not be promoted: {'; '.join(p['blockers'])}")
    return reasons


def _recent(book, actions, now, window):
    return [h for h in book.get("history", []) if h["action"] in actions and now - h["time"] < window]


def _nobody(c, facts, book, now, vip_serves):
    """THE RULE when no node holds the resources."""
    out = {"action": "refuse", "reason": "", "node": None, "peer": None}
    if vip_serves:
        return dict(out, reason="no node says it holds the resources, yet the VIP serves: a human decides")
    if vip_serves is None:
        return dict(out, action="wait", reason="no node holds the storage or VIP: heartbeat owns them (start or "
                                               "host death)")
    why, able = [], []
    for n in sorted((n["id"] for n in c["nodes"]), key=lambda i: i != c["preferred"]):
        f = facts[n]
        if not f.get("answered"):
            why.append(f"no answer from {n}")
        elif not f["heartbeat"]["running"]:
            why.append(f"heartbeat is not running on {n}")
        elif f.get("blockers"):
            why.append(f"{n} may not be promoted: {'; '.join(f['blockers'])}")
        else:
            able.append(n)
    head = "no node holds the resources and the VIP does not serve"
    if not able:
        return dict(out, reason=f"{head}; {'; '.join(why)}")
    taken = _recent(book, ("takeover",), now, c["failover"]["cooldown"])
    if taken:
        return dict(out, reason=f"{head}; flap guard: a takeover {round(now - taken[-1]['time'])} s ago did not keep "
                                f"them (cooldown {c['failover']['cooldown']} s): a human decides")
    return dict(out, action="takeover", node=able[0],
                reason=f"{head}: take them on {able[0]} through heartbeat")


def _rejoin(c, facts, book, now, node, peer):
    """THE RULE while NODE serves: a peer that answers, holds nothing and runs no heartbeat gets it started again
    (else the next fault of NODE has nobody to move to), once per cooldown; None when there is nothing to do."""
    p = facts[peer]
    if not p.get("answered") or p["active"] or p["heartbeat"]["running"] or not facts[node]["heartbeat"]["running"]:
        return None
    out = {"action": "refuse", "node": peer, "peer": node}
    head = f"heartbeat is not running on {peer}, which holds nothing, while {node} serves"
    tried = [h for h in _recent(book, ("rejoin",), now, c["failover"]["cooldown"]) if h["node"] == peer]
    if tried:
        return dict(out, reason=f"{head}; flap guard: the loop started it {round(now - tried[-1]['time'])} s ago "
                                f"(cooldown {c['failover']['cooldown']} s)")
    return dict(out, action="rejoin", reason=f"{head}: start it there")


def decide(c, facts, book, now, restart_failed=False, vip_serves=None):
    """THE RULE (module docstring) -> {"action": none|rejoin|restart|move|takeover|refuse|wait|suppress|ignore,
    "reason", "node", "peer"}. `facts` are fresh node_state looks at both nodes; `book` the cluster's persistent record;
    `vip_serves` the Salt master's own probe of the VIP (None: not taken)."""
    f = c["failover"]
    out = {"action": "refuse", "reason": "", "node": None, "peer": None}
    if not f["enabled"]:
        return dict(out, action="ignore", reason="failover is disabled in the pillar (failover:enabled)")
    if f["maintenance"] or book.get("maintenance"):
        src = "pillar failover:maintenance" if f["maintenance"] else "salt-run mfsha.maintenance"
        return dict(out, action="suppress", reason=f"maintenance is on ({src}): report only")
    moving = [n for n, s in sorted(facts.items()) if s.get("answered") and s["heartbeat"]["resources"] == "transition"]
    if moving:
        return dict(out, action="wait", reason=f"heartbeat on {', '.join(moving)} is moving the resources")
    holders = _holders(facts)
    if len(holders) > 1:
        return dict(out, reason=f"both nodes hold storage or VIP ({', '.join(holders)}): a human decides")
    if not holders:
        return _nobody(c, facts, book, now, vip_serves)
    node = holders[0]
    peer = next(n["id"] for n in c["nodes"] if n["id"] != node)
    out.update(node=node, peer=peer)
    a = facts[node]
    restarts = _recent(book, ("restart",), now, f["cooldown"])
    why = []
    if _serves(a):
        if vip_serves is not False or facts[peer].get("vip_serves") is not False:
            return _rejoin(c, facts, book, now, node, peer) or dict(
                out, action="none", reason=f"{node} holds storage and VIP and mfsmaster answers")
        why.append(f"mfsmaster on {node} answers there, but the VIP does not serve from {peer} nor from the Salt "
                   "master (firewall or network of the active node)")
    elif restart_failed:
        why.append("the in-place restart did not serve")
    elif not (a["vip"] and a["mounted"]):
        why.append(f"{node} holds {'the VIP' if a['vip'] else 'the storage'} only")
    elif not a["heartbeat"]["running"]:
        why.append(f"heartbeat is not running on {node}")
    elif len(restarts) >= f["restart_budget"]:
        why.append(f"restart budget spent ({len(restarts)} of {f['restart_budget']} in {f['cooldown']} s)")
    else:
        return dict(out, action="restart", reason=f"mfsmaster on {node} fails ({(a['master'] or {}).get('detail')}); "
                                                  f"restart {len(restarts) + 1} of {f['restart_budget']}")
    moves = _recent(book, ("move", "switchover", "takeover"), now, f["cooldown"])
    if moves:
        ago = round(now - moves[-1]["time"])
        return dict(out, reason=f"{'; '.join(why)}; flap guard: the resources moved {ago} s ago "
                                f"(cooldown {f['cooldown']} s)")
    blockers = move_blockers(facts, node, peer)
    if blockers:
        return dict(out, reason=f"{'; '.join(why)}; cannot move: {'; '.join(blockers)}")
    return dict(out, action="move", reason=f"{'; '.join(why)}: hand the resources to {peer} through heartbeat")


# ---- acting ------------------------------------------------------------------------------------------------------

def _fire(tag, data):
    __salt__["event.send"](tag, data)


def _note_nodes(c, book):
    """Tell the nodes the maintenance flag and the last failover (for `salt-call mfsha.status`); fire and forget."""
    client = salt.client.get_local_client(__opts__["conf_file"])
    client.cmd_async([n["id"] for n in c["nodes"]], "mfsha.note",
                     kwarg={"book": {"maintenance": book.get("maintenance", False), "last": book.get("last")}},
                     tgt_type="list")


def _wait_peer_serves(c, peer, timeout):
    """Poll the peer until it holds the resources and its mfsmaster answers; returns its state or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = _facts(c, [peer])[peer]
        if _serves(state):
            return state
        time.sleep(0.5)
    return None


def _restart(c, node, expect=None, tail_checked=False):
    f = c["failover"]
    # no grace: the master failed the protocol probe on `debounce` beacon looks and on our own fresh look; a failing
    # master does not save anyway, and -a replays the changelogs (CHANGELOG_SAVE_MODE 2)
    ok, ret = _call([node], "mfsha.restart_master",
                    {"cfg": f"{c['storage']['mountpoint']}/mfsmaster.cfg", "timeout": f["serve_timeout"], "grace": 0,
                     "expect_version": expect, "tail_checked": tail_checked, "vip": c["vip"]["address"]},
                    timeout=f["serve_timeout"] + 20)[node]
    return ok, ret


HOLE = "hole in change files"  # what `mfsmaster -a` says when a changelog entry it needs is missing


def _lacks_changes(error):
    """The restart stopped because DATA_PATH lacks changes: a hole (`mfsmaster -a`) or a tail (restart_master)."""
    return HOLE in str(error) or mfsha_mfs.MISSING in str(error)


def _fill(c, node, expect=None):
    """NODE's DATA_PATH may lack changes its master acknowledged: a hole (the restart stopped at it), the tail up to
    `expect` (the version its master last reported), or an unknown tail (the storage was full). The metaloggers
    keep their own copy of the change stream: copy their changes from the replay start (the metadata file's
    version) on into DATA_PATH (mfsmaster.add_changelog): one gapless file closes every hole, also one that only
    `mfsmaster -a` sees, and replaces an earlier fill safely. Only what mfsha_fill.verdict accepts is written: lines
    of the cluster's own metaloggers that agree with DATA_PATH and each other, every metalogger answering. An
    unknown tail that no metalogger extends is no loss. Returns (note, None) when DATA_PATH is complete, else
    (None, why not)."""
    cfg = f"{c['storage']['mountpoint']}/mfsmaster.cfg"
    ok, disk = _call([node], "mfsmaster.data_path_ok", {"cfg": cfg})[node]
    if not ok or not isinstance(disk, dict) or disk.get("version") is None:
        return None, f"reading {node}'s DATA_PATH failed: {disk}"
    start = disk["metadata_version"]
    gap = disk.get("hole") or {"from": disk["version"], "to": expect - 1 if expect else None}
    if gap["to"] is not None and gap["to"] < gap["from"]:
        gap["to"] = None  # DATA_PATH reaches `expect`: only an unknown tail is left to look for
    targets = c["metaloggers"]["targets"]
    if not targets:
        return (f"no metaloggers to compare {node}'s changelog with", None) if gap["to"] is None else (
            None, f"changes {gap['from']}..{gap['to']} are missing and there are no metaloggers to fill them from")
    ok, own = _call([node], "mfsmaster.changelog_digests", {"since": start, "cfg": cfg}, timeout=30)[node]
    if not ok or not isinstance(own, dict):
        return None, f"reading {node}'s changelog entries failed: {own}"
    v = _metaloggers_verdict(c, gap, start, {ver: d for ver, d in own["digests"]})
    if v["action"] == "refuse":
        return None, f"the metalogger fill is refused: {'; '.join(v['problems'])}"
    if v["action"] == "complete":
        return v["note"], None
    ok, after = _call([node], "mfsmaster.add_changelog", {"lines": v["lines"], "cfg": cfg}, timeout=60)[node]
    source = ", ".join(v["source"])
    if not ok:
        return None, f"writing {source}'s changes into {node}'s DATA_PATH failed: {after}"
    if after.get("hole") or (after.get("version") or 0) <= max(v["last"], (expect or 0) - 1):
        return None, f"{source}'s changes did not complete {node}'s DATA_PATH: {after['problems'] or after['version']}"
    return (f"changes {gap['from']}..{v['last']} were missing in {node}'s changelog: {len(v['lines'])} changes "
            f"from {v['first']} on copied from metalogger {source}"), None


def _metaloggers_verdict(c, gap, start, own):
    """mfsha_fill.verdict on what the metalogger targets' minions answer to mfsmaster.changelog_since, against the
    minions the targets match on the Salt master (a silent one makes the tail unknown) and the Salt master's pillar
    now (a master node or another cluster's minion is refused)."""
    targets = " or ".join(c["metaloggers"]["targets"])
    expected = salt.utils.minions.CkMinions(__opts__).check_minions(targets, "compound")["minions"]
    data_path = c["metaloggers"]["config"].get("DATA_PATH", "/var/lib/mfs")
    answers = _call(targets, "mfsmaster.changelog_since", {"since": start, "data_path": data_path}, timeout=30,
                    tgt_type="compound")
    outside = mfsha_fill.outsiders(sorted(set(answers) | set(expected)), _clusters(), c["name"])
    return mfsha_fill.verdict(answers, expected, outside, own, gap, start)


def _move(c, node, peer, expect=None):
    if expect:  # the peer replays the same storage: it must hold what NODE's master acknowledged (see _fill)
        cfg = f"{c['storage']['mountpoint']}/mfsmaster.cfg"
        ok, gap = _call([node], "mfsmaster.missing_changes", {"version": expect, "cfg": cfg})[node]
        if not ok:
            return False, f"checking {node}'s DATA_PATH before the handover failed: {gap}"
        if gap:
            filled, why = _fill(c, node, expect)
            if not filled:
                return False, f"not handed over: {mfsha_mfs.MISSING} ({gap}) and {why}"
    ok, ret = _call([node], "heartbeat.handover", timeout=45)[node]
    if not ok:
        return False, f"hb_standby on {node} failed: {ret}"
    state = _wait_peer_serves(c, peer, c["failover"]["serve_timeout"])
    if state is None:
        return False, f"{peer} did not serve within {c['failover']['serve_timeout']} s after hb_standby on {node}"
    return True, {"handover": ret, "metadata_version": state["master"]["metadata_version"]}


def _take(c, node):
    f, hb = c["failover"], c["heartbeat"]
    limit = hb["initdead"] + f["serve_timeout"] + 30  # a heartbeat restart (peer dead) waits initdead first
    ok, ret = _call([node], "heartbeat.takeover", {"timeout": limit}, timeout=limit + 20)[node]
    if not ok:
        return False, f"takeover on {node} failed: {ret}"
    state = _wait_peer_serves(c, node, f["serve_timeout"])
    if state is None:
        return False, f"{node} took the resources ({ret}) but does not serve within {f['serve_timeout']} s"
    return True, {"takeover": ret, "metadata_version": state["master"]["metadata_version"]}


def _rejoin_heartbeat(name, c, book, d, tl, common):
    """Start heartbeat on the standby (mfsha.rejoin); one still shutting down is left to finish (waiting)."""
    ok, ret = _call([d["node"]], "heartbeat.rejoin", {"timeout": 45}, timeout=45 * 2 + 80)[d["node"]]
    tl["rejoined"] = time.time()
    if ok and not ret.get("started"):
        return _result(name, "waiting", f"{d['reason']}; {ret['why']}", tl, detail=ret, **common)
    _record(name, c, book, {"time": tl["decided"], "action": "rejoin", "node": d["node"], "result": ok,
                            "duration_s": round(tl["rejoined"] - tl["detected"], 2), "reason": d["reason"]})
    if ok:
        return _result(name, "rejoined", d["reason"], tl, detail=ret, **common)
    return _result(name, "failed", f"{d['reason']}; starting heartbeat on {d['node']} failed: {ret}", tl, **common)


def _record(name, c, book, entry):
    book.setdefault("history", []).append(entry)
    if entry["action"] in ("restart", "move", "switchover", "takeover"):
        book["last"] = entry
    _save(name, book)
    try:
        _note_nodes(c, book)
    except Exception as exc:  # noqa: BLE001 - the note is informational; the failover result stands
        log.warning("mfsha: could not note the book on the nodes of %s: %s", name, exc)


def _result(name, result, reason, timeline, **extra):
    reason = mfsha_redact.text(reason)  # the one exit of every run's text: events, logs, the orchestration's output
    data = dict(extra, cluster=name, result=result, reason=reason, timeline=timeline)
    t0 = timeline.get("detected") or timeline.get("decided")
    data["durations_s"] = {k: round(v - t0, 2) for k, v in timeline.items() if v and t0}
    _fire(f"mfsha/failover/{result}", data)
    log.warning("mfsha: failover %s for %s: %s", result, name, reason)
    return data


def recover(minion=None, event=None):
    """The failover loop's action for one event (mfsha/orch/recover.sls). `event` is the reactor's JSON string of
    {tag, data} (or such a dict); it is only a hint of which cluster to look at (mfsha_event.hint): `minion`, else
    the event's id, names a master node, and its cluster is looked at afresh. Nothing else of the event is used:
    when the service went down and the metadata version its master last reported come from the nodes' own beacon
    records (node_state's `record`).

    Re-checks both nodes, applies THE RULE and acts; fires and returns {"result": healthy|ignored|suppressed|waiting|
    refused|skipped|rejoined|restarted|moved|taken_over|failed, "reason", "timeline", "decision", "cluster", "minion",
    "trigger"}. Every run ends with its `mfsha/failover/<result>` event, also when something breaks."""
    tl = {"started": time.time()}
    hint = mfsha_event.hint(event, minion)
    common = {"minion": hint["minion"], "trigger": hint["tag"]}
    try:
        clusters = _clusters()
        name = cluster_of(clusters, hint["minion"])
        if name is None:
            why = "; ".join([f"{hint['minion']!r} is not a master node of any cluster in the pillar"] +
                            hint["problems"])
            return _result(None, "ignored", why, tl, **common)
        with _lock(name) as mine:
            if not mine:
                return _result(name, "skipped", "another recovery or switchover of this cluster is running", tl,
                               **common)
            return _recover(name, clusters[name], tl, common)
    except Exception as exc:  # noqa: BLE001 - the loop's result event is owed whatever broke
        log.exception("mfsha: recover failed")
        return _result(None, "failed", f"mfsha.recover failed: {type(exc).__name__}: {exc}", tl, **common)


def _decide_settled(name, c, tl):
    """A fresh look and THE RULE; when nobody holds the group, heartbeat gets its own retry first (settle_s from
    the first down the nodes recorded), and the look is taken again until then. Returns (decision, facts)."""
    book = _book(name)
    facts, outside = _look(c)
    tl["looked"] = time.time()
    tl["detected"] = first_down(facts, tl["started"])
    d = decide(c, facts, book, time.time(), vip_serves=outside)
    end = tl["detected"] + settle_s(c)
    while d["action"] == "takeover" and time.time() < end:
        time.sleep(min(2.0, max(0.1, end - time.time())))
        book = _book(name)  # an operator may switch maintenance on meanwhile
        facts, outside = _look(c)
        d = decide(c, facts, book, time.time(), vip_serves=outside)
    tl["decided"] = time.time()
    return d, facts


def _recover(name, c, tl, common):
    d, facts = _decide_settled(name, c, tl)
    common = dict(common, decision=d)
    results = {"none": "healthy", "ignore": "ignored", "suppress": "suppressed", "wait": "waiting",
               "refuse": "refused"}
    if d["action"] in results:
        return _result(name, results[d["action"]], d["reason"], tl, **common)
    book = _book(name)
    if d["action"] == "rejoin":
        return _rejoin_heartbeat(name, c, book, d, tl, common)
    # the acting node's own record: the version its master last reported healthy (a restart must replay that far)
    expect = own_last_version(facts, d["node"])
    if d["action"] == "restart":
        d = _restart_or_decide(name, c, book, d, tl, common, expect)
        if "result" in d:
            return d
        common["decision"] = d
    if d["action"] == "takeover":
        ok, ret = _take(c, d["node"])
        tl["taken"] = time.time()
        if ok:
            tl["serving"] = tl["taken"]
        _record(name, c, book, {"time": tl["decided"], "action": "takeover", "node": d["node"], "result": ok,
                                "duration_s": round(tl["taken"] - tl["detected"], 2), "reason": d["reason"]})
        return _result(name, "taken_over" if ok else "failed", d["reason"] if ok else ret, tl, detail=ret, **common)
    ok, ret = _move(c, d["node"], d["peer"], expect)
    tl["moved"] = time.time()
    if ok:
        tl["serving"] = tl["moved"]
    _record(name, c, book, {"time": tl["decided"], "action": "move", "node": d["node"], "to": d["peer"],
                            "result": ok, "duration_s": round(tl["moved"] - tl["detected"], 2), "reason": d["reason"]})
    return _result(name, "moved" if ok else "failed", d["reason"] if ok else ret, tl, detail=ret, **common)


def _restart_or_decide(name, c, book, d, tl, common, expect):
    """The in-place restart (with a fill from the metaloggers when DATA_PATH lacks changes). Returns the run's
    result when it ends here, else the decision after a failed restart (a move)."""
    ok, ret = _restart(c, d["node"], expect)
    if not ok and _lacks_changes(ret):
        filled, why = _fill(c, d["node"], expect)
        tl["filled"] = time.time()
        if filled:
            d["reason"] += f"; {filled}"
            ok, ret = _restart(c, d["node"], expect, tail_checked=True)
        else:
            ret = f"{ret}; {why}"
    tl["restarted"] = time.time()
    _record(name, c, book, {"time": tl["decided"], "action": "restart", "node": d["node"], "result": ok,
                            "duration_s": round(tl["restarted"] - tl["detected"], 2), "reason": d["reason"]})
    if ok:
        tl["serving"] = tl["restarted"]
        return _result(name, "restarted", d["reason"], tl, detail=ret, **common)
    log.warning("mfsha: restart on %s failed: %s", d["node"], ret)
    if _lacks_changes(ret):  # the peer would replay the same storage: stay down
        return _result(name, "failed", f"restart failed ({ret}); not moved: the peer would replay the same "
                       "storage without those changes", tl, **common)
    facts, outside = _look(c)
    after = decide(c, facts, book, time.time(), restart_failed=True, vip_serves=outside)
    if after["action"] != "move":
        return _result(name, "failed", f"restart failed ({ret}); {after['reason']}", tl, **dict(common,
                                                                                                decision=after))
    return after


# ---- operator commands ---------------------------------------------------------------------------------------------

def _cluster(name):
    clusters = _clusters()
    if name not in clusters:
        raise salt.exceptions.SaltInvocationError(f"mfsha: no cluster {name!r} in the pillar ({', '.join(clusters)})")
    return clusters[name]


def switchover_blockers(c, facts, book):
    """Reasons to refuse a planned handover; empty when it is safe."""
    if c["failover"]["maintenance"] or book.get("maintenance"):
        return ["maintenance is on: switch it off first (salt-run mfsha.maintenance <cluster> off)"]
    moving = [n for n, s in sorted(facts.items()) if s.get("answered") and s["heartbeat"]["resources"] == "transition"]
    if moving:
        return [f"heartbeat on {', '.join(moving)} is moving the resources"]
    holders = _holders(facts)
    if len(holders) != 1:
        silent = [n for n, s in sorted(facts.items()) if not s.get("answered")]
        return [f"{len(holders)} nodes hold the resources ({', '.join(holders) or 'none'})" +
                (f"; no answer from {', '.join(silent)}" if silent else "")]
    peer = next(n["id"] for n in c["nodes"] if n["id"] != holders[0])
    return move_blockers(facts, holders[0], peer)


def switchover(cluster):
    """Planned handover of `cluster` to the passive node through heartbeat, after the pre-checks.

    Returns {"result": switched|refused|failed, "reasons" or "from"/"to"/"seconds"/"metadata_version"}.

    CLI Example: salt-run mfsha.switchover paris"""
    c = _cluster(cluster)
    with _lock(cluster) as mine:
        if not mine:
            return {"result": "refused", "reasons": ["a recovery or switchover of this cluster is running"]}
        book = _book(cluster)
        facts = _facts(c)
        reasons = switchover_blockers(c, facts, book)
        if reasons:
            _fire("mfsha/switchover/refused", {"cluster": cluster, "reasons": reasons})
            return {"result": "refused", "reasons": reasons}
        node = _holders(facts)[0]
        peer = next(n["id"] for n in c["nodes"] if n["id"] != node)
        t0 = time.time()
        ok, ret = _move(c, node, peer)
        entry = {"time": t0, "action": "switchover", "node": node, "to": peer, "result": ok,
                 "duration_s": round(time.time() - t0, 2), "reason": "salt-run mfsha.switchover"}
        _record(cluster, c, book, entry)
        out = {"result": "switched" if ok else "failed", "from": node, "to": peer, "seconds": entry["duration_s"]}
        out.update(ret if ok else {"reasons": [ret]})
        _fire(f"mfsha/switchover/{out['result']}", dict(out, cluster=cluster))
        return out


def maintenance(cluster, state="on"):
    """Switch the maintenance flag of `cluster`: while on, the failover loop only reports.

    CLI Example: salt-run mfsha.maintenance paris on"""
    flag = {"on": True, "off": False, True: True, False: False}.get(state if isinstance(state, bool) else str(state).lower())
    if flag is None:
        raise salt.exceptions.SaltInvocationError(f"mfsha: maintenance state must be on or off, not {state!r}")
    c = _cluster(cluster)
    book = _book(cluster)
    book["maintenance"] = flag
    _save(cluster, book)
    _note_nodes(c, book)
    _fire(f"mfsha/maintenance/{'on' if flag else 'off'}", {"cluster": cluster})
    return {"cluster": cluster, "maintenance": flag, "pillar_maintenance": c["failover"]["maintenance"]}


def _cell(value, width):
    return str("-" if value is None else value)[:width].ljust(width)


def table(c, facts, book, serving):
    """The status table of one cluster (text)."""
    last = book.get("last")
    lines = [f"cluster {c['name']}: VIP {c['vip']['address']} {'serves' if serving[0] else 'DOES NOT SERVE'} "
             f"({serving[1]}); maintenance {'on' if c['failover']['maintenance'] or book.get('maintenance') else 'off'}"
             f"; failover {'enabled' if c['failover']['enabled'] else 'disabled'}",
             "  last failover: " + (f"{last['action']} {last['node']}{' -> ' + last['to'] if last.get('to') else ''} "
                                    f"at {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(last['time']))} UTC, "
                                    f"{'ok' if last['result'] else 'FAILED'}, {last['duration_s']} s"
                                    if last else "none"),
             "  " + "".join(_cell(h, w) for h, w in (("node", 12), ("role", 8), ("VIP", 5), ("storage", 9),
                                                      ("heartbeat", 18), ("mfsmaster", 10), ("metadata", 10),
                                                      ("drbd", 40)))]
    for n in c["nodes"]:
        s = facts[n["id"]]
        if not s.get("answered"):
            lines.append(f"  {_cell(n['id'], 12)}no answer: {s.get('error')}")
            continue
        m, d, hb = s["master"] or {}, s["drbd"], s["heartbeat"]
        drbd = (f"{d['role']} {d['disk']}/{d['peer_disk']} {d['connection']}"
                + (f" sync {d['sync_done']}%" if d.get("sync_done") is not None else "")
                + (" SPLIT-BRAIN" if d.get("split_brain") else "")) if d else "-"
        lines.append("  " + "".join(_cell(v, w) for v, w in (
            (n["id"], 12), ("active" if s["active"] else "passive", 8), ("yes" if s["vip"] else "no", 5),
            ("mounted" if s["mounted"] else "-", 9),
            (f"{'running' if hb['running'] else 'DOWN'} ({hb['resources'] or '-'})", 18),
            (("healthy" if m.get("healthy") else "FAILING") if s["master"] else "-", 10),
            (m.get("metadata_version"), 10), (drbd, 40))))
    return "\n".join(lines)


def status(cluster=None, fmt="table"):
    """Per cluster: active node, VIP holder, DRBD roles/disks/sync, mfsmaster health and metadata version per node,
    heartbeat state, maintenance flag, last failover and its duration. fmt=data returns the facts instead.

    CLI Example: salt-run mfsha.status"""
    clusters = _clusters()
    names = [cluster] if cluster else sorted(clusters)
    out = {}
    for name in names:
        if name not in clusters:
            raise salt.exceptions.SaltInvocationError(f"mfsha: no cluster {name!r} in the pillar")
        c, book = clusters[name], _book(name)
        facts, serving = _facts(c), _serving(c)
        holders = _holders(facts)
        if fmt == "data":
            out[name] = {"active": holders[0] if len(holders) == 1 else holders, "nodes": facts,
                         "vip_serves": serving[0], "vip_detail": serving[1],
                         "maintenance": c["failover"]["maintenance"] or book.get("maintenance", False),
                         "last_failover": book.get("last")}
        else:
            out[name] = table(c, facts, book, serving)
    return out
