"""THE RULE of the failover loop, pure Python (no Salt, no I/O): fresh looks at both nodes (node_state answers),
the cluster's settings and its book (maintenance flag, history) in; a decision with its reasons out. The runner
(_runners/mfsha.py) takes the looks, acts and records; docs/design.md explains why each clause is there.

THE RULE, evaluated on a fresh look at both nodes, never on the event (an event is only a hint of which cluster to
look at: any minion can forge one, see mfsha_event):
act only for a master node of a cluster in the Salt master's pillar, with failover enabled, no maintenance and
heartbeat not moving the resources. When exactly one node holds them: if its mfsmaster answers the protocol, do
nothing, unless the VIP fails both from the passive node and from the Salt master (a firewall: the master answers
only locally), which is a move; and if the peer answers, holds nothing and runs no heartbeat, start heartbeat there
(rejoin), once per `cooldown`. Otherwise restart mfsmaster in place (`-a`) if the node holds storage and VIP, its
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
stay down. A storage with less free space than its reserve (storage:reserve_mb) gets the reserve back before the
restart. Anything else is refused with the reason.
"""
import time

import mfsha_mfs  # synced _utils beside this one

# What THE RULE reads of a node_state answer: key -> accepted types (a different module version, or a broken one,
# must read as "no usable answer", never crash the runner)
SHAPE = {"active": (bool,), "vip": (bool,), "mounted": (bool,), "heartbeat": (dict,), "master": (dict, type(None)),
         "drbd": (dict, type(None)), "blockers": (list, type(None)), "vip_serves": (bool, type(None)),
         "record": (dict, type(None))}
SERVICE_CHECKS = ("master", "storage", "vip", "service")  # the beacon checks that mean "clients are not served"
MOVES = ("move", "switchover", "takeover")  # history actions that moved the resources (the flap guard's)
HISTORY = 50  # entries a cluster's book keeps
REPORTS = {"none": "healthy", "ignore": "ignored", "suppress": "suppressed", "wait": "waiting", "refuse": "refused"}
MISSING_CHANGES = mfsha_mfs.MISSING_CHANGES  # restart_master's `refused`: DATA_PATH lacks acknowledged changes


def answers(minions, ret):
    """{minion: (ok, return)} of a LocalClient.cmd(full_return=True) answer RET for MINIONS (None: the minions that
    answered); a minion without an answer is (False, "no answer"). ok needs retcode 0 and success."""
    out = {}
    for m in sorted(ret) if minions is None else minions:
        r = ret.get(m)
        ok = isinstance(r, dict) and "ret" in r
        out[m] = (r.get("retcode", 0) == 0 and r.get("success", True), r["ret"]) if ok else (False, "no answer")
    return out


def facts_of(answered):
    """{node: node_state | {"answered": False, "error"}} of the `answers` to mfsha.node_state: a failed call or a
    malformed answer is no answer."""
    out = {}
    for node, (ok, r) in answered.items():
        why = None if not ok else malformed(r)
        out[node] = dict(r, answered=True) if ok and not why else {"answered": False, "error": why or r}
    return out


def malformed(state):
    """Why a node_state answer cannot be used (missing or mistyped keys), or None."""
    if not isinstance(state, dict):
        return f"answer is a {type(state).__name__}, not node_state's mapping"
    bad = [k for k, types in SHAPE.items() if not isinstance(state.get(k), types)]
    hb = state.get("heartbeat") or {}
    if not bad and not (isinstance(hb.get("running"), bool) and isinstance(hb.get("resources"), (str, type(None)))):
        bad.append("heartbeat")
    return f"malformed node_state answer (missing or mistyped: {', '.join(bad)})" if bad else None


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


def cluster_of(clusters, minion):
    """Name of the cluster whose master nodes include `minion`, else None (membership, not the event's word)."""
    return next((name for name, c in clusters.items() if minion in [n["id"] for n in c["nodes"]]), None)


def peer_of(c, node):
    return next(n["id"] for n in c["nodes"] if n["id"] != node)


