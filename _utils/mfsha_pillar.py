"""Validate the `mfsha` pillar and derive one minion's settings. Pure Python: no Salt import.

Every error names the pillar key path and the bad value, so an invalid pillar fails at render time with one
clear message and nothing is applied.
"""
import copy
import fnmatch
import importlib
import ipaddress
import re

import mfsha_glob  # synced _utils beside this one
import mfsha_redact
import mfsha_tofs

importlib.reload(mfsha_tofs)  # callers reload this module after an upgrade (saltutil.sync_all): its helper too

ROOT = "mfsha:clusters"
# Anything that lands in a config file or on a command line: no spaces, quotes, newlines or shell metacharacters.
TOKEN = re.compile(r"^[A-Za-z0-9_.,:=/@+%-]+$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
GLOB = re.compile(r"^[A-Za-z0-9_.*?\[\]-]+$")
CFG_KEY = re.compile(r"^[A-Z][A-Z0-9_]*$")
PLACEHOLDERS = ("change", "secret", "password", "example", "xxx", "todo")
AFTER_SB = {
    "after_sb_0pri": {"disconnect", "discard-younger-primary", "discard-older-primary", "discard-zero-changes",
                      "discard-least-changes", "discard-node-NODENAME"},
    "after_sb_1pri": {"disconnect", "consensus", "violently-as0p", "discard-secondary", "call-pri-lost-after-sb"},
    "after_sb_2pri": {"disconnect", "violently-as0p", "call-pri-lost-after-sb"},
}
# Keys the formula owns: they must follow the mountpoint, so the pillar may not move them.
FORCED_CFG = ("DATA_PATH", "EXPORTS_FILENAME")
FREE_FORM = {"nodes", "disks", "config"}
ROLES = ("chunkserver", "metalogger", "client")
COMPOUND_WORDS = ("and", "or", "not")


class PillarError(ValueError):
    """An invalid pillar value; str() names the key path and the value, never a secret's: the value of a key that
    looks like a secret (or a typo of one) is hidden (mfsha_redact), and so is `value` when it is HIDE."""

    def __init__(self, path, value, problem):
        self.path, self.problem = path, problem
        secret = value is HIDE or mfsha_redact.looks_secret(path)
        self.value = "<value not shown>" if value is HIDE else mfsha_redact.hidden(value) if secret else value
        super().__init__(f"invalid pillar {path}: {self.value if secret else repr(value)} {problem}")


HIDE = object()  # PillarError value of an unknown key: its value is not shown (`secrte:` is not known as a secret)


def merge(base, over):
    """Deep-merge `over` onto a copy of `base`: dicts recurse, anything else replaces."""
    out = copy.deepcopy(base)
    for key, val in (over or {}).items():
        if isinstance(val, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], val)
        else:
            out[key] = copy.deepcopy(val)
    return out


def _unknown_keys(path, given, defaults):
    for key, val in given.items():
        if key not in defaults:
            raise PillarError(f"{path}:{key}", HIDE, f"is not a known key (known: {', '.join(sorted(defaults))})")
        if isinstance(defaults[key], dict) and key not in FREE_FORM:
            _unknown_keys(f"{path}:{key}", _typed(f"{path}:{key}", val, dict, "a mapping"), defaults[key])


def _token(path, value, what="a plain value (no spaces, quotes, newlines or shell metacharacters)"):
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not TOKEN.match(str(value)):
        raise PillarError(path, value, f"must be {what}")
    return str(value)


def _int(path, value, lo, hi):
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise PillarError(path, value, f"must be an integer from {lo} to {hi}")
    return value


def _typed(path, value, kind, what):
    if not isinstance(value, kind):
        raise PillarError(path, value, f"must be {what}")
    return value


def _bool(path, value):
    return _typed(path, value, bool, "true or false")


def _ip(path, value):
    """An IPv4 address: the VIP's probes, the tickle of its TCP peers (/proc/net/tcp) and IPaddr2's gratuitous ARP
    are IPv4 only, so an IPv6 address would deploy and then never fail over."""
    try:
        addr = ipaddress.ip_address(value if isinstance(value, str) else "")
    except ValueError:
        raise PillarError(path, value, "is not an IPv4 address") from None
    if addr.version != 4:
        raise PillarError(path, value, "is IPv6: mfsha supports IPv4 addresses only")
    return addr


