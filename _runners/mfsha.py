"""mfsha operator commands and the failover loop's actions (beacon -> reactor -> orchestrate -> here).

  salt-run mfsha.status [cluster] [fmt=data]     a table per cluster (or the data behind it)
  salt-run mfsha.switchover <cluster>           planned handover through heartbeat, refused with reasons when unsafe
  salt-run mfsha.maintenance <cluster> on|off   the loop only reports while on (persisted in the master's cachedir)
  salt-run mfsha.recover minion=<id>            what mfsha/orch/recover.sls runs for a beacon event

THE RULE (what the loop does, when, why not) is _utils/mfsha_rule.py: pure, facts in, a decision out. This runner
takes the looks, acts through the execution modules, keeps each cluster's book and fires `mfsha/failover/<result>`.
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
import mfsha_node
import mfsha_pillar
import mfsha_redact
import mfsha_rule

# A running master keeps a module's first import; the synced _utils of an upgrade must load too (dependencies first).
for _mod in (mfsha_event, mfsha_files, mfsha_mfs, mfsha_glob, mfsha_redact, mfsha_pillar, mfsha_node, mfsha_fill,
             mfsha_rule):
    importlib.reload(_mod)

log = logging.getLogger(__name__)
__virtualname__ = "mfsha"


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
    return mfsha_rule.answers(minions if tgt_type == "list" else None, ret)


def _facts(c, nodes=None, client=True):
    """Fresh mfsha.node_state of the cluster's nodes, {id: state | {"answered": False, "error"}}; client=False skips
    the passive nodes' probe of the VIP."""
    nodes = nodes or [n["id"] for n in c["nodes"]]
    kwarg = dict(mfsha_node.node_args(c), timeout=1.0, client=client)
    return mfsha_rule.facts_of(_call(nodes, "mfsha.node_state", kwarg, timeout=8))


def _serving(c):
    """(ok, detail) of a protocol probe of the VIP from the Salt master, like a client sees it."""
    ok, _, detail = mfsha_mfs.probe(c["vip"]["address"], int(c["master"]["config"]["MATOCL_LISTEN_PORT"]), 1.0)
    return ok, detail


def _look(c):
    """(facts, outside): fresh looks at both nodes, the passive nodes' view of the VIP and the Salt master's own
    probe of it, each only when THE RULE needs it (mfsha_rule.client_view_needed); outside None when not taken."""
    facts = _facts(c, client=False)
    others, outside = mfsha_rule.client_view_needed(facts)
    if others:
        facts.update(_facts(c, others))
    if outside is None:  # the holder serves locally: the Salt master probes only if a passive node sees nothing
        outside = any(facts[n].get("vip_serves") is False for n in others)
    return facts, _serving(c)[0] if outside else None


# ---- acting ------------------------------------------------------------------------------------------------------

def _note_nodes(c, book):
    """Tell the nodes the maintenance flag and the last failover (for `salt-call mfsha.status`); fire and forget."""
    client = salt.client.get_local_client(__opts__["conf_file"])
    client.cmd_async([n["id"] for n in c["nodes"]], "mfsha.note",
                     kwarg={"book": {"maintenance": book.get("maintenance", False), "last": book.get("last")}},
                     tgt_type="list")


def _restart(c, node, expect=None, tail_checked=False):
    """(mfsha_rule.restart_outcome, answer) of mfsha.restart_master on NODE. No grace: the master failed the protocol
    probe on `debounce` beacon looks and on our own look; a failing master does not save anyway, and -a replays the
    changelogs (CHANGELOG_SAVE_MODE 2)."""
    limit = c["failover"]["serve_timeout"]
    kwarg = {"cfg": mfsha_node.master_cfg(c), "timeout": limit, "grace": 0, "expect_version": expect,
             "tail_checked": tail_checked, "vip": c["vip"]["address"]}
    ok, ret = _call([node], "mfsha.restart_master", kwarg, timeout=limit + 20)[node]
    return mfsha_rule.restart_outcome(ok, ret), ret


