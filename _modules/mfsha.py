"""mfsha: this minion's validated cluster settings and the cluster-level facts the formula decides on.

The pillar rules live in _utils/mfsha_pillar.py (pure Python); this module feeds it the pillar and the formula's
defaults, and turns its errors into Salt errors so an invalid pillar stops the render.
"""
import copy
import glob
import grp
import importlib
import json
import logging
import os
import pwd
import re
import shutil
import stat
import tempfile
import time

import yaml
import mfsha_drbd  # _utils/: Salt's loader puts it on sys.path while this module loads
import mfsha_files
import mfsha_glob
import mfsha_mfs
import mfsha_node
import mfsha_pillar
import mfsha_redact
from salt.exceptions import CommandExecutionError

# A running minion or master keeps a module's first import; the synced _utils of an upgrade must load too (mfsha_mfs
# uses mfsha_files, mfsha_pillar uses mfsha_glob and mfsha_redact: those first).
for _mod in (mfsha_drbd, mfsha_files, mfsha_mfs, mfsha_glob, mfsha_redact, mfsha_pillar, mfsha_node):
    importlib.reload(_mod)

__virtualname__ = "mfsha"
log = logging.getLogger(__name__)


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
    """True when the local heartbeat daemon runs (bounded: see heartbeat_state)."""
    return heartbeat_state()["running"]


def vip_in_use(address, interface, timeout=3):
    """True when some host answers ARP for `address` on `interface` (arping duplicate address detection).

    The VIP is held whenever heartbeat holds the resources, also while the master behind it is hung.
    """
    cmd = ["arping", "-D", "-q", "-c", "2", "-w", str(timeout), "-I", interface, address]
    res = _quick(cmd, timeout + 5)
    if res["retcode"] in (0, 1):
        return res["retcode"] == 1
    raise CommandExecutionError(f"{' '.join(cmd)} failed with exit code {res['retcode']}: {res['stderr'].strip()}")


def bootstrap_needed(cfg=None):
    """Whether this node must prepare the shared storage itself before heartbeat owns it.

    Only the preferred node of a cluster that does not run yet: no local heartbeat, no master answering on the VIP
    and nobody holding the VIP (a peer whose master hangs still holds it, and its storage). Once heartbeat runs
    anywhere, heartbeat alone moves the storage; the formula never mounts it beside heartbeat.
    Decided once per run (cached in __context__), so every sls of one state run sees the same answer.
    """
    if "mfsha.bootstrap" not in __context__:
        cfg = cfg or settings()
        vip = cfg["vip"]["address"]
        __context__["mfsha.bootstrap"] = (
            "master" in cfg["roles"] and cfg["me"]["id"] == cfg["preferred"] and not heartbeat_running()
            and not serves(vip, cfg["master"]["config"]["MATOCL_LISTEN_PORT"])
            and not vip_in_use(vip, cfg["vip"]["interface"]))
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
    Both directories are the mfs user's: every file is copied through mfsha_files (a link or FIFO in either is
    refused with its path, a link at a destination replaced, never followed; the copy is chowned by its fd).
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
        owner = (pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid)
        for src, dst in pairs:
            try:
                mfsha_files.copy_file(src, dst, owner=owner, mode=0o640)
            except OSError as exc:
                raise CommandExecutionError(f"mfsha: cannot seed {data_path}: {exc}") from None
    return {"action": action, "files": [dst for _, dst in pairs]}


# ---- node facts for the beacon, the runner and operators; in-place restart and handover through heartbeat.
# Everything here is bounded by short timeouts: the beacon calls node_state() every tick.

HB_STANDBY = "/usr/share/heartbeat/hb_standby"
HB_TAKEOVER = "/usr/share/heartbeat/hb_takeover"
HB_DAEMON = "/usr/libexec/heartbeat/heartbeat"  # `-s`: whether a heartbeat process is there, API or not


def _quick(args, timeout=3, stdin=None):
    return __salt__["cmd.run_all"](args, python_shell=False, ignore_retcode=True, output_loglevel="quiet",
                                   timeout=timeout, stdin=stdin)