def _abspath(path, value):
    if not isinstance(value, str) or not value.startswith("/") or not TOKEN.match(value) or ".." in value:
        raise PillarError(path, value, "must be an absolute path without spaces or shell metacharacters")
    return value.rstrip("/") or "/"


def _secret(path, value):
    if not isinstance(value, str) or not value:
        raise PillarError(path, "", "is missing: set a random secret, e.g. `openssl rand -hex 16`")
    if len(value) < 12 or any(p in value.lower() for p in PLACEHOLDERS):
        raise PillarError(path, value, "is a placeholder or shorter than 12 characters")
    if not re.match(r"^[A-Za-z0-9_.+/=-]+$", value):
        raise PillarError(path, value, "may only hold letters, digits and _.+/=-")
    return value


def _list(path, value):
    return _typed(path, value, list, "a list")


def _config_map(path, value):
    for key, val in _typed(path, value, dict, "a mapping of KEY: value").items():
        if not CFG_KEY.match(str(key)):
            raise PillarError(f"{path}:{key}", val, "has a key that is not an UPPER_CASE config name")
        if str(key).endswith("_PORT"):
            _int(f"{path}:{key}", val, 1, 65535)
        _token(f"{path}:{key}", val)
    return value


def _nodes(path, cluster):
    nodes = cluster["nodes"]
    if not isinstance(nodes, dict) or len(nodes) != 2:
        raise PillarError(f"{path}:nodes", sorted(nodes) if isinstance(nodes, dict) else nodes,
                          "must name exactly two master nodes")
    out = []
    for mid in sorted(nodes, key=str):
        npath = f"{path}:nodes:{mid}"
        node = nodes[mid] or {}
        if not isinstance(mid, str) or not NAME.match(mid):
            raise PillarError(npath, mid, "is not a valid minion id")
        if not isinstance(node, dict):
            raise PillarError(npath, node, "must be a mapping with address (and hostname)")
        extra = set(node) - {"hostname", "address"}
        if extra:
            raise PillarError(f"{npath}:{sorted(extra)[0]}", HIDE, "is not a known key (known: address, hostname)")
        hostname = str(node.get("hostname") or mid)
        if not NAME.match(hostname):
            raise PillarError(f"{npath}:hostname", hostname, "is not a valid host name")
        out.append({"id": str(mid), "hostname": hostname, "address": str(_ip(f"{npath}:address", node.get("address")))})
    if out[0]["address"] == out[1]["address"]:
        raise PillarError(f"{path}:nodes:{out[1]['id']}:address", out[1]["address"], "duplicates the other node's address")
    if out[0]["hostname"] == out[1]["hostname"]:
        raise PillarError(f"{path}:nodes:{out[1]['id']}:hostname", out[1]["hostname"], "duplicates the other node's hostname")
    return out


def _vip(path, vip, nodes):
    addr = _ip(f"{path}:vip:address", vip["address"])
    prefix = _int(f"{path}:vip:prefix", vip["prefix"], 1, 32)
    net = ipaddress.ip_network(f"{addr}/{prefix}", strict=False)
    for node in nodes:
        if str(addr) == node["address"]:
            raise PillarError(f"{path}:vip:address", str(addr), f"duplicates the address of node {node['id']}")
        if ipaddress.ip_address(node["address"]) not in net:
            raise PillarError(f"{path}:vip:address", f"{addr}/{prefix}",
                              f"is outside the subnet of node {node['id']} ({node['address']})")
    return {"address": str(addr), "prefix": prefix, "interface": _token(f"{path}:vip:interface", vip["interface"]),
            "network": str(net)}


