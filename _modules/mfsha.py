"""mfsha: this minion's validated cluster settings and the cluster-level facts the formula decides on.

The pillar rules live in _utils/mfsha_pillar.py (pure Python); this module feeds it the pillar and the formula's
defaults, and turns its errors into Salt errors so an invalid pillar stops the render.
"""
import copy
import importlib
import json
import logging
import os
import re
import shutil
import tempfile
import time

import yaml
import mfsha_cmd  # _utils/: Salt's loader puts it on sys.path while this module loads
import mfsha_drbd
import mfsha_files
import mfsha_glob
import mfsha_hold
import mfsha_mfs
import mfsha_node
import mfsha_pillar
import mfsha_redact
from salt.exceptions import CommandExecutionError

# A running minion or master keeps a module's first import; the synced _utils of an upgrade must load too (mfsha_mfs
# uses mfsha_files, mfsha_pillar and mfsha_cmd use mfsha_redact, mfsha_pillar mfsha_glob, mfsha_node: those first).
for _mod in (mfsha_drbd, mfsha_files, mfsha_mfs, mfsha_glob, mfsha_redact, mfsha_pillar, mfsha_cmd, mfsha_hold,
             mfsha_node):
    importlib.reload(_mod)

__virtualname__ = "mfsha"
log = logging.getLogger(__name__)


def __virtual__():
    return __virtualname__


def _run(args, timeout=3, stdin=None, env=None, check=False):
    return mfsha_cmd.run(__salt__["cmd.run_all"], args, timeout=timeout, stdin=stdin, env=env,
                         fail=CommandExecutionError if check else None)


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
    """True when a MooseFS master answers a protocol request on host:port within `timeout` seconds (a TCP accept
    is not enough: a hung master's kernel still accepts, and so do some networks' middleboxes)."""
    return mfsha_mfs.probe(host, int(port), timeout)[0]


def vip_in_use(address, interface, timeout=3):
    """True when some host answers ARP for `address` on `interface` (arping duplicate address detection). The VIP
    is held whenever heartbeat holds the resources, also while the master behind it is hung."""
    cmd = ["arping", "-D", "-q", "-c", "2", "-w", str(timeout), "-I", interface, address]
    res = _run(cmd, timeout + 5)
    if res["retcode"] in (0, 1):
        return res["retcode"] == 1
    raise CommandExecutionError(mfsha_cmd.failure(cmd, res))


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
            "master" in cfg["roles"] and cfg["me"]["id"] == cfg["preferred"] and not __salt__["heartbeat.running"]()
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
        first = _run(["modinfo", "-F", "version", "drbd"], 10)["stdout"]
    match = re.search(r"(?:version:\s*)?([0-9]+)\.[0-9]+", first or "")
    return int(match.group(1)) if match else 9


# ---- node facts for the beacon, the runner and operators; in-place restart (heartbeat's moves: _modules/heartbeat.py).
# Everything here is bounded by short timeouts: the beacon calls node_state() every tick.

def has_address(address, interface, timeout=3):
    """True when `address` is configured on `interface` here (the VIP holder)."""
    res = _run(["ip", "-o", "addr", "show", "dev", interface], timeout, check=True)
    return any(f" {address}/" in line for line in res["stdout"].splitlines())