def _fill(c, node, expect=None):
    """The metalogger fill of NODE's DATA_PATH (mfsha_fill.fill), its questions answered from here: (note, None) when
    DATA_PATH is complete, else (None, why not)."""
    steps, answer = mfsha_fill.fill(c, node, expect), None
    while True:
        try:
            ask = steps.send(answer)
        except StopIteration as done:
            return done.value
        if ask[0] == "minions":
            answer = salt.utils.minions.CkMinions(__opts__).check_minions(ask[1], "compound")["minions"]
        else:
            answer = _clusters() if ask[0] == "clusters" else _call(*ask[1:])


def _move(c, node, peer, expect=None):
    if expect:  # the peer replays the same storage: it must hold what NODE's master acknowledged (see _fill)
        kwarg = {"version": expect, "cfg": mfsha_node.master_cfg(c)}
        ok, gap = _call([node], "mfsmaster.missing_changes", kwarg)[node]
        if not ok:
            return False, f"checking {node}'s DATA_PATH before the handover failed: {gap}"
        if gap:
            filled, why = _fill(c, node, expect)
            if not filled:
                return False, f"not handed over: {mfsha_mfs.MISSING} ({gap}) and {why}"
    ok, ret = _call([node], "heartbeat.handover", timeout=45)[node]
    return _then_serves(c, peer, ok, ret, "handover", f"hb_standby on {node}")


def _take(c, node):
    limit = c["heartbeat"]["initdead"] + c["failover"]["serve_timeout"] + 30  # a restart (peer dead) waits initdead
    ok, ret = _call([node], "heartbeat.takeover", {"timeout": limit}, timeout=limit + 20)[node]
    return _then_serves(c, node, ok, ret, "takeover", f"takeover on {node}")


def _then_serves(c, node, ok, ret, key, what):
    """After WHAT (a handover or takeover through heartbeat; ok, ret its answer), wait until NODE serves:
    (True, {KEY: ret, "metadata_version"}) or (False, why not)."""
    if not ok:
        return False, f"{what} failed: {ret}"
    deadline = time.monotonic() + c["failover"]["serve_timeout"]
    while time.monotonic() < deadline:  # it holds the resources and its mfsmaster answers
        state = _facts(c, [node])[node]
        if mfsha_rule.serves(state):
            return True, {key: ret, "metadata_version": state["master"]["metadata_version"]}
        time.sleep(0.5)
    return False, f"{node} did not serve within {c['failover']['serve_timeout']} s after {what} ({ret})"


def _rejoin_heartbeat(name, c, book, d, tl, common):
    """Start heartbeat on the standby (heartbeat.rejoin); one still shutting down is left to finish (waiting)."""
    ok, ret = _call([d["node"]], "heartbeat.rejoin", {"timeout": 45}, timeout=45 * 2 + 80)[d["node"]]
    tl["rejoined"] = time.time()
    if ok and not ret.get("started"):
        return _result(name, "waiting", f"{d['reason']}; {ret['why']}", tl, detail=ret, **common)
    _record(name, c, book, mfsha_rule.entry(d, ok, tl, "rejoined"))
    if ok:
        return _result(name, "rejoined", d["reason"], tl, detail=ret, **common)
    return _result(name, "failed", f"{d['reason']}; starting heartbeat on {d['node']} failed: {ret}", tl, **common)


def _record(name, c, book, entry):
    mfsha_rule.add_entry(book, entry)
    _save(name, book)
    try:
        _note_nodes(c, book)
    except Exception as exc:  # noqa: BLE001 - the note is informational; the failover result stands
        log.warning("mfsha: could not note the book on the nodes of %s: %s", name, exc)


def _result(name, result, reason, timeline, **extra):
    reason = mfsha_redact.text(reason)  # the one exit of every run's text: events, logs, the orchestration's output
    data = dict(extra, cluster=name, result=result, reason=reason, timeline=timeline,
                durations_s=mfsha_rule.durations(timeline))
    __salt__["event.send"](f"mfsha/failover/{result}", data)
    log.warning("mfsha: failover %s for %s: %s", result, name, reason)
    return data


