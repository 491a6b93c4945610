"""Idempotent DRBD states for mfsha, built on the drbd execution module (_modules/drbd.py).

Every state reads the current DRBD status first and acts only when it differs. With test=True nothing is
changed: result None and the comment says what would change (False when the state would refuse).
"""

import functools
import importlib
import time

import mfsha_drbd  # synced _utils dir: on sys.path while the loader imports this module
from salt.exceptions import CommandExecutionError

# A running minion or master keeps a module's first import; the synced _utils of an upgrade must load too.
importlib.reload(mfsha_drbd)

__virtualname__ = "drbd"


def __virtual__():
    if "drbd.status" in __salt__:
        return __virtualname__
    return (False, "drbd state: the drbd execution module is not available")


def _ret(name):
    return {"name": name, "result": True, "changes": {}, "comment": ""}


def _current(name):
    return __salt__["drbd.status"](name).get(name)


def _fails_with_stderr(state):
    """A failed status read or command ends the state with result False and the command's stderr."""
    @functools.wraps(state)
    def wrapper(name, *args, **kwargs):
        try:
            return state(name, *args, **kwargs)
        except CommandExecutionError as exc:
            ret = _ret(name)
            ret.update(result=False, comment=str(exc))
            return ret
    return wrapper


def _act(ret, what, func, *args, **kwargs):
    """Run a module function for a state: test mode reports, a failure becomes result False + its stderr."""
    if __opts__["test"]:
        ret.update(result=None, comment=f"would {what}")
        return ret
    try:
        func(*args, **kwargs)
    except CommandExecutionError as exc:
        ret.update(result=False, comment=f"failed to {what}: {exc}")
        return ret
    ret["comment"] = f"{what}: done"
    return ret


def initialized(name, conf=None):
    """DRBD metadata exists on `name`'s backing disk: create-md only when none is found (never --force)."""
    ret = _ret(name)
    try:
        if __salt__["drbd.has_metadata"](name, conf=conf):
            ret["comment"] = f"{name}: DRBD metadata already present"
            return ret
    except CommandExecutionError as exc:
        ret.update(result=False, comment=f"{name}: cannot check DRBD metadata: {exc}")
        return ret
    _act(ret, f"create DRBD metadata for {name}", __salt__["drbd.create_md"], name, conf=conf)
    if ret["result"] and not __opts__["test"]:
        ret["changes"] = {"metadata": "created"}
    return ret


def adjusted(name, conf=None):
    """The running resource `name` follows its configuration file (drbdadm adjust; run it onchanges of the file).
    Through the drbd module, so a failure's output has the shared secret masked (a cmd.run state would show it)."""
    ret = _ret(name)
    _act(ret, f"adjust {name} to its configuration", __salt__["drbd.adjust"], name, conf=conf)
    if ret["result"] and not __opts__["test"]:
        ret["changes"] = {"adjusted": name}
    return ret


@_fails_with_stderr
def up(name, conf=None):
    """Resource `name` is configured in the kernel (drbdadm up when it is not)."""
    ret = _ret(name)
    res = _current(name)
    if res is not None:
        ret["comment"] = f"{name} is up ({res['role']}, disk {res['disk']}, {res['connection']})"
        return ret
    _act(ret, f"bring {name} up", __salt__["drbd.up"], name, conf=conf)
    if ret["result"] and not __opts__["test"]:
        res = _current(name)
        if res is None:
            ret.update(result=False, comment=f"drbdadm up {name} succeeded but {name} is not in drbdsetup status")
        else:
            ret["changes"] = {"up": {"old": None, "new": f"{res['role']}/{res['disk']}/{res['connection']}"}}
    return ret