def serves(state):
    """The node holds VIP and storage and its mfsmaster answers the protocol (seen from the node itself)."""
    return bool(state.get("answered") and state["vip"] and state["mounted"] and (state["master"] or {}).get("healthy"))


def holders(facts):
    return [n for n, f in sorted(facts.items()) if f.get("answered") and f["active"]]


def client_view_needed(facts):
    """(passive nodes to probe the VIP from, whether the Salt master probes it too: None = decide after the passive
    probes). The client's view is taken only when the one holder serves locally or nobody holds the group: on the
    restart path a hung master would only cost the probes' timeouts."""
    held = holders(facts)
    if len(held) > 1 or (held and not serves(facts[held[0]])):
        return [], False
    return [n for n, f in sorted(facts.items()) if n not in held and f.get("answered")], (True if not held else None)


def settle_s(c):
    """How long nobody may hold the group before the loop takes it: after a failed start heartbeat v1 gives the group
    up and runs `sleep 30; hb_standby` (the peer's one try; ResourceManager), after MFSMaster's own bounded retries
    (~10 s); a takeover before that is swallowed or undone."""
    return 45 + 2 * c["heartbeat"]["deadtime"]


def entry(d, ok, tl, mark):
    """The history entry of decision D's action (what `recent`, the flap guard and the status table read): decided at
    tl["decided"], done at tl[MARK], its result OK, timed from the first down tl["detected"] (a switchover: from its
    start); a move or a switchover names where to."""
    out = {"time": tl["decided"], "action": d["action"], "node": d["node"], "result": ok,
           "duration_s": round(tl[mark] - tl["detected"], 2), "reason": d["reason"]}
    return dict(out, to=d["peer"]) if d["action"] in ("move", "switchover") else out


def add_entry(book, entry):
    """Append ENTRY to the book's history (the last HISTORY kept); a restart or a move is also the book's "last"
    (what status shows)."""
    book["history"] = (book.get("history", []) + [entry])[-HISTORY:]
    if entry["action"] in MOVES + ("restart",):
        book["last"] = entry


def durations(timeline):
    """Seconds from the first down (else the decision) to each mark of a run's timeline."""
    t0 = timeline.get("detected") or timeline.get("decided")
    return {k: round(v - t0, 2) for k, v in timeline.items() if v and t0}


def recent(book, actions, now, window):
    return [h for h in book.get("history", []) if h["action"] in actions and now - h["time"] < window]


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


def _decision(action="refuse", reason="", node=None, peer=None):
    return {"action": action, "reason": reason, "node": node, "peer": peer}


def _nobody(c, facts, book, now, vip_serves):
    """THE RULE when no node holds the resources."""
    if vip_serves:
        return _decision(reason="no node says it holds the resources, yet the VIP serves: a human decides")
    if vip_serves is None:
        return _decision("wait", "no node holds the storage or VIP: heartbeat owns them (start or host death)")
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
        return _decision(reason=f"{head}; {'; '.join(why)}")
    taken = recent(book, ("takeover",), now, c["failover"]["cooldown"])
    if taken:
        return _decision(reason=f"{head}; flap guard: a takeover {round(now - taken[-1]['time'])} s ago did not keep "
                                f"them (cooldown {c['failover']['cooldown']} s): a human decides")
    return _decision("takeover", f"{head}: take them on {able[0]} through heartbeat", able[0])


def _rejoin(c, facts, book, now, node, peer):
    """THE RULE while NODE serves: a peer that answers, holds nothing and runs no heartbeat gets it started again
    (else the next fault of NODE has nobody to move to), once per cooldown; None when there is nothing to do."""
    p = facts[peer]
    if not p.get("answered") or p["active"] or p["heartbeat"]["running"] or not facts[node]["heartbeat"]["running"]:
        return None
    head = f"heartbeat is not running on {peer}, which holds nothing, while {node} serves"
    tried = [h for h in recent(book, ("rejoin",), now, c["failover"]["cooldown"]) if h["node"] == peer]
    if tried:
        return _decision(reason=f"{head}; flap guard: the loop started it {round(now - tried[-1]['time'])} s ago "
                                f"(cooldown {c['failover']['cooldown']} s)", node=peer, peer=node)
    return _decision("rejoin", f"{head}: start it there", peer, node)


