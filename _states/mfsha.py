"""mfsha states: moves on cluster-level facts (see _modules/mfsha.py)."""

__virtualname__ = "mfsha"


def __virtual__():
    return __virtualname__


def _ret(name):
    return {"name": name, "changes": {}, "result": True, "comment": ""}


def metadata_seeded(name, legacy_path="/var/lib/mfs", empty="/var/lib/mfs/metadata.mfs.empty", user="mfs",
                    group="mfs"):
    """DATA_PATH `name` holds metadata: migrated from `legacy_path`, else seeded empty. Existing metadata is kept."""
    ret = _ret(name)
    done = __salt__["mfsha.seed_metadata"](name, legacy_path, empty, user, group, test=__opts__["test"])
    if done["action"] == "none":
        ret["comment"] = f"{name} already holds metadata; left as it is"
        return ret
    ret["changes"] = {done["action"]: done["files"]}
    if __opts__["test"]:
        ret["result"] = None
        ret["comment"] = f"{name} would be {done['action']}"
    else:
        ret["comment"] = f"{name} {done['action']}"
    return ret


def serving(name, port=9421, timeout=60):
    """Something serves on `name`:`port` (the cluster's VIP) within `timeout` seconds. Changes nothing."""
    ret = _ret(f"{name}:{port}")
    if __opts__["test"]:
        answers = __salt__["mfsha.serves"](name, port)
        ret["result"] = True if answers else None
        ret["comment"] = f"{name}:{port} {'serves' if answers else 'would be waited for'}"
        return ret
    try:
        waited = __salt__["mfsha.wait_serving"](name, port, timeout)
    except Exception as exc:  # CommandExecutionError from the wait
        ret["result"] = False
        ret["comment"] = str(exc)
        return ret
    ret["comment"] = f"{name}:{port} serves (waited {waited} s)"
    return ret