def heartbeat_state(peer=None, timeout=3):
    """Local heartbeat: {"running", "resources", "peer"}.

    resources is `cl_status rscstatus`: all | local | foreign | none | transition (heartbeat is moving them);
    peer is `cl_status nodestatus PEER` (active, dead, ...) when a peer host name is given."""
    res = _quick(["/usr/bin/cl_status", "rscstatus"], timeout)
    out = {"running": res["retcode"] == 0, "resources": None, "peer": None}
    if out["running"]:
        out["resources"] = res["stdout"].strip() or None
        if peer:
            out["peer"] = _quick(["/usr/bin/cl_status", "nodestatus", peer], timeout)["stdout"].strip() or None
    return out


def has_address(address, interface, timeout=3):
    """True when `address` is configured on `interface` here (the VIP holder)."""
    res = _quick(["ip", "-o", "addr", "show", "dev", interface], timeout)
    if res["retcode"] != 0:
        raise CommandExecutionError(f"ip addr show dev {interface} failed: {res['stderr'].strip()}")
    return any(f" {address}/" in line for line in res["stdout"].splitlines())


def is_mounted(mountpoint):
    """True when something is mounted on `mountpoint` in this minion's mount namespace."""
    with open("/proc/self/mounts", encoding="utf-8") as fh:
        return any(line.split()[1] == mountpoint for line in fh if len(line.split()) > 1)


PEERS_PREFIX = ".mfsha-peers."  # + the node name, on the replicated storage: what the survivor tickles


def record_peers(vip, mountpoint, proc="/proc/net/tcp"):
    """Keep `<mountpoint>/.mfsha-peers.<node name>` equal to this node's ESTABLISHED connections to the VIP ("ip
    port local_port" lines; rewritten only when they change, durably). After a host death
    the survivor's MFSMaster start sends each connection of the dead node's file a tickle ACK (mfsha-tickle):
    without it a client notices the dead master only after mfsmount's 10 s receive timeout. One file per node, so
    the survivor, which starts recording as soon as it holds VIP and storage, never overwrites what it has to
    read. The storage is the mfs user's: the old file is read only if it is root's regular file, else (a planted
    link, a FIFO) the refusal is logged and the file replaced (mfsha_files: never followed). Returns the number of
    peers."""
    with open(proc, encoding="ascii") as fh:
        peers = mfsha_mfs.vip_peers(fh.read(), vip)
    text = _peers_text(peers)
    path = os.path.join(mountpoint, PEERS_PREFIX + os.uname().nodename)  # heartbeat's node name is uname -n
    try:
        if mfsha_files.read_regular(path, limit=1 << 20, owned=True) == text:
            return len(peers)
    except FileNotFoundError:
        pass
    except mfsha_files.UnsafeFile as exc:
        log.warning("mfsha: %s; it is replaced", exc)
    mfsha_files.write_durably(path, text)
    return len(peers)


def _peers_text(peers):
    """The peers file's lines ("ip port local_port"), as mfsha-tickle reads them."""
    return "".join(f"{ip} {port} {lport}\n" for ip, port, lport in peers)


RECORD_LIMIT = 65536  # bytes of a beacon record read back


def _record_path(cluster):
    if not isinstance(cluster, str) or not mfsha_pillar.NAME.match(cluster):
        raise CommandExecutionError(f"mfsha: {cluster!r} is not a cluster name")
    if not __opts__.get("cachedir"):
        raise FileNotFoundError("no minion cachedir: no beacon record")
    return os.path.join(__opts__["cachedir"], "mfsha", f"beacon-{cluster}.json")


def keep_record(cluster, record):
    """Write this node's beacon record of `cluster` (see the beacon's _keep_record) into the minion's cachedir,
    root's and not on the storage, so neither a minion's event nor the mfs user can speak for this node."""
    path = _record_path(cluster)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    mfsha_files.write_durably(path, json.dumps(dict(record, written=time.time())), mode=0o600)