def _gate(c, facts, book):
    """The decisions taken before the holders are looked at (failover off, maintenance, a move under way), or None."""
    f = c["failover"]
    if not f["enabled"]:
        return _decision("ignore", "failover is disabled in the pillar (failover:enabled)")
    if f["maintenance"] or book.get("maintenance"):
        src = "pillar failover:maintenance" if f["maintenance"] else "salt-run mfsha.maintenance"
        return _decision("suppress", f"maintenance is on ({src}): report only")
    moving = [n for n, s in sorted(facts.items()) if s.get("answered") and s["heartbeat"]["resources"] == "transition"]
    if moving:
        return _decision("wait", f"heartbeat on {', '.join(moving)} is moving the resources")
    return None


def decide(c, facts, book, now, restart_failed=False, vip_serves=None):
    """THE RULE (module docstring) -> {"action": none|rejoin|restart|move|takeover|refuse|wait|suppress|ignore,
    "reason", "node", "peer"}. `facts` are fresh node_state looks at both nodes; `book` the cluster's persistent record;
    `vip_serves` the Salt master's own probe of the VIP (None: not taken)."""
    gate = _gate(c, facts, book)
    if gate:
        return gate
    held = holders(facts)
    if len(held) > 1:
        return _decision(reason=f"both nodes hold storage or VIP ({', '.join(held)}): a human decides")
    if not held:
        return _nobody(c, facts, book, now, vip_serves)
    node, f = held[0], c["failover"]
    peer, a = peer_of(c, node), facts[node]
    restarts = recent(book, ("restart",), now, f["cooldown"])
    if serves(a):
        if vip_serves is not False or facts[peer].get("vip_serves") is not False:
            return _rejoin(c, facts, book, now, node, peer) or _decision(
                "none", f"{node} holds storage and VIP and mfsmaster answers", node, peer)
        why = (f"mfsmaster on {node} answers there, but the VIP does not serve from {peer} nor from the Salt master "
               "(firewall or network of the active node)")
    elif restart_failed:
        why = "the in-place restart did not serve"
    elif not (a["vip"] and a["mounted"]):
        why = f"{node} holds {'the VIP' if a['vip'] else 'the storage'} only"
    elif not a["heartbeat"]["running"]:
        why = f"heartbeat is not running on {node}"
    elif len(restarts) >= f["restart_budget"]:
        why = f"restart budget spent ({len(restarts)} of {f['restart_budget']} in {f['cooldown']} s)"
    else:
        return _decision("restart", f"mfsmaster on {node} fails ({(a['master'] or {}).get('detail')}); "
                                    f"restart {len(restarts) + 1} of {f['restart_budget']}", node, peer)
    return _move_or_refuse(c, facts, book, now, why, node, peer)


def _move_or_refuse(c, facts, book, now, why, node, peer):
    """THE RULE once the holder cannot serve in place: a move, unless the flap guard or the peer forbids it."""
    moves = recent(book, MOVES, now, c["failover"]["cooldown"])
    if moves:
        return _decision(reason=f"{why}; flap guard: the resources moved {round(now - moves[-1]['time'])} s ago "
                                f"(cooldown {c['failover']['cooldown']} s)", node=node, peer=peer)
    blockers = move_blockers(facts, node, peer)
    if blockers:
        return _decision(reason=f"{why}; cannot move: {'; '.join(blockers)}", node=node, peer=peer)
    return _decision("move", f"{why}: hand the resources to {peer} through heartbeat", node, peer)


def switchover_blockers(c, facts, book):
    """Reasons to refuse a planned handover; empty when it is safe."""
    if c["failover"]["maintenance"] or book.get("maintenance"):
        return ["maintenance is on: switch it off first (salt-run mfsha.maintenance <cluster> off)"]
    moving = [n for n, s in sorted(facts.items()) if s.get("answered") and s["heartbeat"]["resources"] == "transition"]
    if moving:
        return [f"heartbeat on {', '.join(moving)} is moving the resources"]
    held = holders(facts)
    if len(held) != 1:
        silent = [n for n, s in sorted(facts.items()) if not s.get("answered")]
        return [f"{len(held)} nodes hold the resources ({', '.join(held) or 'none'})" +
                (f"; no answer from {', '.join(silent)}" if silent else "")]
    return move_blockers(facts, held[0], peer_of(c, held[0]))