def _storage(path, st, nodes):
    spath = f"{path}:storage"
    st["mountpoint"] = _abspath(f"{spath}:mountpoint", st["mountpoint"])
    if st["mountpoint"] == "/":
        raise PillarError(f"{spath}:mountpoint", "/", "must not be the root directory")
    _int(f"{spath}:reserve_mb", st["reserve_mb"], 0, 1 << 20)
    if st["fstype"] not in ("ext4", "ext3", "xfs"):
        raise PillarError(f"{spath}:fstype", st["fstype"], "must be one of ext4, ext3, xfs")
    if st["type"] == "drbd":
        d, dpath = st["drbd"], f"{spath}:drbd"
        if not NAME.match(str(d["resource"])):
            raise PillarError(f"{dpath}:resource", d["resource"], "is not a valid resource name")
        if not re.match(r"^/dev/drbd[0-9]{1,3}$", str(d["device"])):
            raise PillarError(f"{dpath}:device", d["device"], "must be /dev/drbdN")
        d["minor"] = int(d["device"][len("/dev/drbd"):])
        _int(f"{dpath}:port", d["port"], 1, 65535)
        if d["protocol"] not in ("A", "B", "C"):
            raise PillarError(f"{dpath}:protocol", d["protocol"], "must be A, B or C")
        _secret(f"{dpath}:secret", d["secret"])
        if not isinstance(d["disks"], dict) or sorted(d["disks"]) != sorted(n["id"] for n in nodes):
            raise PillarError(f"{dpath}:disks", d["disks"], "must give one backing disk for each of the two nodes")
        for mid, dev in d["disks"].items():
            _abspath(f"{dpath}:disks:{mid}", dev)
        _token(f"{dpath}:resync_rate", d["resync_rate"])
        for key, allowed in AFTER_SB.items():
            if d[key] not in allowed:
                raise PillarError(f"{dpath}:{key}", d[key], f"must be one of {', '.join(sorted(allowed))}")
        if d["fence_peer"]:
            _abspath(f"{dpath}:fence_peer", d["fence_peer"])
        st["device"] = d["device"]
    elif st["type"] == "shared":
        if not st["shared"]["device"]:
            raise PillarError(f"{spath}:shared:device", "", "is missing: the block device both nodes see")
        st["device"] = _abspath(f"{spath}:shared:device", st["shared"]["device"])
    else:
        raise PillarError(f"{spath}:type", st["type"], "must be drbd or shared")
    return st


def _heartbeat(path, hb):
    hpath = f"{path}:heartbeat"
    for key in ("keepalive", "warntime", "deadtime", "initdead", "join_timeout"):
        _int(f"{hpath}:{key}", hb[key], 1, 3600)
    if not hb["keepalive"] < hb["warntime"] < hb["deadtime"]:
        raise PillarError(f"{hpath}:deadtime", hb["deadtime"], "must exceed warntime, which must exceed keepalive")
    if hb["initdead"] < 2 * hb["deadtime"]:
        raise PillarError(f"{hpath}:initdead", hb["initdead"], "must be at least twice deadtime")
    _int(f"{hpath}:udpport", hb["udpport"], 1, 65535)
    _secret(f"{hpath}:auth_key", hb["auth_key"])
    hb["ping_nodes"] = [str(_ip(f"{hpath}:ping_nodes:{i}", p)) for i, p in enumerate(_list(f"{hpath}:ping_nodes", hb["ping_nodes"]))]
    if hb["ping_nodes"] and hb["deadtime"] < 5:  # mfsha-selffence: ~2 s of silence, then the release
        raise PillarError(f"{hpath}:deadtime", hb["deadtime"], "must be at least 5 with ping_nodes: a cut-off holder "
                                                              "needs ~3 s to let go before its peer takes over")
    _bool(f"{hpath}:auto_failback", hb["auto_failback"])
    return hb


def _exports(path, exports, vip):
    if not exports:  # safe default: the cluster's own subnet, never everyone
        return [{"network": vip["network"], "path": "/", "options": "rw,alldirs,maproot=0"},
                {"network": vip["network"], "path": ".", "options": "rw"}]
    for i, ex in enumerate(_list(path, exports)):
        epath = f"{path}:{i}"
        if not isinstance(ex, dict) or set(ex) - {"network", "path", "options"}:
            raise PillarError(epath, ex, "must be a mapping with network, path and options")
        net = str(ex.get("network", ""))
        if net != "*" and not re.match(r"^[0-9A-Fa-f:.]+(/[0-9]+)?(-[0-9A-Fa-f:.]+)?$", net):
            raise PillarError(f"{epath}:network", net, "must be *, an address, address/prefix or a range")
        if ex.get("path") != "." and not str(ex.get("path", "")).startswith("/"):
            raise PillarError(f"{epath}:path", ex.get("path"), "must be an absolute path or . (meta)")
        _token(f"{epath}:path", ex["path"])
        _token(f"{epath}:options", ex.get("options", ""))
    return exports