def read_record(cluster):
    """This node's beacon record of `cluster`: {"down": {check: since}, "last_version", "written"}, {} when there is
    none, or {"error": why} when it cannot be read (bounded, a regular file only)."""
    try:
        record = json.loads(mfsha_files.read_regular(_record_path(cluster), RECORD_LIMIT))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, CommandExecutionError) as exc:
        return {"error": f"unreadable beacon record: {exc}"}
    return record if isinstance(record, dict) else {"error": "the beacon record is not a JSON object"}


def _check_args(cfg):
    """node_state's arguments for this master node (mfsha_node.node_args) and the peer's address, from this minion's
    validated settings (CLI and runner use)."""
    cfg = cfg or settings()
    if "master" not in cfg["roles"]:
        raise CommandExecutionError(f"mfsha: {__grains__['id']} is not a master node of any cluster")
    return dict(mfsha_node.node_args(cfg, cfg["me"]["id"]), peer_address=cfg["peer"]["address"])


def node_args(cfg=None):
    """node_state's arguments for this master node from its settings (`cfg`: mfsha.settings' answer, as map.jinja
    holds it): what monitoring.sls writes into the beacon's config, which the beacon hands to node_state as it is.

    CLI Example: salt-call mfsha.node_args"""
    args = _check_args(cfg)
    return {k: args[k] for k in mfsha_node.ARGS}


def node_state(cluster=None, vip=None, interface="eth0", port=9421, mountpoint=None, storage="shared", resource="r0",
               peer=None, timeout=0.5, client=True, record=True):
    """What this master node holds and how its services are, bounded by `timeout` for network probes.

    Without arguments the settings come from the pillar (CLI); the beacon passes them from its config so it works
    with the Salt master down. Returns {"node", "cluster", "time", "heartbeat": heartbeat_state(), "vip", "mounted",
    "active" (holds VIP or storage), "record" (read_record; record=False skips it), "vip_serves" (protocol probe of the VIP from a passive node, else None;
    client=False skips it), "master": mfsmaster.health() on the active node else None, "drbd": normalized status or
    None, "blockers": promotion blockers assuming the peer gave its role up (None unless drbd)}.
    `peer` is the peer's heartbeat node name, or {minion id: peer name} (one call serves both nodes)."""
    if isinstance(peer, dict):
        peer = peer.get(__grains__["id"])
    if vip is None or mountpoint is None:  # the CLI: this node's own settings
        return node_state(**node_args(), timeout=timeout, client=client, record=record)
    out = {"node": __grains__["id"], "cluster": cluster, "time": time.time(),
           "heartbeat": heartbeat_state(peer), "vip": has_address(vip, interface), "mounted": is_mounted(mountpoint),
           "master": None, "drbd": None, "blockers": None}
    out["active"] = out["vip"] or out["mounted"]
    if record:  # the loop's view: this node's own beacon record (the beacon itself does not need it)
        out["record"] = read_record(cluster)
    # a passive node watches the service as a client would: a master that answers only locally (a firewall) or
    # nobody holding the group (a failed start: heartbeat v1 gives up and never retries) shows only from outside
    out["vip_serves"] = None if out["active"] or not client else serves(vip, port, timeout=float(timeout))
    if out["mounted"]:
        out["master"] = __salt__["mfsmaster.health"](cfg=f"{mountpoint}/mfsmaster.cfg", host=vip, port=int(port),
                                                      timeout=float(timeout))
    if storage == "drbd":
        try:
            res = __salt__["drbd.status"](resource).get(resource)
        except CommandExecutionError as exc:
            res, out["drbd_error"] = None, str(exc)
        if res:
            out["drbd"] = {k: res.get(k) for k in ("role", "disk", "connection", "replication", "peer_role",
                                                   "peer_disk", "sync_done", "split_brain")}
            if res.get("connection") == "StandAlone":  # status alone cannot tell split brain from a disconnect
                out["drbd"]["split_brain"] = __salt__["drbd.split_brain"](resource)["split_brain"]
            # a handover demotes the active peer first, so its Primary role does not count here
            after = copy.deepcopy(res)
            for p in after["peers"].values():
                p["role"] = "Secondary"
            out["blockers"] = mfsha_drbd.promotion_blockers(after)
        else:
            out["blockers"] = ["DRBD resource {} is not up".format(resource)]
    return out


