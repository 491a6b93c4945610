"""Pure parsers for DRBD 8.4 / 9 outputs (no Salt import: tests and Salt modules share them).

Every status source is normalized to one shape, in DRBD 9 vocabulary, keyed by resource name:

    {"name", "role", "disk", "connection", "replication", "peer_role", "peer_disk", "sync_done", "split_brain",
     "volumes", "peers", "source", "raw"}

- volumes: {volume_nr: {"minor", "disk", "raw"}}
- peers: {peer_name: {"connection", "role", "volumes": {nr: {"replication", "peer_disk", "sync_done", "raw"}}, "raw"}}
- The flat peer fields describe the first peer by name (a two-node pair has one); `disk` is the worst volume.
- sync_done: percent of a running resync (SyncSource/SyncTarget/PausedSync*), else None.
- split_brain: True on positive evidence, False while a peer is connected or connecting, None when StandAlone:
  a split brain and a plain disconnect look the same in every status output (see split_brain_in_log).
- /proc/drbd of DRBD 8.4 names no resources: its entries are keyed "minor:N".
"""
import json
import re

# 8.4 folds replication into the connection state; DRBD 9 splits them (connection, replication).
_REPLICATION = {
    "StartingSyncS", "StartingSyncT", "WFBitMapS", "WFBitMapT", "WFSyncUUID", "SyncSource", "SyncTarget",
    "VerifyS", "VerifyT", "PausedSyncS", "PausedSyncT", "Ahead", "Behind",
}
_CONN_84 = {"WFConnection": "Connecting", "WFReportParams": "Connecting"}
SYNCING = {"SyncSource", "SyncTarget", "PausedSyncS", "PausedSyncT"}
# Worst first; anything unknown ranks below all of these.
_DISK_ORDER = ["Diskless", "Attaching", "Detaching", "Failed", "Negotiating", "Inconsistent", "Outdated",
               "DUnknown", "Consistent", "UpToDate"]


def normalize_cstate(cstate):
    """Map a DRBD 8.4 or 9 connection state to (connection, replication) in DRBD 9 terms."""
    if cstate in _REPLICATION:
        return "Connected", cstate
    if cstate == "Connected":
        return "Connected", "Established"
    return _CONN_84.get(cstate, cstate), "Off"