def recover(minion=None, event=None):
    """The failover loop's action for one event (mfsha/orch/recover.sls): `event` (the reactor's JSON of {tag, data})
    is only a hint (mfsha_event.hint): `minion`, else its id, names a master node whose cluster is looked at afresh.
    Fires and returns {"result": healthy|ignored|suppressed|waiting|refused|skipped|rejoined|restarted|moved|
    taken_over|failed, "reason", "timeline", "decision", "cluster", "minion", "trigger"}, also when something breaks."""
    tl = {"started": time.time()}
    hint = mfsha_event.hint(event, minion)
    common = {"minion": hint["minion"], "trigger": hint["tag"]}
    try:
        clusters = _clusters()
        name = mfsha_rule.cluster_of(clusters, hint["minion"])
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
    tl["detected"] = mfsha_rule.first_down(facts, tl["started"])
    d = mfsha_rule.decide(c, facts, book, time.time(), vip_serves=outside)
    end = tl["detected"] + mfsha_rule.settle_s(c)
    while d["action"] == "takeover" and time.time() < end:
        time.sleep(min(2.0, max(0.1, end - time.time())))
        book = _book(name)  # an operator may switch maintenance on meanwhile
        facts, outside = _look(c)
        d = mfsha_rule.decide(c, facts, book, time.time(), vip_serves=outside)
    tl["decided"] = time.time()
    return d, facts


DONE = {"takeover": ("taken", "taken_over"), "move": ("moved", "moved")}  # action -> (timeline mark, result)


def _recover(name, c, tl, common):
    d, facts = _decide_settled(name, c, tl)
    common = dict(common, decision=d)
    if d["action"] in mfsha_rule.REPORTS:
        return _result(name, mfsha_rule.REPORTS[d["action"]], d["reason"], tl, **common)
    book = _book(name)
    if d["action"] == "rejoin":
        return _rejoin_heartbeat(name, c, book, d, tl, common)
    # the acting node's own record: the version its master last reported healthy (a restart must replay that far)
    expect = mfsha_rule.own_last_version(facts, d["node"])
    if d["action"] == "restart":
        d = _restart_or_decide(name, c, book, d, tl, common, expect)
        if "result" in d:
            return d
        common["decision"] = d
    ok, ret = _take(c, d["node"]) if d["action"] == "takeover" else _move(c, d["node"], d["peer"], expect)
    mark, result = DONE[d["action"]]
    tl[mark] = time.time()
    if ok:
        tl["serving"] = tl[mark]
    _record(name, c, book, mfsha_rule.entry(d, ok, tl, mark))
    return _result(name, result if ok else "failed", d["reason"] if ok else ret, tl, detail=ret, **common)


def _restart_or_decide(name, c, book, d, tl, common, expect):
    """The in-place restart (with a fill from the metaloggers when DATA_PATH lacks changes). Returns the run's
    result when it ends here, else the decision after a failed restart (a move)."""
    outcome, ret = _restart(c, d["node"], expect)
    if outcome == mfsha_rule.MISSING_CHANGES:
        note, why = _fill(c, d["node"], expect)
        tl["filled"] = time.time()
        if note:
            d["reason"] += f"; {note}"
            outcome, ret = _restart(c, d["node"], expect, tail_checked=True)
        else:
            ret = dict(ret, reason=f"{ret['reason']}; {why}")
    tl["restarted"] = time.time()
    _record(name, c, book, mfsha_rule.entry(d, outcome == "started", tl, "restarted"))
    if outcome == "started":
        tl["serving"] = tl["restarted"]
        return _result(name, "restarted", d["reason"], tl, detail=ret, **common)
    failed = f"restart failed ({ret.get('reason', ret) if isinstance(ret, dict) else ret})"
    log.warning("mfsha: restart on %s failed: %s", d["node"], failed)
    if outcome == mfsha_rule.MISSING_CHANGES:  # the peer would replay the same storage: stay down
        return _result(name, "failed", f"{failed}; not moved: the peer would replay the same storage without those "
                       "changes", tl, **common)
    facts, outside = _look(c)
    after = mfsha_rule.decide(c, facts, book, time.time(), restart_failed=True, vip_serves=outside)
    if after["action"] != "move":
        return _result(name, "failed", f"{failed}; {after['reason']}", tl, **dict(common, decision=after))
    return after