def active():
    """True when this node holds the cluster's storage or VIP (heartbeat's active node)."""
    return node_state()["active"]


HOLD_TABLE = "mfsha_hold"  # nft table of hold_rules, in this node's network namespace
HOLD_MAX_S = 20  # the hold's own expiry: a minion that dies mid-restart leaves no dropped FIN/RST behind
TICKLE = "/usr/local/sbin/mfsha-tickle"


def hold_rules(ports, seconds=HOLD_MAX_S):
    """nft script dropping this node's outgoing FIN and RST from `ports` for at most `seconds` (set elements that
    expire by themselves). Declared, deleted, made anew: a table left by an earlier run never doubles its rule."""
    elements = ", ".join(f"{int(p)} timeout {int(seconds)}s" for p in ports)
    return (f"table inet {HOLD_TABLE}\ndelete table inet {HOLD_TABLE}\n"
            f"table inet {HOLD_TABLE} {{\n  set ports {{ type inet_service; flags timeout; }}\n"
            f"  chain out {{ type filter hook output priority 0;\n"
            f"    tcp sport @ports tcp flags & (fin | rst) != 0 drop; }}\n}}\n"
            f"add element inet {HOLD_TABLE} ports {{ {elements} }}\n")


def _hold(vip, ports):
    """Before a hung master is killed: its clients must not learn of the kill before the new master listens. They
    reconnect once at once and then only every 2 s (mfsmount), so a reset they see while nothing listens costs
    them ~2 s. Holds the closing FIN/RST (hold_rules) and notes the connections to the VIP, for _release.
    Returns (True, peers), or (False, why) when nft or ss is missing or nft refuses: the restart then goes on
    as it was, unheld."""
    missing = [tool for tool in ("nft", "ss") if not shutil.which(tool)]
    if missing:
        return False, f"no hold of the old connections: {' and '.join(missing)} not installed"
    with open("/proc/net/tcp", encoding="ascii") as fh:
        peers = [p for p in mfsha_mfs.vip_peers(fh.read(), vip) if p[2] in ports]
    res = _quick(["nft", "-f", "-"], 5, stdin=hold_rules(ports))
    if res["retcode"]:
        return False, f"no hold of the old connections: nft exit {res['retcode']}: {res['stderr'].strip()}"
    return True, peers


def _release(vip, ports, peers):
    """After the new master listens: lift the hold, reset the old master's orphan sockets (ss -K: its FIN still
    unanswered) and tickle the connections that were aborted at the kill (their RST was dropped), so every client
    reconnects now (mfsha-tickle: an out-of-window ACK, answered with the client's numbers, then our RST).
    Returns what it did, or why it could not."""
    res = _quick(["nft", "delete", "table", "inet", HOLD_TABLE], 5)
    if res["retcode"]:  # it expires by itself within HOLD_MAX_S; the restart itself succeeded
        log.warning("mfsha: lifting the nft hold failed: %s", res["stderr"].strip())
        return f"lifting the hold failed (it expires within {HOLD_MAX_S} s): {res['stderr'].strip()}"
    expr = " or ".join(f"sport = :{p}" for p in ports)
    orphans = _quick(["ss", "-K", "-t", "-n", "state", "fin-wait-1", "state", "closing", "state", "last-ack",
                      f"( {expr} )"], 5)
    note = f"{max(len(orphans['stdout'].splitlines()) - 1, 0)} orphan socket(s) reset"
    if orphans["retcode"]:
        note = f"ss -K failed: {orphans['stderr'].strip()}"
    if peers and os.access(TICKLE, os.X_OK):
        with tempfile.TemporaryDirectory() as tmp:  # mfsha-tickle reads the peers files of DIR (root's)
            mfsha_files.write_durably(os.path.join(tmp, PEERS_PREFIX + "before-restart"), _peers_text(peers))
            res = _quick([TICKLE, vip, tmp], 10)
        note += f"; {len(peers)} connection(s) tickled" if res["retcode"] == 0 else \
            f"; mfsha-tickle failed: {res['stderr'].strip()}"
    return note


