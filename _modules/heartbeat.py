"""heartbeat v1 control for mfsha: its state, and the moves of the resource group through heartbeat itself.

heartbeat is the only owner of the storage, the VIP and mfsmaster; the Salt master's loop never moves them by hand,
it asks heartbeat (hb_standby, hb_takeover, a restart when the peer is dead) and starts heartbeat again on a
standby that lost it. Every command runs through mfsha_cmd (one wrapper, one error format).
"""
import importlib
import time

import mfsha_cmd  # _utils/: Salt's loader puts it on sys.path while this module loads
import mfsha_redact
from salt.exceptions import CommandExecutionError

# A running minion or master keeps a module's first import; the synced _utils of an upgrade must load too.
for _mod in (mfsha_redact, mfsha_cmd):
    importlib.reload(_mod)

__virtualname__ = "heartbeat"

HB_STANDBY = "/usr/share/heartbeat/hb_standby"
HB_TAKEOVER = "/usr/share/heartbeat/hb_takeover"
HB_DAEMON = "/usr/libexec/heartbeat/heartbeat"  # `-s`: whether a heartbeat process is there, API or not
CL_STATUS = "/usr/bin/cl_status"


def __virtual__():
    return __virtualname__


def _run(args, timeout=3, check=False):
    return mfsha_cmd.run(__salt__["cmd.run_all"], args, timeout=timeout, fail=CommandExecutionError if check else None)


def _node():
    """The settings the moves need (the VIP, its interface, the port, the storage's mountpoint, the peer's heartbeat
    name): node_state's arguments for this node, built in one place (mfsha.node_args; raises on a non-master)."""
    return __salt__["mfsha.node_args"]()


def _held(node):
    """True when this node holds the VIP or the storage."""
    return __salt__["mfsha.has_address"](node["vip"], node["interface"]) or \
        __salt__["mfsha.is_mounted"](node["mountpoint"])


def state(peer=None, timeout=3):
    """Local heartbeat: {"running", "resources", "peer"}, bounded by `timeout` s per command (the beacon asks every
    tick).

    resources is `cl_status rscstatus`: all | local | foreign | none | transition (heartbeat is moving them);
    peer is `cl_status nodestatus PEER` (active, dead, ...) when a peer host name is given.

    CLI Example: salt-call heartbeat.state"""
    res = _run([CL_STATUS, "rscstatus"], timeout)
    out = {"running": res["retcode"] == 0, "resources": None, "peer": None}
    if out["running"]:
        out["resources"] = res["stdout"].strip() or None
        if peer:
            out["peer"] = _run([CL_STATUS, "nodestatus", peer], timeout)["stdout"].strip() or None
    return out


def running():
    """True when the local heartbeat daemon runs (bounded: see state)."""
    return state()["running"]


def handover(grace=2):
    """Hand every resource to the peer through heartbeat (`hb_standby`), so heartbeat stays their only owner.

    An unhealthy (e.g. hung) local master is killed first: heartbeat's stop would wait serve_timeout for it.
    Returns {"killed_hung_master", "log"} as soon as heartbeat accepted the request (the move is asynchronous)."""
    node = _node()
    if not state()["running"]:
        raise CommandExecutionError("mfsha: heartbeat is not running here; it cannot hand the resources over")
    killed = False
    cfg = f"{node['mountpoint']}/mfsmaster.cfg"
    if __salt__["mfsha.is_mounted"](node["mountpoint"]):
        health = __salt__["mfsmaster.health"](cfg=cfg, host=node["vip"], port=int(node["port"]), timeout=1.0)
        if health["process"] and not health["healthy"]:
            killed = __salt__["mfsmaster.stop"](cfg=cfg, timeout=grace, kill=True)["killed"]
    res = _run([HB_STANDBY], 30, check=True)
    return {"killed_hung_master": killed, "log": (res["stdout"] + res["stderr"]).strip()}


def takeover(timeout=60):
    """Take every resource through heartbeat while no node holds them: `hb_takeover all`, asked again every 10 s
    (a request that meets heartbeat's own pending `sleep 30; hb_standby` after a failed start is ignored); with the
    peer dead, where hb_takeover has nobody to ask, a heartbeat restart (alone after initdead it acquires every
    resource). Returns {"how", "held_s"} once this node holds the group; raises after `timeout` s."""
    node = _node()
    t0 = time.monotonic()
    hb = state(node["peer"])
    if not hb["running"]:
        raise CommandExecutionError("mfsha: heartbeat is not running here; it cannot take the resources")
    if _held(node):
        return {"how": "none: this node holds the resources", "held_s": 0.0}
    if hb["peer"] == "dead":
        how, cmd, every = "heartbeat restart (peer dead)", ["service", "heartbeat", "restart"], timeout
    else:
        how, cmd, every = "hb_takeover all", [HB_TAKEOVER, "all"], 10
    asked = None
    while True:
        if asked is None or time.monotonic() - asked >= every:
            _run(cmd, 60, check=True)
            asked = time.monotonic()
        time.sleep(1)
        if _held(node):
            return {"how": how, "held_s": round(time.monotonic() - t0, 2)}
        if time.monotonic() - t0 > timeout:
            raise CommandExecutionError(f"mfsha: {how}: this node does not hold the resources after {timeout} s")


def rejoin(timeout=60):
    """Start heartbeat again on this node, which holds nothing, so that it joins its peer and can take over again.

    The loop's answer to a heartbeat that is gone from a standby: stopped, crashed, or ended by heartbeat v1's own
    "Emergency Shutdown" (30 s after its restart on meeting a peer it had declared dead, when its ping readers ignore
    SIGTERM). A heartbeat process still shutting down is waited for, never raced. Returns {"started": True, "how",
    "joined_s"} once this node sees the peer active, {"started": False, "why"} when the old process is still there
    after `timeout` s; raises with the init script's stderr when the start fails, or when the peer is not seen."""
    node = _node()
    t0 = time.monotonic()
    if _held(node):
        raise CommandExecutionError("mfsha: this node holds the VIP or the storage: heartbeat is not started beside "
                                    "them (a human decides)")
    how = "none: heartbeat runs"
    hb = state(node["peer"])
    while not hb["running"] and how != "service heartbeat start":
        alive = _run([HB_DAEMON, "-s"])  # a process (pid file) whose API does not answer: shutting down
        if alive["retcode"] != 0:
            _run(["service", "heartbeat", "start"], 60, check=True)
            how, t0 = "service heartbeat start", time.monotonic()  # the join gets its own `timeout`
        elif time.monotonic() - t0 > timeout:
            return {"started": False, "why": f"heartbeat is still shutting down after {timeout} s: "
                                             f"{alive['stdout'].strip()}"}
        else:
            time.sleep(1)
            hb = state(node["peer"])
    return _joined(node, how, hb, t0, timeout)


def _joined(node, how, hb, t0, timeout):
    """rejoin's second half: wait until this node's heartbeat runs and sees the peer active."""
    while not hb["running"] or hb["peer"] != "active":
        if time.monotonic() - t0 > timeout:
            seen = f"{node['peer']} is {hb['peer'] or 'unknown'} to it" if hb["running"] else "it does not answer"
            raise CommandExecutionError(f"mfsha: {how}: {seen} after {timeout} s")
        time.sleep(1)
        hb = state(node["peer"])
    return {"started": True, "how": how, "joined_s": round(time.monotonic() - t0, 2)}