def is_mounted(mountpoint):
    """True when something is mounted on `mountpoint` in this minion's mount namespace."""
    with open("/proc/self/mounts", encoding="utf-8") as fh:
        return any(line.split()[1] == mountpoint for line in fh if len(line.split()) > 1)


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
    with the Salt master down. Returns {"node", "cluster", "time", "heartbeat": heartbeat.state(), "vip", "mounted",
    "active" (holds VIP or storage), "record" (read_record; record=False skips it), "vip_serves" (protocol probe of
    the VIP from a passive node, else None; client=False skips it), "master": mfsmaster.health() on the active node else None, "drbd": normalized status or
    None, "blockers": promotion blockers assuming the peer gave its role up (None unless drbd)}.
    `peer` is the peer's heartbeat node name, or {minion id: peer name} (one call serves both nodes)."""
    if isinstance(peer, dict):
        peer = peer.get(__grains__["id"])
    if vip is None or mountpoint is None:  # the CLI: this node's own settings
        return node_state(**node_args(), timeout=timeout, client=client, record=record)
    out = {"node": __grains__["id"], "cluster": cluster, "time": time.time(),
           "heartbeat": __salt__["heartbeat.state"](peer), "vip": has_address(vip, interface),
           "mounted": is_mounted(mountpoint),
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


TICKLE = "/usr/local/sbin/mfsha-tickle"


def _hold(vip, ports):
    """Before a hung master is killed: its clients must not learn of the kill before the new master listens
    (mfsha_hold). Holds the closing FIN/RST and notes the connections to the VIP, for _release.
    Returns (True, peers), or (False, why) when nft or ss is missing or nft refuses: the restart then goes on
    as it was, unheld."""
    missing = [tool for tool in ("nft", "ss") if not shutil.which(tool)]
    if missing:
        return False, f"no hold of the old connections: {' and '.join(missing)} not installed"
    with open("/proc/net/tcp", encoding="ascii") as fh:
        peers = mfsha_hold.held_peers(mfsha_hold.vip_peers(fh.read(), vip), ports)
    res = _run(mfsha_hold.HOLD_COMMAND, 5, stdin=mfsha_hold.hold_rules(ports))
    if res["retcode"]:
        return False, f"no hold of the old connections: {mfsha_cmd.failure(mfsha_hold.HOLD_COMMAND, res)}"
    return True, peers


def _release(vip, ports, peers):
    """After the new master listens: lift the hold, reset the old master's orphan sockets (ss -K: its FIN still
    unanswered) and tickle the connections that were aborted at the kill (their RST was dropped), so every client
    reconnects now (mfsha-tickle). Returns what it did, or why it could not."""
    res = _run(mfsha_hold.LIFT_COMMAND, 5)
    if res["retcode"]:  # it expires by itself within HOLD_MAX_S; the restart itself succeeded
        why = mfsha_cmd.failure(mfsha_hold.LIFT_COMMAND, res)
        log.warning("mfsha: lifting the nft hold failed: %s", why)
        return f"lifting the hold failed (it expires within {mfsha_hold.HOLD_MAX_S} s): {why}"
    cmd = mfsha_hold.orphans_command(ports)
    orphans = _run(cmd, 5)
    note = f"{mfsha_hold.orphans_reset(orphans['stdout'])} orphan socket(s) reset"
    if orphans["retcode"]:
        note = mfsha_cmd.failure(cmd, orphans)
    if peers and os.access(TICKLE, os.X_OK):
        with tempfile.TemporaryDirectory() as tmp:  # mfsha-tickle reads the peers files of DIR (root's)
            mfsha_files.write_durably(os.path.join(tmp, mfsha_hold.peers_file("before-restart")),
                                      mfsha_hold.peers_text(peers))
            cmd = [TICKLE, vip, tmp]
            res = _run(cmd, 10, env={"MFSHA_UTILS": os.path.dirname(mfsha_hold.__file__)})
        note += f"; {len(peers)} connection(s) tickled" if res["retcode"] == 0 else \
            f"; {mfsha_cmd.failure(cmd, res)}"
    return note


def restart_master(cfg=None, grace=3, timeout=30, probe_timeout=1.0, expect_version=None, tail_checked=False,
                   vip=None):
    """Restart mfsmaster in place: a running master gets `grace` s to stop (0: none), then SIGKILL with its bgsaver
    (mfsmaster.kill); then `mfsmaster -a` (replays the changelogs). Waits up to `timeout` s for it to answer the
    protocol probe. Returns {"started": True, "was_running", "killed", "pid", "serving_s", "released_reserve",
    "hold"}; raises when it does not serve in time.

    `-a` replays what DATA_PATH holds without a word about changes the master acknowledged but could not log, so
    it is not run when DATA_PATH does not reach `expect_version` (the version the master last reported healthy: the
    beacon's last look), or when the storage was full (less free space than its reserve, given back first:
    mfsha_storage.keep_reserve; mfsha_mfs.WAS_FULL stays until a restart with tail_checked) and tail_checked is not
    set; a start that `mfsmaster -a` stops at a changelog hole is no start either. Then it returns {"started": False,
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
    drbd, book = me["drbd"] or {}, note()
    return {"cluster": args["cluster"], "node": me["node"], "active": me["active"],
            "vip_serves": serves(args["vip"], port),
            "peer": {"id": cfg["peer"]["id"], "heartbeat": me["heartbeat"]["peer"],
                     "serves": serves(args["peer_address"], port),
                     "drbd_role": drbd.get("peer_role"), "drbd_disk": drbd.get("peer_disk")},
            "maintenance": cfg["failover"]["maintenance"] or bool(book.get("maintenance")),
            "last_failover": book.get("last"), "self": me}