def restart_master(cfg=None, grace=3, timeout=30, probe_timeout=1.0, expect_version=None, tail_checked=False,
                   vip=None):
    """Restart mfsmaster in place: a running master gets `grace` s to stop (0: none), then SIGKILL with its bgsaver
    (mfsmaster.kill); then `mfsmaster -a` (replays the changelogs). Waits up to `timeout` s for it to answer the
    protocol probe. Returns {"started": True, "was_running", "killed", "pid", "serving_s", "released_reserve",
    "hold"}; raises when it does not serve in time.

    `-a` replays what DATA_PATH holds without a word about changes the master acknowledged but could not log, so
    it is not run when DATA_PATH does not reach `expect_version` (the version the master last reported healthy: the
    beacon's last look), or when the storage was full (less free space than its reserve, which is given back first:
    mfsha.keep_reserve; mfsha_mfs.WAS_FULL stays until a restart with tail_checked) and tail_checked is not set; a
    start that `mfsmaster -a` stops at a changelog hole is no start either. Then it returns {"started": False,
    "refused": "missing_changes", "reason", "gap", "was_running", "killed", "released_reserve", "hold"}: the runner
    compares with the metaloggers, fills in what they hold and asks again with tail_checked.

    With `vip`, a master process that is still there (hung, stopped) is replaced under a hold: see _hold."""
    t0 = time.monotonic()
    cfg = cfg or f"{_check_args(None)['mountpoint']}/mfsmaster.cfg"
    was_running = __salt__["mfsmaster.running"](cfg)
    held, peers = False, None
    if vip and was_running:
        conf = mfsha_mfs.parse_cfg(mfsha_files.read_regular(cfg, limit=1 << 20, owned=True))
        ports = sorted({int(conf[k]) for k in ("MATOML_LISTEN_PORT", "MATOCS_LISTEN_PORT", "MATOCL_LISTEN_PORT")})
        held, peers = _hold(vip, ports)
    try:
        out = _restart_master(cfg, grace, timeout, probe_timeout, expect_version, tail_checked, t0)
    finally:
        hold = _release(vip, ports, peers) if held else peers  # what it did, or why there was no hold
    out.update(was_running=was_running, hold=hold)
    return out


def _restart_master(cfg, grace, timeout, probe_timeout, expect_version, tail_checked, t0):
    stopped = grace > 0 and __salt__["mfsmaster.stop"](cfg=cfg, timeout=grace, kill=True)["killed"]
    killed = __salt__["mfsmaster.kill"](cfg)  # no grace, or what a stop left behind (a stopped bgsaver)
    data_path = os.path.dirname(cfg)  # DATA_PATH is the mountpoint (mfsha_pillar)
    released = mfsha_mfs.release_reserve(data_path)
    freed = f"; the storage was full: its {released >> 20} MiB reserve was released" if released else ""
    out = {"killed": bool(stopped or killed), "released_reserve": released}
    refused = dict(out, started=False, refused=mfsha_mfs.MISSING_CHANGES, gap=None)
    was_full = os.path.join(data_path, mfsha_mfs.WAS_FULL)
    gap = expect_version and __salt__["mfsmaster.missing_changes"](expect_version, cfg)
    if gap or (os.path.lexists(was_full) and not tail_checked):  # lexists: a link planted there is evidence too
        why = (f"{gap['data_path']} replays up to change {gap['from']}, the master had reached {expect_version}"
               if gap else "the changelog may lack its tail")
        return dict(refused, gap=gap or None, reason=f"{mfsha_mfs.MISSING}: {why}; not started{freed}")
    try:
        started = __salt__["mfsmaster.start"](cfg=cfg, timeout=timeout)
    except CommandExecutionError as exc:
        if mfsha_mfs.HOLE not in str(exc):  # the daemon's own words are the only sign of a hole only it sees
            raise
        return dict(refused, reason=f"{mfsha_mfs.MISSING}: {exc}; not started{freed}")
    deadline = t0 + timeout
    while True:
        health = __salt__["mfsmaster.health"](cfg=cfg, timeout=probe_timeout)
        if health["healthy"]:
            break
        if time.monotonic() > deadline:
            raise CommandExecutionError(f"mfsha: mfsmaster restarted (pid {started['pid']}) but not serving after "
                                        f"{timeout} s: {health['detail']}{freed}")
        time.sleep(0.1)
    if os.path.lexists(was_full):  # tail_checked: what the metaloggers held is in DATA_PATH and replayed
        os.unlink(was_full)
    return dict(out, started=True, pid=started["pid"], serving_s=round(time.monotonic() - t0, 2))