def _targets(path, targets):
    for i, t in enumerate(_list(path, targets)):
        if not isinstance(t, str) or not GLOB.match(t) or len(t) > 255:
            raise PillarError(f"{path}:{i}", t, "must be a minion id or glob")
        if t in COMPOUND_WORDS:  # the runner joins the targets with ` or ` into one compound target
            raise PillarError(f"{path}:{i}", t, "is a compound target operator, not a minion id or glob")
    return targets


def _one_cluster_each(clusters):
    """A minion feeds one cluster only: the metalogger fill copies what the metalogger targets' minions return into
    DATA_PATH, so a target that can match another cluster's minion, or any master node, is refused."""
    for name, c in clusters.items():
        for role in ROLES:
            for i, glob in enumerate(c[role + "s"]["targets"]):
                path = f"{ROOT}:{name}:{role}s:targets:{i}"
                for other, oc in clusters.items():
                    node = next((n["id"] for n in oc["nodes"] if fnmatch.fnmatchcase(n["id"], glob)), None)
                    if node:
                        raise PillarError(path, glob, f"matches {node}, a master node of cluster {other}")
                    if other == name:
                        continue
                    for orole in ROLES:
                        for g in oc[orole + "s"]["targets"]:
                            both = mfsha_glob.example(glob, g)
                            if both is not None:
                                raise PillarError(path, glob, f"can match a minion that {orole} target {g!r} of "
                                                              f"cluster {other} matches too (e.g. {both!r}): a minion "
                                                              "serves one cluster only")


def validate_cluster(name, pillar_cluster, defaults):
    """Merge one cluster's pillar over the defaults and check every value. Returns the settings."""
    path = f"{ROOT}:{name}"
    if not NAME.match(str(name)):
        raise PillarError(path, name, "is not a valid cluster name")
    _unknown_keys(path, _typed(path, pillar_cluster, dict, "a mapping"), defaults)
    c = merge(defaults, pillar_cluster)
    c["name"] = str(name)
    c["nodes"] = _nodes(path, c)
    ids = [n["id"] for n in c["nodes"]]
    c["preferred"] = c["preferred"] or ids[0]
    if c["preferred"] not in ids:
        raise PillarError(f"{path}:preferred", c["preferred"], f"is not one of the nodes ({', '.join(ids)})")
    c["vip"] = _vip(path, c["vip"], c["nodes"])
    c["storage"] = _storage(path, c["storage"], c["nodes"])
    c["heartbeat"] = _heartbeat(path, c["heartbeat"])
    own = {n["address"]: f"the address of node {n['id']}" for n in c["nodes"]}
    own[c["vip"]["address"]] = "the VIP"
    for i, ping in enumerate(c["heartbeat"]["ping_nodes"]):  # a witness must be a third host (mfsha-witness)
        if ping in own:
            raise PillarError(f"{path}:heartbeat:ping_nodes:{i}", ping, f"is {own[ping]}: a ping node must be a third host")
    mcfg = _config_map(f"{path}:master:config", c["master"]["config"])
    for key in FORCED_CFG:
        if key in (pillar_cluster.get("master") or {}).get("config", {}):
            raise PillarError(f"{path}:master:config:{key}", mcfg[key], "is set by the formula from storage:mountpoint")
    mcfg["DATA_PATH"] = c["storage"]["mountpoint"]
    mcfg["EXPORTS_FILENAME"] = c["storage"]["mountpoint"] + "/mfsexports.cfg"
    _int(f"{path}:master:config:MATOCL_LISTEN_PORT", mcfg["MATOCL_LISTEN_PORT"], 1, 65535)
    c["master"]["exports"] = _exports(f"{path}:master:exports", c["master"]["exports"], c["vip"])
    for role in ("chunkservers", "metaloggers", "clients"):
        _targets(f"{path}:{role}:targets", c[role]["targets"])
        if "config" in c[role]:
            _config_map(f"{path}:{role}:config", c[role]["config"])
    c["chunkservers"]["hdds"] = [_abspath(f"{path}:chunkservers:hdds:{i}", h)
                                 for i, h in enumerate(_list(f"{path}:chunkservers:hdds", c["chunkservers"]["hdds"]))]
    c["clients"]["mountpoint"] = _abspath(f"{path}:clients:mountpoint", c["clients"]["mountpoint"])
    for i, opt in enumerate(_list(f"{path}:clients:options", c["clients"]["options"])):
        _token(f"{path}:clients:options:{i}", opt)
    f = c["failover"]
    for key in ("check_interval", "debounce", "restart_budget", "cooldown", "serve_timeout"):
        _int(f"{path}:failover:{key}", f[key], 0 if key == "restart_budget" else 1, 86400)
    _bool(f"{path}:failover:enabled", f["enabled"])
    _bool(f"{path}:failover:maintenance", f["maintenance"])
    return c


