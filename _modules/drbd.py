"""DRBD facts and moves for mfsha (DRBD 9 and 8.4 kernel modules driven by drbd-utils 9).

A superset of Salt's own drbd.status/drbd.overview: the same facts, normalized by mfsha_drbd into one
shape for every kernel version (see _utils/mfsha_drbd.py). Every command runs through mfsha_cmd (no shell); a
failing command raises CommandExecutionError carrying the command and its output, secrets masked.

Config: `drbd.conf` (minion option) or the `conf` argument selects a non-default drbdadm config file.
"""

import importlib
import logging
import time

import mfsha_cmd  # from the synced _utils dir, on sys.path only while the loader imports this module
import mfsha_drbd
import mfsha_redact
import salt.utils.path
from salt.exceptions import CommandExecutionError

# A running minion or master keeps a module's first import; the synced _utils of an upgrade must load too.
for _mod in (mfsha_drbd, mfsha_redact, mfsha_cmd):
    importlib.reload(_mod)

log = logging.getLogger(__name__)
__virtualname__ = "drbd"


def __virtual__():
    if salt.utils.path.which("drbdadm"):
        return __virtualname__
    return (False, "drbd: drbdadm not found")


def _call(cmd, stdin=None):
    # mfsha_cmd keeps the output out of Salt's log: drbdadm's can carry the shared secret (dump, a failed `net` or
    # `connect` step)
    return mfsha_cmd.run(__salt__["cmd.run_all"], cmd, stdin=stdin)


def _fail(cmd, res, note=""):
    """Raise the failure of `cmd` with its output, secrets masked (mfsha_cmd.failure)."""
    raise CommandExecutionError(mfsha_cmd.failure(cmd, res, note))


def _run(cmd, stdin=None):
    return mfsha_cmd.run(__salt__["cmd.run_all"], cmd, stdin=stdin, fail=CommandExecutionError)


def _drbdadm(conf, *args):
    conf = conf or __opts__.get("drbd.conf")
    return ["drbdadm"] + (["-c", conf] if conf else []) + list(args)


def _read_proc():
    """/proc/drbd text, or None where the kernel has no DRBD module."""
    try:
        with open(__opts__.get("drbd.proc", "/proc/drbd"), encoding="utf-8") as fh:
            return fh.read()
    except FileNotFoundError:
        return None


def status(resource=None):
    """Normalized state of every DRBD resource known to the kernel (or just `resource`):
    {name: {role, disk, connection, replication, peer_role, peer_disk, sync_done, split_brain,
    volumes, peers, source, raw}}; {} when nothing (or not that resource) is up.

    Source: `drbdsetup status --json`; when that fails (a DRBD 8.4 module answers exit 20
    "unrecognized option '--json'"), `drbdsetup status --verbose --statistics` text (the format
    `drbdadm status` prints, plus minors), with /proc/drbd confirming a StandAlone connection
    that 8.4's text output leaves out.

    CLI Example: salt '*' drbd.status r0
    """
    first = _call(["drbdsetup", "status", "--json"])
    if first["retcode"] == 0:
        parsed = _parse("drbdsetup status --json", first["stdout"])
    else:
        log.debug("drbdsetup status --json failed (%s), using the text status", first["stderr"].strip())
        cmd = ["drbdsetup", "status", "--verbose", "--statistics"]
        res = _call(cmd)
        if res["retcode"] != 0:
            _fail(cmd, res, f" (after drbdsetup status --json failed: {first['stderr'].strip()})")
        parsed = _parse(" ".join(cmd), res["stdout"])
        _merge_proc(parsed, _read_proc())
    if resource is not None:
        return {k: v for k, v in parsed.items() if k == resource}
    return parsed


def _parse(what, text):
    try:
        return mfsha_drbd.parse_status(text)
    except (ValueError, KeyError, TypeError) as exc:
        raise CommandExecutionError(f"cannot parse the output of {what}: {exc}: {text[:200]!r}") from exc


def _merge_proc(parsed, proc_text):
    """Take 8.4's connection state from /proc/drbd (by minor) where the text status shows no peer."""
    if not proc_text:
        return
    proc = _parse("/proc/drbd", proc_text)
    for res in parsed.values():
        for vol in res["volumes"].values():
            entry = proc.get(f"minor:{vol['minor']}")
            if entry:
                vol["raw"]["proc"] = entry["raw"]
                if not res["peers"] and entry["connection"] != res["connection"]:
                    res.update({k: entry[k] for k in ("connection", "replication", "peer_role", "peer_disk",
                                                      "split_brain")})


def _res(resource):
    found = status(resource).get(resource)
    if found is None:
        raise CommandExecutionError(f"DRBD resource {resource} is not up (not in drbdsetup status)")
    return found


def role(resource):
    """Local role of `resource` ('Primary', 'Secondary'); raises when the resource is not up."""
    return _res(resource)["role"]


def is_primary(resource):
    """True when `resource` is up and Primary here."""
    return status(resource).get(resource, {}).get("role") == "Primary"