def keep_reserve(mountpoint, size_mb):
    """Set `size_mb` MiB aside in <mountpoint>/.mfsha-reserve (root's, preallocated) while twice that is free, so
    that a master which fills its storage can be given room to replay and log again (restart_master releases it).
    The beacon calls this on the holder each look; it is an lstat unless the file is missing. The storage is the
    mfs user's: a reserve that is not a regular file raises UnsafeFile, and the file is made through mfsha_files
    (O_EXCL temporary file, never a link's target). Returns its size."""
    size = int(size_mb) << 20
    if not size:
        return 0
    st = mfsha_files.lstat_in(mountpoint, mfsha_mfs.RESERVE)
    if st is not None:
        if not stat.S_ISREG(st.st_mode):
            raise mfsha_files.UnsafeFile(os.path.join(mountpoint, mfsha_mfs.RESERVE), "is not a regular file")
        return st.st_size
    fs = os.statvfs(mountpoint)
    if fs.f_bavail * fs.f_frsize < 2 * size:
        mfsha_files.remove_leftover_tmp(mountpoint, mfsha_mfs.RESERVE)  # a crash's half-made reserve eats space
        return 0
    mfsha_files.preallocate(os.path.join(mountpoint, mfsha_mfs.RESERVE), size)
    return size


def handover(grace=2):
    """Hand every resource to the peer through heartbeat (`hb_standby`), so heartbeat stays their only owner.

    An unhealthy (e.g. hung) local master is killed first: heartbeat's stop would wait serve_timeout for it.
    Returns {"killed_hung_master", "log"} as soon as heartbeat accepted the request (the move is asynchronous)."""
    args = _check_args(None)
    if not heartbeat_state()["running"]:
        raise CommandExecutionError("mfsha: heartbeat is not running here; it cannot hand the resources over")
    killed = False
    cfg = f"{args['mountpoint']}/mfsmaster.cfg"
    if is_mounted(args["mountpoint"]):
        health = __salt__["mfsmaster.health"](cfg=cfg, host=args["vip"], port=int(args["port"]), timeout=1.0)
        if health["process"] and not health["healthy"]:
            killed = __salt__["mfsmaster.stop"](cfg=cfg, timeout=grace, kill=True)["killed"]
    res = __salt__["cmd.run_all"]([HB_STANDBY], python_shell=False, ignore_retcode=True, timeout=30)
    if res["retcode"] != 0:
        raise CommandExecutionError(f"mfsha: {HB_STANDBY} failed (exit {res['retcode']}): "
                                    f"{(res['stderr'] or res['stdout']).strip()}")
    return {"killed_hung_master": killed, "log": (res["stdout"] + res["stderr"]).strip()}


