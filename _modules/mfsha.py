"""mfsha: this minion's validated cluster settings and the cluster-level facts the formula decides on.

The pillar rules live in _utils/mfsha_pillar.py (pure Python); this module feeds it the pillar and the formula's
defaults, and turns its errors into Salt errors so an invalid pillar stops the render.
"""
import glob
import os
import re
import shutil
import time

import yaml
import mfsha_mfs  # _utils/: Salt's loader puts it on sys.path while this module loads
import mfsha_pillar
from salt.exceptions import CommandExecutionError

__virtualname__ = "mfsha"


def __virtual__():
    return __virtualname__


def _formula_yaml(name):
    text = __salt__["cp.get_file_str"](f"salt://mfsha/{name}")
    if not text:
        raise CommandExecutionError(f"mfsha: salt://mfsha/{name} not found on the fileserver")
    return yaml.safe_load(text)


def settings(defaults=None, osmap=None, minion_id=None):
    """This minion's settings: the pillar merged over defaults.yaml and validated (see pillar.example).

    map.jinja passes `defaults` and `osmap` it already imported; other callers let this function fetch them.

    CLI Example: salt-call mfsha.settings
    """
    if defaults is None:
        defaults = _formula_yaml("defaults.yaml")
    if osmap is None:
        osmap = _formula_yaml("osfamilymap.yaml").get(__grains__["os_family"])
    if not osmap:
        raise CommandExecutionError(f"mfsha: os_family {__grains__['os_family']!r} is not supported (osfamilymap.yaml)")
    try:
        return mfsha_pillar.settings(__pillar__.get("mfsha"), defaults, osmap, minion_id or __grains__["id"])
    except mfsha_pillar.PillarError as exc:
        raise CommandExecutionError(f"mfsha: {exc}") from None


def clusters(defaults=None):
    """Every validated cluster of the pillar, by name (the Salt master's view)."""
    try:
        return mfsha_pillar.validate(__pillar__.get("mfsha"), defaults or _formula_yaml("defaults.yaml"))
    except mfsha_pillar.PillarError as exc:
        raise CommandExecutionError(f"mfsha: {exc}") from None


def serves(host, port, timeout=1.0):
    """True when a MooseFS master answers a protocol request on host:port within `timeout` seconds.

    A TCP accept is not enough: a hung master's kernel still accepts, and so do some networks' middleboxes.
    """
    return mfsha_mfs.probe(host, int(port), timeout)[0]


def heartbeat_running():
    """True when the local heartbeat daemon runs (its master control process, by pid file)."""
    ret = __salt__["cmd.run_all"](["/usr/bin/cl_status", "hbstatus"], python_shell=False, ignore_retcode=True,
                                  output_loglevel="quiet")
    return ret["retcode"] == 0


def bootstrap_needed(cfg=None):
    """Whether this node must prepare the shared storage itself before heartbeat owns it.

    Only the preferred node of a cluster that does not run yet: no local heartbeat and nobody serving on the VIP.
    Once heartbeat runs anywhere, heartbeat alone moves the storage; the formula never mounts it beside heartbeat.
    Decided once per run (cached in __context__), so every sls of one state run sees the same answer.
    """
    if "mfsha.bootstrap" not in __context__:
        cfg = cfg or settings()
        __context__["mfsha.bootstrap"] = (
            "master" in cfg["roles"] and cfg["me"]["id"] == cfg["preferred"] and not heartbeat_running()
            and not serves(cfg["vip"]["address"], cfg["master"]["config"]["MATOCL_LISTEN_PORT"]))
    return __context__["mfsha.bootstrap"]


def wait_serving(host, port, timeout=60, interval=1.0):
    """Wait until a master serves on host:port; returns seconds waited. Raises after `timeout` seconds."""
    start = time.monotonic()
    while True:
        if serves(host, port, timeout=min(interval, 2.0)):
            return round(time.monotonic() - start, 2)
        if time.monotonic() - start >= timeout:
            raise CommandExecutionError(f"mfsha: nothing serves on {host}:{port} after {timeout} s")
        time.sleep(interval)


def drbd_major():
    """Major version of the DRBD kernel module (8 or 9): the loaded one, else the installed one, else 9.

    drbdadm picks its parser the same way: 8.4 syntax rules when an 8.4 module is loaded, DRBD 9's otherwise.
    """
    try:
        with open("/proc/drbd", encoding="utf-8") as fh:
            first = fh.readline()
    except OSError:
        first = __salt__["cmd.run_stdout"](["modinfo", "-F", "version", "drbd"], python_shell=False,
                                           ignore_retcode=True, output_loglevel="quiet")
    match = re.search(r"(?:version:\s*)?([0-9]+)\.[0-9]+", first or "")
    return int(match.group(1)) if match else 9


METADATA_GLOBS = ("metadata.mfs", "metadata.mfs.back", "metadata.mfs.back.*", "changelog.*.mfs")


def has_metadata(path):
    """True when `path` already holds MooseFS metadata or changelogs (never to be overwritten)."""
    return any(glob.glob(os.path.join(path, g)) for g in METADATA_GLOBS)


def seed_metadata(data_path, legacy_path="/var/lib/mfs", empty="/var/lib/mfs/metadata.mfs.empty", user="mfs",
                  group="mfs", test=False):
    """Give an empty DATA_PATH its first metadata. Never touches a DATA_PATH that holds metadata.

    An existing single master's metadata in `legacy_path` is migrated (metadata, changelogs, sessions, stats);
    otherwise a new cluster starts from the packaged empty metadata. Returns what was (or would be) done.
    """
    if has_metadata(data_path):
        return {"action": "none", "files": []}
    legacy = [f for g in METADATA_GLOBS + ("sessions.mfs", "stats.mfs", "chart.mfs")
              for f in sorted(glob.glob(os.path.join(legacy_path, g)))]
    if any(os.path.basename(f).startswith("metadata.mfs") for f in legacy):
        action, pairs = "migrated", [(f, os.path.join(data_path, os.path.basename(f))) for f in legacy]
    else:
        if not os.path.exists(empty):
            raise CommandExecutionError(f"mfsha: cannot seed {data_path}: {empty} is missing (moosefs-master)")
        action, pairs = "seeded", [(empty, os.path.join(data_path, "metadata.mfs"))]
    if not test:
        for src, dst in pairs:
            shutil.copy2(src, dst)
            shutil.chown(dst, user, group)
    return {"action": action, "files": [dst for _, dst in pairs]}