# ---- operator commands ---------------------------------------------------------------------------------------------

def _cluster(name):
    clusters = _clusters()
    if name not in clusters:
        raise salt.exceptions.SaltInvocationError(f"mfsha: no cluster {name!r} in the pillar ({', '.join(clusters)})")
    return clusters[name]


def switchover(cluster):
    """Planned handover of `cluster` to the passive node through heartbeat, after mfsha_rule.switchover_blockers.
    Returns {"result": switched|refused|failed, "reasons" or "from"/"to"/"seconds"/"metadata_version"}.

    CLI Example: salt-run mfsha.switchover paris"""
    c = _cluster(cluster)
    with _lock(cluster) as mine:
        if not mine:
            return {"result": "refused", "reasons": ["a recovery or switchover of this cluster is running"]}
        book = _book(cluster)
        facts = _facts(c)
        reasons = mfsha_rule.switchover_blockers(c, facts, book)
        if reasons:
            __salt__["event.send"]("mfsha/switchover/refused", {"cluster": cluster, "reasons": reasons})
            return {"result": "refused", "reasons": reasons}
        node = mfsha_rule.holders(facts)[0]
        peer = mfsha_rule.peer_of(c, node)
        t0 = time.time()
        ok, ret = _move(c, node, peer)
        d = {"action": "switchover", "node": node, "peer": peer, "reason": "salt-run mfsha.switchover"}
        entry = mfsha_rule.entry(d, ok, {"decided": t0, "detected": t0, "done": time.time()}, "done")
        _record(cluster, c, book, entry)
        out = {"result": "switched" if ok else "failed", "from": node, "to": peer, "seconds": entry["duration_s"]}
        out.update(ret if ok else {"reasons": [ret]})
        __salt__["event.send"](f"mfsha/switchover/{out['result']}", dict(out, cluster=cluster))
        return out


def maintenance(cluster, state="on"):
    """Switch the maintenance flag of `cluster`: while on, the failover loop only reports.

    CLI Example: salt-run mfsha.maintenance paris on"""
    try:
        flag = mfsha_rule.maintenance_flag(state)
    except ValueError as exc:
        raise salt.exceptions.SaltInvocationError(str(exc)) from None
    c = _cluster(cluster)
    book = _book(cluster)
    book["maintenance"] = flag
    _save(cluster, book)
    _note_nodes(c, book)
    __salt__["event.send"](f"mfsha/maintenance/{'on' if flag else 'off'}", {"cluster": cluster})
    return {"cluster": cluster, "maintenance": flag, "pillar_maintenance": c["failover"]["maintenance"]}


def status(cluster=None, fmt="table"):
    """Per cluster: active node, VIP holder, DRBD roles/disks/sync, mfsmaster health and metadata version per node,
    heartbeat state, maintenance flag, last failover and its duration (mfsha_rule.table). fmt=data returns the facts
    instead.

    CLI Example: salt-run mfsha.status"""
    clusters, out = _clusters(), {}
    for name in [cluster] if cluster else sorted(clusters):
        if name not in clusters:
            raise salt.exceptions.SaltInvocationError(f"mfsha: no cluster {name!r} in the pillar")
        c, book = clusters[name], _book(name)
        facts, serving = _facts(c), _serving(c)
        out[name] = (mfsha_rule.status_data if fmt == "data" else mfsha_rule.table)(c, facts, book, serving)
    return out