def uptodate(resource):
    """True when every local volume of `resource` is UpToDate."""
    res = _res(resource)
    return bool(res["volumes"]) and all(v["disk"] == "UpToDate" for v in res["volumes"].values())


def sync_progress(resource):
    """Percent done of a running resync; 100.0 when fully synced with the peer; None otherwise
    (disconnected, or the source does not report progress)."""
    res = _res(resource)
    if mfsha_drbd.is_synced(res):
        return 100.0
    return res["sync_done"]


def wait_synced(resource, timeout=600, interval=2):
    """Poll until `resource` is synced (local and peer disks UpToDate, connection Established).
    Returns the final status of the resource; raises on timeout with the last state seen."""
    deadline = time.monotonic() + float(timeout)
    while True:
        res = _res(resource)
        if mfsha_drbd.is_synced(res):
            return res
        if time.monotonic() >= deadline:
            raise CommandExecutionError(
                f"DRBD resource {resource} not synced after {timeout}s: disk {res['disk']}, connection "
                f"{res['connection']}, replication {res['replication']}, peer disk {res['peer_disk']}, "
                f"done {res['sync_done']}")
        time.sleep(min(float(interval), max(0.0, deadline - time.monotonic())))


def up(resource, conf=None):
    """drbdadm up; True on success."""
    _run(_drbdadm(conf, "up", resource))
    return True


def down(resource, conf=None):
    """drbdadm down; True on success."""
    _run(_drbdadm(conf, "down", resource))
    return True


def adjust(resource, conf=None):
    """drbdadm adjust (apply config changes to a running resource); True on success."""
    _run(_drbdadm(conf, "adjust", resource))
    return True


def has_metadata(resource, conf=None):
    """True when `resource`'s backing disk carries DRBD metadata (or the resource is up).

    `drbdadm dstate` answers from the kernel when the resource is up, else from drbdmeta; on a disk
    without metadata drbdmeta says 'No valid meta data found' (exit 1). Other failures raise."""
    cmd = _drbdadm(conf, "dstate", resource)
    res = _call(cmd)
    if res["retcode"] == 0:
        return True
    if "No valid meta data found" in (res["stderr"] or "") + (res["stdout"] or ""):
        return False
    _fail(cmd, res)


def create_md(resource, force=False, conf=None):
    """drbdadm create-md. Refuses when metadata already exists unless force=True (then passes --force,
    which lets drbdmeta overwrite or convert it). stdin is empty, so any other drbdmeta question
    (e.g. a filesystem found where metadata goes) is answered 'no' and the command fails.
    Returns create-md's output."""
    if not force and has_metadata(resource, conf):
        raise CommandExecutionError(f"refusing create-md on {resource}: DRBD metadata already present "
                                    "(force=True overwrites it)")
    args = ["create-md"] + (["--force"] if force else []) + [resource]
    return _run(_drbdadm(conf, *args), stdin="")["stdout"]


def primary(resource, force=False, conf=None):
    """Promote to Primary. Refuses (CommandExecutionError listing the reasons) when
    mfsha_drbd.promotion_blockers finds any, unless force=True (then drbdadm primary --force).
    Already Primary: no command, returns True."""
    res = _res(resource)
    if res["role"] == "Primary":
        return True
    blockers = mfsha_drbd.promotion_blockers(res)
    if blockers and not force:
        raise CommandExecutionError(f"refusing to promote {resource}: {'; '.join(blockers)}")
    _run(_drbdadm(conf, "primary", *(["--force"] if force else []), resource))
    return True


def secondary(resource, conf=None):
    """Demote to Secondary; True on success (DRBD refuses while the device is in use)."""
    _run(_drbdadm(conf, "secondary", resource))
    return True


def split_brain(resource):
    """Split-brain evidence for `resource`: {"split_brain": bool, "connection": str, "evidence": str or None}.

    Status alone cannot tell a split brain from a plain disconnect (both StandAlone), so a StandAlone
    resource is checked against the kernel log (dmesg) for an unresolved 'Split-Brain detected' line."""
    res = _res(resource)
    out = {"split_brain": False, "connection": res["connection"], "evidence": None}
    if res["connection"] != "StandAlone":
        return out
    minors = [v["minor"] for v in res["volumes"].values() if v["minor"] is not None]
    log_text = _run(["dmesg"])["stdout"]
    out["evidence"] = mfsha_drbd.split_brain_in_log(log_text, resource, minors)
    out["split_brain"] = out["evidence"] is not None
    return out


def version():
    """{"kernel": loaded module version or None, "utils": drbd-utils version}. The kernel version comes
    from /proc/drbd (the loaded module); drbdadm --version only reports what modinfo finds."""
    found = mfsha_drbd.parse_version(_run(["drbdadm", "--version"])["stdout"])
    proc = _read_proc()
    if proc:
        found["kernel"] = mfsha_drbd.parse_version(proc)["kernel"] or found["kernel"]
    return found
