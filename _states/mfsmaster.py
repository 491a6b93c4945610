"""States for the MooseFS master: mfsmaster.running / mfsmaster.dead, keyed by the mfsmaster.cfg path.

    mfsmaster:
      mfsmaster.running:
        - name: /mfsconf/mfsmaster.cfg
"""
import time

from salt.exceptions import CommandExecutionError


def __virtual__():
    if "mfsmaster.running" in __salt__:
        return "mfsmaster"
    return (False, "the mfsmaster execution module is not loaded")


def _ret(name):
    return {"name": name, "result": False, "changes": {}, "comment": ""}


def running(name, timeout=30, probe_timeout=1.0):
    """The master of config `name` runs and answers on its client port.

    Not running: checks DATA_PATH first (a hole or missing metadata fails here with the reason instead
    of a cryptic start error), starts it with `-a` and waits up to `timeout` s for a protocol answer.
    Running but not answering (hung, SIGSTOPped): fails without touching it; restarting a hung master
    is the failover loop's decision, not a side effect of a highstate."""
    ret = _ret(name)
    try:
        if __salt__["mfsmaster.running"](name):
            health = __salt__["mfsmaster.health"](name, timeout=probe_timeout)
            ret["result"] = health["healthy"]
            ret["comment"] = ("mfsmaster is running: " if health["healthy"]
                              else "mfsmaster is running but unhealthy: ") + health["detail"]
            return ret
        check = __salt__["mfsmaster.data_path_ok"](name)
        if not check["ok"]:
            ret["comment"] = "mfsmaster is stopped and cannot start from {}: {}".format(
                check["data_path"], "; ".join(check["problems"]))
            return ret
        if __opts__["test"]:
            ret["result"] = None
            ret["comment"] = "mfsmaster would be started (mfsmaster -a, metadata version {} on disk)".format(
                check["version"])
            ret["changes"] = {"mfsmaster": {"old": "stopped", "new": "running"}}
            return ret
        started = __salt__["mfsmaster.start"](name)
    except CommandExecutionError as exc:
        ret["comment"] = str(exc)
        return ret
    ret["changes"] = {"mfsmaster": {"old": "stopped", "new": "running"}, "pid": started["pid"]}
    deadline = time.monotonic() + timeout
    while True:
        health = __salt__["mfsmaster.health"](name, timeout=probe_timeout)
        if health["healthy"] or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    ret["result"] = health["healthy"]
    ret["comment"] = ("mfsmaster started: " if health["healthy"]
                      else "mfsmaster started but not serving after {} s: ".format(timeout)) + health["detail"]
    return ret


def dead(name, timeout=30, kill=False):
    """The master of config `name` is stopped (clean `mfsmaster stop`; kill=True adds SIGKILL when the
    stop does not finish within `timeout`, e.g. a SIGSTOPped master)."""
    ret = _ret(name)
    try:
        if not __salt__["mfsmaster.running"](name):
            ret["result"] = True
            ret["comment"] = "mfsmaster is already stopped"
            return ret
        if __opts__["test"]:
            ret["result"] = None
            ret["comment"] = "mfsmaster would be stopped"
            ret["changes"] = {"mfsmaster": {"old": "running", "new": "stopped"}}
            return ret
        stopped = __salt__["mfsmaster.stop"](name, timeout=timeout, kill=kill)
    except CommandExecutionError as exc:
        ret["comment"] = str(exc)
        return ret
    ret["result"] = True
    ret["changes"] = {"mfsmaster": {"old": "running", "new": "killed" if stopped["killed"] else "stopped"}}
    ret["comment"] = "mfsmaster stopped" + (" with SIGKILL" if stopped["killed"] else "")
    return ret