def restart_outcome(ok, ret):
    """What restart_master's answer (the call's ok and return) means: "started"; MISSING_CHANGES (DATA_PATH lacks
    changes the master acknowledged: fill from the metaloggers, never move, the peer replays the same storage); or
    "failed" (the call failed, or the master did not serve: a move may follow)."""
    if not ok or not isinstance(ret, dict):
        return "failed"
    if ret.get("started") is True:
        return "started"
    return MISSING_CHANGES if ret.get("refused") == MISSING_CHANGES and isinstance(ret.get("reason"), str) else "failed"


# ---- the status table (salt-run mfsha.status) -------------------------------------------------------------------

def _cell(value, width):
    return str("-" if value is None else value)[:width].ljust(width)


def _last_line(last):
    if not last:
        return "  last failover: none"
    return (f"  last failover: {last['action']} {last['node']}{' -> ' + last['to'] if last.get('to') else ''} at "
            f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(last['time']))} UTC, "
            f"{'ok' if last['result'] else 'FAILED'}, {last['duration_s']} s")


def _row(node, s):
    if not s.get("answered"):
        return f"  {_cell(node, 12)}no answer: {s.get('error')}"
    m, d, hb = s["master"] or {}, s["drbd"], s["heartbeat"]
    drbd = (f"{d['role']} {d['disk']}/{d['peer_disk']} {d['connection']}"
            + (f" sync {d['sync_done']}%" if d.get("sync_done") is not None else "")
            + (" SPLIT-BRAIN" if d.get("split_brain") else "")) if d else "-"
    return "  " + "".join(_cell(v, w) for v, w in (
        (node, 12), ("active" if s["active"] else "passive", 8), ("yes" if s["vip"] else "no", 5),
        ("mounted" if s["mounted"] else "-", 9),
        (f"{'running' if hb['running'] else 'DOWN'} ({hb['resources'] or '-'})", 18),
        (("healthy" if m.get("healthy") else "FAILING") if s["master"] else "-", 10),
        (m.get("metadata_version"), 10), (drbd, 40)))


def maintenance_flag(state):
    """salt-run mfsha.maintenance's on|off (or a bool) -> bool; anything else raises ValueError naming it."""
    flag = {"on": True, "off": False}.get(str(state).lower()) if not isinstance(state, bool) else state
    if flag is None:
        raise ValueError(f"mfsha: maintenance state must be on or off, not {state!r}")
    return flag


def status_data(c, facts, book, serving):
    """salt-run mfsha.status fmt=data of one cluster: the facts behind the table."""
    held = holders(facts)
    return {"active": held[0] if len(held) == 1 else held, "nodes": facts, "vip_serves": serving[0],
            "vip_detail": serving[1], "maintenance": c["failover"]["maintenance"] or book.get("maintenance", False),
            "last_failover": book.get("last")}


def table(c, facts, book, serving):
    """The status table of one cluster (text); `serving` is the Salt master's (ok, detail) probe of the VIP."""
    maint = "on" if c["failover"]["maintenance"] or book.get("maintenance") else "off"
    head = (f"cluster {c['name']}: VIP {c['vip']['address']} {'serves' if serving[0] else 'DOES NOT SERVE'} "
            f"({serving[1]}); maintenance {maint}; failover {'enabled' if c['failover']['enabled'] else 'disabled'}")
    columns = "  " + "".join(_cell(h, w) for h, w in (("node", 12), ("role", 8), ("VIP", 5), ("storage", 9),
                                                       ("heartbeat", 18), ("mfsmaster", 10), ("metadata", 10),
                                                       ("drbd", 40)))
    rows = [_row(n["id"], facts[n["id"]]) for n in c["nodes"]]
    return "\n".join([head, _last_line(book.get("last")), columns] + rows)
