"""mfsha states: moves on cluster-level facts (see _modules/mfsha.py), and the files on the storage."""
import importlib
import os
import stat

import mfsha_files  # _utils/: on sys.path while the loader imports this module
from salt.exceptions import CommandExecutionError

importlib.reload(mfsha_files)  # a running minion keeps a module's first import; an upgrade's must load
__virtualname__ = "mfsha"


def __virtual__():
    return __virtualname__


def _ret(name):
    return {"name": name, "changes": {}, "result": True, "comment": ""}


def metadata_seeded(name, legacy_path="/var/lib/mfs", empty="/var/lib/mfs/metadata.mfs.empty", user="mfs",
                    group="mfs"):
    """DATA_PATH `name` holds metadata: migrated from `legacy_path`, else seeded empty. Existing metadata is kept."""
    ret = _ret(name)
    try:
        done = __salt__["mfsha_storage.seed_metadata"](name, legacy_path, empty, user, group, test=__opts__["test"])
    except CommandExecutionError as exc:  # e.g. a link planted in DATA_PATH or in legacy_path: refused
        return dict(ret, result=False, comment=str(exc))
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


def storage_file(name, source, context=None, mode="0644"):
    """`name` is root's regular file holding `source` (or the first of a list that exists) rendered with jinja and
    `context`, with `mode`.

    For files in a directory the mfs user owns (the storage: mfsmaster.cfg, mfsexports.cfg). file.managed is no
    good there: it follows a link planted at `name` (writes the target; with follow_symlinks False it still reads
    the target for its diff, and blocks on a FIFO). Here nothing is read through a link: the old file is compared
    only when it is root's regular file, and the new one is put in place by mfsha_files (O_EXCL temporary file,
    renamed over whatever is there). A link, FIFO or foreign file there is replaced, and the comment says so; no
    diff is shown (exports may carry passwords)."""
    ret = _ret(name)
    text = None
    for url in [source] if isinstance(source, str) else source:  # a list (mfsha/libtofs.jinja): the first found
        text = __salt__["cp.get_file_str"](url, saltenv=__env__)
        if text:
            break
    if not text:
        return dict(ret, result=False, comment=f"{source} not found on the fileserver")
    want = __salt__["file.apply_template_on_contents"](text, template="jinja", context=context or {}, defaults=None,
                                                      saltenv=__env__)
    perm = int(str(mode), 8)
    try:
        have, why = mfsha_files.read_regular(name, limit=1 << 20, owned=True), "its content differs"
        if have == want and stat.S_IMODE(os.lstat(name).st_mode) == perm:
            return dict(ret, comment=f"{name} is in the correct state")
        why = why if have != want else f"its mode differs from {mode}"
    except FileNotFoundError:
        why = "it is missing"
    except mfsha_files.UnsafeFile as exc:
        why = f"{exc.why} (not followed)"
    ret["changes"] = {"written": name, "because": why}
    if __opts__["test"]:
        return dict(ret, result=None, comment=f"{name} would be written: {why}")
    try:
        mfsha_files.write_durably(name, want, mode=perm)
    except OSError as exc:
        return dict(ret, result=False, changes={}, comment=f"writing {name} failed: {exc}")
    return dict(ret, comment=f"{name} written: {why}")