@_fails_with_stderr
def promoted(name, force=False, conf=None):
    """This node is Primary for `name`.

    Without force, promotion follows mfsha_drbd.promotion_blockers (local disk UpToDate, no Primary peer,
    no split-brain evidence). force=True overrides the disk-state rule for the initial full sync of a fresh
    pair only: both disks Inconsistent and the peer a connected Secondary. A node whose peer is unreachable,
    or whose peer holds data, is never force-promoted by a state."""
    ret = _ret(name)
    res = _current(name)
    if res is None:
        ret.update(result=False, comment=f"{name} is not up")
        return ret
    if res["role"] == "Primary":
        ret["comment"] = f"{name} is already Primary"
        return ret
    blockers = mfsha_drbd.promotion_blockers(res)
    force = force and bool(blockers)  # --force only when DRBD would otherwise refuse
    if force:
        if res["connection"] != "Connected" or res["peer_role"] == "Primary" \
                or res["disk"] != "Inconsistent" or res["peer_disk"] != "Inconsistent":
            ret.update(result=False, comment=f"refusing to force {name} Primary: disk {res['disk']}, peer "
                                             f"{res['peer_role']}/{res['peer_disk']} over a {res['connection']} "
                                             "connection (needs a fresh pair: both Inconsistent, peer a connected "
                                             "Secondary)")
            return ret
    elif blockers:
        ret.update(result=False, comment=f"refusing to promote {name}: {'; '.join(blockers)}")
        return ret
    _act(ret, f"promote {name} to Primary" + (" (forced)" if force else ""), __salt__["drbd.primary"], name,
         force=force, conf=conf)
    if ret["result"] and not __opts__["test"]:
        ret["changes"] = {"role": {"old": res["role"], "new": "Primary"}}
    return ret


@_fails_with_stderr
def demoted(name, conf=None):
    """This node is not Primary for `name` (a resource that is down is not Primary either)."""
    ret = _ret(name)
    res = _current(name)
    if res is None or res["role"] != "Primary":
        ret["comment"] = f"{name} is not Primary ({'down' if res is None else res['role']})"
        return ret
    _act(ret, f"demote {name} to Secondary", __salt__["drbd.secondary"], name, conf=conf)
    if ret["result"] and not __opts__["test"]:
        ret["changes"] = {"role": {"old": "Primary", "new": "Secondary"}}
    return ret


@_fails_with_stderr
def synced(name, timeout=600):
    """Wait (at most `timeout` seconds) until `name` is fully synced with its peer. Changes nothing."""
    ret = _ret(name)
    res = _current(name)
    if res is None:
        ret.update(result=False, comment=f"{name} is not up")
        return ret
    if mfsha_drbd.is_synced(res):
        ret["comment"] = f"{name} is in sync"
        return ret
    now = f"disk {res['disk']}, {res['connection']}/{res['replication']}, peer disk {res['peer_disk']}"
    if res["sync_done"] is not None:
        now += f", {res['sync_done']}% done"
    if __opts__["test"]:
        ret.update(result=None, comment=f"would wait up to {timeout}s for {name} to sync (now {now})")
        return ret
    try:
        __salt__["drbd.wait_synced"](name, timeout=timeout)
    except CommandExecutionError as exc:
        ret.update(result=False, comment=str(exc))
        return ret
    ret["comment"] = f"{name} synced (was {now})"
    return ret


@_fails_with_stderr
def initial_sync_source(name, timeout=180, conf=None):
    """Bootstrap of the preferred node: waits (at most `timeout` s) for the peer to connect; then a fresh pair
    (both disks Inconsistent) is force-promoted here, so the full sync runs from this node only. A pair that
    holds data is never forced: a side that is behind syncs from the UpToDate one, and this waits for that."""
    ret = _ret(name)
    if __opts__["test"]:
        ret.update(result=None, comment=f"would wait for the peer of {name}, then sync a fresh pair from here")
        return ret
    res = _current(name)
    deadline = time.monotonic() + timeout
    while (res is None or res["connection"] != "Connected") and time.monotonic() < deadline:
        time.sleep(1)
        res = _current(name)
    if res is None or res["connection"] != "Connected":
        state = "down" if res is None else res["connection"]
        ret.update(result=False, comment=f"{name}: peer not connected after {timeout}s ({state}); a fresh pair "
                                         "is only synced with both nodes up")
        return ret
    if res["disk"] == "UpToDate" or res["role"] == "Primary":
        ret["comment"] = f"{name} holds data here ({res['disk']}); nothing to bootstrap"
        return ret
    if res["disk"] == "Inconsistent" and res["peer_disk"] == "Inconsistent":
        return promoted(name, force=True, conf=conf)
    return synced(name, timeout=timeout)