def _num(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _kv(tokens, line):
    out = {}
    for tok in tokens:
        key, sep, val = tok.partition(":")
        if not sep:
            raise ValueError(f"not a DRBD key:value token {tok!r} in line {line!r}")
        out[key] = val
    return out


def _new_res(name, role, raw, source):
    return {"name": name, "role": role, "volumes": {}, "peers": {}, "source": source, "raw": raw}


def _new_peer(connection, role, raw):
    return {"connection": connection, "role": role, "volumes": {}, "raw": raw}


def _peer_vol(replication, peer_disk, done, raw):
    return {"replication": replication, "peer_disk": peer_disk, "sync_done": _num(done), "raw": raw}


def _worst_disk(disks):
    disks = [d for d in disks if d]
    if not disks:
        return None
    return min(disks, key=lambda d: _DISK_ORDER.index(d) if d in _DISK_ORDER else -1)


def _finish(res):
    """Fill defaults that each source leaves implicit and derive the flat summary fields."""
    for peer in res["peers"].values():
        peer["connection"] = _CONN_84.get(peer["connection"], peer["connection"]) or "Unknown"
        connected = peer["connection"] == "Connected"
        if not connected:
            peer["role"] = peer["role"] or "Unknown"
        for pv in peer["volumes"].values():
            # DRBD 9's short `status` omits replication:Established on a healthy connection
            if pv["replication"] in (None, "Connected"):  # DRBD 9.0 said replication:Connected
                pv["replication"] = "Established" if connected else "Off"
            pv["peer_disk"] = pv["peer_disk"] or "DUnknown"
            if pv["replication"] not in SYNCING:
                pv["sync_done"] = None
    res["disk"] = _worst_disk(v["disk"] for v in res["volumes"].values())
    res.setdefault("split_brain", None)
    if res["peers"]:
        peer = res["peers"][sorted(res["peers"])[0]]
        pvols = [peer["volumes"][k] for k in sorted(peer["volumes"])]
        res["connection"] = peer["connection"]
        res["peer_role"] = peer["role"] or "Unknown"
        res["replication"] = next((pv["replication"] for pv in pvols if pv["replication"] != "Established"),
                                  "Established" if res["connection"] == "Connected" else "Off")
        res["peer_disk"] = _worst_disk(pv["peer_disk"] for pv in pvols) or "DUnknown"
        dones = [pv["sync_done"] for pv in pvols if pv["sync_done"] is not None]
        res["sync_done"] = min(dones) if dones else None
    else:
        # No peer object at all: DRBD 8.4's status hides a StandAlone connection this way.
        res.update(connection="StandAlone", peer_role="Unknown", replication="Off", peer_disk="DUnknown",
                   sync_done=None)
    if res["split_brain"] is None and res["connection"] != "StandAlone":
        res["split_brain"] = False
    return res


# --- drbdsetup status --json -------------------------------------------------------------------------------

def _parse_json(text):
    # drbd-utils prints bare nan during resync (invalid JSON): make it null.
    data = json.loads(re.sub(r"(?<=[:\[,\s])-?nan\b", "null", text))
    if not isinstance(data, list):
        raise ValueError("drbdsetup status --json: expected a list of resources")
    out = {}
    for r in data:
        res = _new_res(r["name"], r.get("role"), _flat(r), "json")
        for d in r.get("devices", []):
            res["volumes"][d["volume"]] = {"minor": d.get("minor"), "disk": d.get("disk-state"), "raw": _flat(d)}
        for c in r.get("connections", []):
            peer = _new_peer(c.get("connection-state"), c.get("peer-role"), _flat(c))
            for pd in c.get("peer_devices", []):
                peer["volumes"][pd["volume"]] = _peer_vol(pd.get("replication-state"), pd.get("peer-disk-state"),
                                                          pd.get("percent-resync-done"), _flat(pd))
            res["peers"][c.get("name") or str(c.get("peer-node-id"))] = peer
        out[res["name"]] = _finish(res)
    return out


def _flat(obj):
    return {k: v for k, v in obj.items() if not isinstance(v, (list, dict))}


# --- drbdadm status / drbdsetup status [--verbose --statistics] text --------------------------------------

def _parse_text(text):
    out, res, peer, peer_indent, last = {}, None, None, 0, None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        tokens = line.split()
        head_is_name = ":" not in tokens[0]
        if indent == 0:
            if not head_is_name:
                raise ValueError(f"not DRBD status text: {line!r}")
            kv = _kv(tokens[1:], line)
            res = out[tokens[0]] = _new_res(tokens[0], kv.get("role"), kv, "text")
            peer, last = None, kv
            continue
        if res is None:
            raise ValueError(f"not DRBD status text: {line!r}")
        if head_is_name:  # a connection: "<peer-name> role:... | connection:..."
            kv = _kv(tokens[1:], line)
            connection = kv.get("connection") or ("Connected" if "role" in kv else None)
            peer = res["peers"][tokens[0]] = _new_peer(connection, kv.get("role"), kv)
            peer_indent, last = indent, kv
            continue
        kv = _kv(tokens, line)
        in_peer = peer is not None and indent > peer_indent
        nr = int(kv.get("volume", 0))
        if in_peer and ({"volume", "replication", "peer-disk", "disk"} & kv.keys()):
            # old DRBD 9.0 text says disk: for the peer's disk
            pv = _peer_vol(kv.get("replication"), kv.get("peer-disk") or kv.get("disk"), kv.get("done"), kv)
            peer["volumes"][nr] = pv
            last = kv
        elif not in_peer and ({"volume", "disk"} & kv.keys()):
            res["volumes"][nr] = {"minor": _int(kv.get("minor")), "disk": kv.get("disk"), "raw": kv}
            last = kv
        else:  # continuation line of the previous object
            last.update(kv)
            if peer is not None and last is peer["raw"]:
                peer["connection"] = kv.get("connection", peer["connection"])
                peer["role"] = kv.get("role", peer["role"])
    for r in out.values():
        _finish(r)
    return out


def _int(value):
    return int(value) if value is not None else None


# --- /proc/drbd (DRBD 8.4; DRBD 9 prints only its version there) ------------------------------------------

_PROC_DEV = re.compile(r"^\s*(\d+):\s+cs:(\S+)\s+ro:(\S+)/(\S+)\s+ds:(\S+)/(\S+)")
_PROC_SYNC = re.compile(r"sync.ed:\s*([\d.]+)%")


def _parse_proc(text):
    out, res = {}, None
    for line in text.splitlines():
        m = _PROC_DEV.match(line)
        if m:
            minor, cs, role, prole, disk, pdisk = m.groups()
            res = None
            if cs == "Unconfigured":
                continue
            connection, replication = normalize_cstate(cs)
            raw = {"minor": minor, "cs": cs, "ro": f"{role}/{prole}", "ds": f"{disk}/{pdisk}"}
            res = _new_res(f"minor:{minor}", role, raw, "proc")
            res["volumes"][0] = {"minor": int(minor), "disk": disk, "raw": raw}
            if cs != "StandAlone":
                res["peers"]["peer"] = _new_peer(connection, prole, raw)
                res["peers"]["peer"]["volumes"][0] = _peer_vol(replication, pdisk, None, raw)
            out[res["name"]] = res
            continue
        m = _PROC_SYNC.search(line)
        if m and res is not None and res["peers"]:
            res["peers"]["peer"]["volumes"][0]["sync_done"] = float(m.group(1))
    for r in out.values():
        _finish(r)
    return out


# --- drbdsetup events2 ------------------------------------------------------------------------------------

_EVENT = re.compile(r"^(?:(?P<time>\S*\d\S*T\S+|TIME)\s+)?(?P<action>exists|create|change|destroy|call|response)"
                    r"\s+(?P<object>\S+)(?:\s+(?P<rest>.*))?$")


def parse_events2(lines):
    """Parse `drbdsetup events2` lines (with or without --timestamps/--statistics) into a list of
    {"time", "action", "object", "props"}; unknown keys are kept. `exists -` (end of the initial dump)
    is returned with object "-". A line that is not an event raises ValueError."""
    if isinstance(lines, str):
        lines = lines.splitlines()
    events = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _EVENT.match(line)
        if not m:
            raise ValueError(f"not a drbdsetup events2 line: {line!r}")
        props = _kv(m.group("rest").split(), line) if m.group("rest") else {}
        events.append({"time": m.group("time"), "action": m.group("action"), "object": m.group("object"),
                       "props": props})
    return events


def events2_state(events):
    """Fold parsed events2 events into the normalized status shape. A `split-brain` helper call marks
    the resource split_brain=True until its connection is Connected again."""
    out = {}
    for ev in events:
        p, obj, name = ev["props"], ev["object"], ev["props"].get("name")
        if obj == "-" or name is None:
            continue
        if obj == "resource" and ev["action"] == "destroy" or p.get("unconfigured") == "true":
            out.pop(name, None)
            continue
        res = out.setdefault(name, _new_res(name, None, {}, "events2"))
        peer_name = p.get("conn-name") or p.get("peer-node-id") or "peer"
        if obj == "resource":
            res["raw"].update(p)
            res["role"] = p.get("role", res["role"])
        elif obj == "device":
            vol = res["volumes"].setdefault(int(p.get("volume", 0)), {"minor": None, "disk": None, "raw": {}})
            vol["raw"].update(p)
            vol["minor"], vol["disk"] = _int(p.get("minor", vol["minor"])), p.get("disk", vol["disk"])
        elif obj == "connection":
            peer = res["peers"].setdefault(peer_name, _new_peer(None, None, {}))
            peer["raw"].update(p)
            peer["connection"], peer["role"] = p.get("connection", peer["connection"]), p.get("role", peer["role"])
            if peer["connection"] == "Connected":
                res["split_brain"] = None
        elif obj == "peer-device":
            peer = res["peers"].setdefault(peer_name, _new_peer(None, None, {}))
            pv = peer["volumes"].setdefault(int(p.get("volume", 0)), _peer_vol(None, None, None, {}))
            pv["raw"].update(p)
            pv["replication"] = p.get("replication", pv["replication"])
            pv["peer_disk"] = p.get("peer-disk", pv["peer_disk"])
            pv["sync_done"] = _num(p.get("done", pv["sync_done"]))
        elif obj == "helper" and p.get("helper") == "split-brain" and ev["action"] == "call":
            res["split_brain"] = True
    for res in out.values():
        _finish(res)
    return out


# --- auto-detection ---------------------------------------------------------------------------------------

def parse_status(text):
    """Parse any DRBD status output: `drbdsetup status --json`, `drbdadm status` / `drbdsetup status`
    text (short or --verbose --statistics), /proc/drbd, or `drbdsetup events2` lines."""
    stripped = text.strip()
    if not stripped:
        return {}
    if stripped[0] in "[{":
        return _parse_json(stripped)
    lines = [ln for ln in stripped.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if stripped.startswith("version:") or any(_PROC_DEV.match(ln) for ln in lines):
        return _parse_proc(stripped)
    if lines and all(_EVENT.match(ln.strip()) for ln in lines):
        return events2_state(parse_events2(lines))
    return _parse_text(stripped)


# --- one-word commands ------------------------------------------------------------------------------------

def _pair(text):
    words = text.strip().split()
    if len(words) != 1:
        raise ValueError(f"expected one DRBD state word, got {text!r}")
    local, _, peer = words[0].partition("/")
    return local, (peer or None)


def parse_role(text):
    """`drbdadm role`: 'Primary/Secondary' (8.4) or 'Primary' (9) -> (local, peer or None)."""
    return _pair(text)


def parse_dstate(text):
    """`drbdadm dstate`: 'UpToDate/DUnknown' (kernel) or 'Inconsistent' (drbdmeta) -> (local, peer or None)."""
    return _pair(text)


def parse_cstate(text):
    """`drbdadm cstate` -> (connection, replication) in DRBD 9 terms (8.4 SyncSource -> Connected, SyncSource).
    A bare 'Connected' leaves replication None: DRBD 9 prints it during a resync too."""
    word = _pair(text)[0]
    return ("Connected", None) if word == "Connected" else normalize_cstate(word)


def parse_version(text):
    """`drbdadm --version` (KEY=value) or /proc/drbd ('version: 8.4.11 (api:...)') ->
    {"kernel": str or None, "utils": str or None}."""
    out = {"kernel": None, "utils": None}
    m = re.search(r"^version:\s*(\S+)", text, re.M)
    if m:
        out["kernel"] = m.group(1)
    for key, val in re.findall(r"^(DRBD_KERNEL_VERSION|DRBDADM_VERSION)=(\S+)", text, re.M):
        if key == "DRBDADM_VERSION":
            out["utils"] = val
        elif val != "0":  # 0: no module loaded or installed
            out["kernel"] = val
    return out


# --- decisions --------------------------------------------------------------------------------------------

_SPLIT_BRAIN = "Split-Brain detected"
_CONNECTED = re.compile(r"conn\( \S+ -> Connected \)")


def split_brain_in_log(text, resource=None, minors=()):
    """Return the kernel log line proving an unresolved split brain, or None.

    DRBD logs 'Split-Brain detected but unresolved, dropping connection!' (8.4 tags it 'block drbdN:',
    DRBD 9 'drbd RES/VOL drbdN PEER:'). The evidence counts only when no later line shows that
    resource reaching Connected again. With resource=None any resource counts."""
    tags = [f"drbd{m}:" for m in minors] + [f"drbd{m} " for m in minors]
    if resource:
        tags += [f"drbd {resource}:", f"drbd {resource}/", f"drbd {resource} "]

    def concerns(line):
        return not tags or any(t in line for t in tags)

    evidence = None
    for line in text.splitlines():
        if not concerns(line):
            continue
        if _SPLIT_BRAIN in line:
            evidence = line.strip()
        elif _CONNECTED.search(line):
            evidence = None
    return evidence


def is_synced(res):
    """Local disk and every peer disk UpToDate over Connected/Established links."""
    if not res or res["disk"] != "UpToDate" or not res["peers"]:
        return False
    return all(p["connection"] == "Connected" and p["volumes"]
               and all(v["replication"] == "Established" and v["peer_disk"] == "UpToDate"
                       for v in p["volumes"].values())
               for p in res["peers"].values())


def promotion_blockers(res):
    """Reasons not to promote this node; empty when it is safe.

    The rule: promote only when every local volume is UpToDate, no peer is Primary, and there is no
    split-brain evidence. A peer that is unreachable (role Unknown) does not block: that is the failover case.
    """
    if not res:
        return ["resource is not up"]
    reasons = [f"local disk of volume {nr} is {v['disk']}, not UpToDate"
               for nr, v in sorted(res["volumes"].items()) if v["disk"] != "UpToDate"]
    if not res["volumes"]:
        reasons.append("resource has no local volume")
    reasons += [f"peer {name} is Primary" for name, p in sorted(res["peers"].items()) if p["role"] == "Primary"]
    if res.get("split_brain"):
        reasons.append("split brain detected")
    return reasons