def validate(pillar_mfsha, defaults):
    """Validate every cluster of the `mfsha` pillar. Returns {cluster name: settings}."""
    if not isinstance(pillar_mfsha, dict) or not isinstance(pillar_mfsha.get("clusters"), dict) \
            or not pillar_mfsha["clusters"]:
        raise PillarError(ROOT, (pillar_mfsha or {}).get("clusters") if isinstance(pillar_mfsha, dict) else pillar_mfsha,
                          "must map at least one cluster name to its settings")
    extra = set(pillar_mfsha) - {"clusters", "tofs"}
    if extra:
        key = sorted(extra)[0]
        raise PillarError(f"mfsha:{key}", HIDE, "is not a known key (known: clusters, tofs)")
    tofs(pillar_mfsha, defaults)
    clusters = {name: validate_cluster(name, c, defaults["cluster"]) for name, c in sorted(pillar_mfsha["clusters"].items())}
    seen = {}
    for name, c in clusters.items():  # a master node or an address serves one cluster only
        for node in c["nodes"]:
            for key in (node["id"], node["address"]):
                if key in seen and seen[key] != name:
                    raise PillarError(f"{ROOT}:{name}:nodes:{node['id']}", key, f"is already used by cluster {seen[key]}")
                seen[key] = name
        if c["vip"]["address"] in seen and seen[c["vip"]["address"]] != name:
            raise PillarError(f"{ROOT}:{name}:vip:address", c["vip"]["address"], f"is already used by cluster {seen[c['vip']['address']]}")
        seen[c["vip"]["address"]] = name
    _one_cluster_each(clusters)
    return clusters


def tofs(pillar_mfsha, defaults):
    """The validated `mfsha:tofs` (mfsha_tofs): where mfsha/libtofs.jinja looks for a site's templates."""
    try:
        return mfsha_tofs.validate("mfsha:tofs", pillar_mfsha.get("tofs"), defaults["tofs"])
    except mfsha_tofs.Invalid as exc:
        path, value, problem = exc.args
        raise PillarError(path, HIDE if value is mfsha_tofs.HIDE else value, problem) from None


def roles_of(minion_id, cluster):
    """The roles `minion_id` has in one validated cluster: master, chunkserver, metalogger, client."""
    roles = ["master"] if any(n["id"] == minion_id for n in cluster["nodes"]) else []
    for role in ROLES:
        if any(fnmatch.fnmatchcase(minion_id, t) for t in cluster[role + "s"]["targets"]):
            roles.append(role)
    return roles


def settings(pillar_mfsha, defaults, osmap, minion_id):
    """Validated settings of the one cluster `minion_id` belongs to, with `roles`, `me`, `peer`, `os` and `tofs`.

    A minion with no role gets `roles: []` and `cluster: None`.
    """
    clusters = validate(pillar_mfsha, defaults)
    mine = [(name, roles_of(minion_id, c)) for name, c in clusters.items()]
    mine = [(name, roles) for name, roles in mine if roles]
    if len(mine) > 1:
        raise PillarError(ROOT, [name for name, _ in mine], f"all claim minion {minion_id}; a minion belongs to one cluster")
    if not mine:
        return {"cluster": None, "roles": [], "os": osmap, "tofs": tofs(pillar_mfsha, defaults)}
    name, roles = mine[0]
    out = clusters[name]
    out.update(cluster=name, roles=roles, os=osmap, me=None, peer=None, tofs=tofs(pillar_mfsha, defaults))
    if "master" in roles:
        out["me"] = next(n for n in out["nodes"] if n["id"] == minion_id)
        out["peer"] = next(n for n in out["nodes"] if n["id"] != minion_id)
    return out