def takeover(timeout=60):
    """Take every resource through heartbeat while no node holds them: `hb_takeover all`, asked again every 10 s
    (a request that meets heartbeat's own pending `sleep 30; hb_standby` after a failed start is ignored); with the
    peer dead, where hb_takeover has nobody to ask, a heartbeat restart (alone after initdead it acquires every
    resource). Returns {"how", "held_s"} once this node holds the group; raises after `timeout` s."""
    args = _check_args(None)
    t0 = time.monotonic()
    hb = heartbeat_state(args["peer"])
    if not hb["running"]:
        raise CommandExecutionError("mfsha: heartbeat is not running here; it cannot take the resources")

    def held():
        return has_address(args["vip"], args["interface"]) or is_mounted(args["mountpoint"])
    if held():
        return {"how": "none: this node holds the resources", "held_s": 0.0}
    if hb["peer"] == "dead":
        how, cmd, every = "heartbeat restart (peer dead)", ["service", "heartbeat", "restart"], timeout
    else:
        how, cmd, every = "hb_takeover all", [HB_TAKEOVER, "all"], 10
    asked = None
    while True:
        if asked is None or time.monotonic() - asked >= every:
            res = __salt__["cmd.run_all"](cmd, python_shell=False, ignore_retcode=True, timeout=60)
            if res["retcode"] != 0:
                raise CommandExecutionError(f"mfsha: {' '.join(cmd)} failed (exit {res['retcode']}): "
                                            f"{(res['stderr'] or res['stdout']).strip()}")
            asked = time.monotonic()
        time.sleep(1)
        if held():
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
    args = _check_args(None)
    t0 = time.monotonic()
    if has_address(args["vip"], args["interface"]) or is_mounted(args["mountpoint"]):
        raise CommandExecutionError("mfsha: this node holds the VIP or the storage: heartbeat is not started beside "
                                    "them (a human decides)")
    how = "none: heartbeat runs"
    hb = heartbeat_state(args["peer"])
    while not hb["running"] and how != "service heartbeat start":
        alive = _quick([HB_DAEMON, "-s"])  # a process (pid file) whose API does not answer: shutting down
        if alive["retcode"] != 0:
            res = __salt__["cmd.run_all"](["service", "heartbeat", "start"], python_shell=False, ignore_retcode=True,
                                          timeout=60)
            if res["retcode"] != 0:
                raise CommandExecutionError(f"mfsha: service heartbeat start failed (exit {res['retcode']}): "
                                            f"{(res['stderr'] or res['stdout']).strip()}")
            how, t0 = "service heartbeat start", time.monotonic()  # the join gets its own `timeout`
        elif time.monotonic() - t0 > timeout:
            return {"started": False, "why": f"heartbeat is still shutting down after {timeout} s: "
                                             f"{alive['stdout'].strip()}"}
        else:
            time.sleep(1)
            hb = heartbeat_state(args["peer"])
    while not hb["running"] or hb["peer"] != "active":
        if time.monotonic() - t0 > timeout:
            seen = f"{args['peer']} is {hb['peer'] or 'unknown'} to it" if hb["running"] else "it does not answer"
            raise CommandExecutionError(f"mfsha: {how}: {seen} after {timeout} s")
        time.sleep(1)
        hb = heartbeat_state(args["peer"])
    return {"started": True, "how": how, "joined_s": round(time.monotonic() - t0, 2)}


BOOK = "mfsha-cluster.json"  # last word from the Salt master (maintenance, last failover), for status on a node


def note(book=None):
    """Store what the Salt master's runner knows about this cluster (maintenance flag, last failover), so that
    `salt-call mfsha.status` can show it; called by the runner after each change. Returns the stored book."""
    path = os.path.join(__opts__["cachedir"], BOOK)
    if book is not None:
        mfsha_files.write_durably(path, json.dumps(book))
        return book
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return {}


def status():
    """This node's view of its cluster: its own facts, the peer as heartbeat and DRBD see it, whether the VIP and
    the peer answer the MooseFS protocol, and the Salt master's last word (maintenance, last failover).

    CLI Example: salt-call mfsha.status"""
    cfg = settings()
    args = _check_args(cfg)
    me = node_state()
    port = int(args["port"])
    return {"cluster": args["cluster"], "node": me["node"], "active": me["active"], "vip_serves": serves(args["vip"], port),
            "peer": {"id": cfg["peer"]["id"], "heartbeat": me["heartbeat"]["peer"],
                     "serves": serves(args["peer_address"], port),
                     "drbd_role": (me["drbd"] or {}).get("peer_role"), "drbd_disk": (me["drbd"] or {}).get("peer_disk")},
            "maintenance": cfg["failover"]["maintenance"] or bool(note().get("maintenance")),
            "last_failover": note().get("last"), "self": me}
# ==== end of failover block ==========================================================================================
