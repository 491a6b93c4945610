"""MooseFS master facts, pure Python (no Salt): mfsmaster.cfg, mfscli output, metadata/changelog files
on disk, and a protocol-level probe of a live master. Formats checked against moosefs 3.0.117 (see
test/unit/fixtures/mfs/, captured from a real mfsmaster by capture.sh there)."""
import os
import re
import socket
import stat
import struct
import time

import mfsha_files  # _utils/ as well: every read and write in DATA_PATH (the mfs user's) goes through it

# mfsmaster's own defaults for the keys mfsha reads (mfsmaster.cfg(5), 3.0.117).
CFG_DEFAULTS = {
    "WORKING_USER": "mfs",
    "DATA_PATH": "/var/lib/mfs",
    "EXPORTS_FILENAME": "/etc/mfs/mfsexports.cfg",
    "MATOML_LISTEN_HOST": "*",
    "MATOML_LISTEN_PORT": "9419",
    "MATOCS_LISTEN_HOST": "*",
    "MATOCS_LISTEN_PORT": "9420",
    "MATOCL_LISTEN_HOST": "*",
    "MATOCL_LISTEN_PORT": "9421",
    "CHANGELOG_SAVE_MODE": "0",
    "BACK_LOGS": "50",
}


def parse_cfg(text):
    """`KEY = VALUE` lines, `#` comment lines -> dict with CFG_DEFAULTS filled in.
    As in mfsmaster, a `#` after a value is part of the value (`DATA_PATH = /x # y` breaks the master).
    mfsmaster only warns about a line without `=`; we refuse it, since mfsha writes these files."""
    cfg = dict(CFG_DEFAULTS)
    for num, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip() or " " in key.strip():
            raise ValueError("bad line {} in mfsmaster.cfg: {!r}".format(num, raw))
        cfg[key.strip()] = value.strip()
    return cfg


def client_address(cfg):
    """(host, port) a local probe should use for the master's client port (9421)."""
    host = cfg["MATOCL_LISTEN_HOST"]
    if host in ("*", "0.0.0.0", ""):
        host = "127.0.0.1"
    return host, int(cfg["MATOCL_LISTEN_PORT"])


# ---- mfscli -------------------------------------------------------------------------------------------

MASTER_COLUMNS = ("ip", "version", "state", "local_time", "metadata_version", "metadata_delay",
                  "ram_used", "cpu_used", "last_save", "last_save_duration", "last_save_status",
                  "exports_checksum")
NO_MASTER = ("Working master servers not found", "Can't find masters",
             "Leader master server not found")


def spaced_int(text):
    """mfscli prints `1 406` for 1406 (decimal_number with ' ' separators)."""
    text = text.strip()
    if not re.fullmatch(r"\d{1,3}( \d{3})*", text):
        raise ValueError("not an mfscli number: {!r}".format(text))
    return int(text.replace(" ", ""))


def _value(text):
    if text in ("not available", "-", ""):
        return None
    if text.isdigit():  # plain counters (RAM used, directories, ...)
        return int(text)
    try:
        return spaced_int(text)
    except ValueError:
        return text


def parse_mfscli(text, sep="|"):
    """Parse `mfscli -H H -P P -S<sections> -s SEP` output.

    Returns {"masters": [row...], "info": {name: value}, "sections": {title: [[cells]]}, "errors": [...],
    "leader": row or None}. A master row has MASTER_COLUMNS keys plus `alive` (it answered CLTOMA_INFO;
    mfscli's DEAD = no TCP connection, BUSY = connected but no answer, e.g. SIGSTOPped). mfscli exits 0
    in every one of these cases, so callers must use `leader`/`errors`, not the exit code.
    """
    out = {"masters": [], "info": {}, "sections": {}, "errors": [], "leader": None}
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith(NO_MASTER) or line.startswith("section '"):
            out["errors"].append(line.strip())
            continue
        if sep not in line:
            out["sections"].setdefault(line.strip(), [])  # e.g. "check loop: no data"
            continue
        title, *cells = line.split(sep)
        title = title.rstrip(":").strip()
        out["sections"].setdefault(title, []).append(cells)
        if title == "metadata servers":
            if len(cells) != len(MASTER_COLUMNS):
                raise ValueError("unexpected metadata servers row: {!r}".format(line))
            row = dict(zip(MASTER_COLUMNS, cells))
            row["metadata_version"] = spaced_int(row["metadata_version"])
            for key in ("metadata_delay", "ram_used"):
                row[key] = _value(row[key])
            row["local_time"] = None if row["local_time"] == "not available" else float(row["local_time"])
            row["alive"] = row["state"] not in ("DEAD", "BUSY") and row["version"] != "0.0.0"
            out["masters"].append(row)
        elif title == "master info" and len(cells) == 2:
            out["info"][cells[0]] = _value(cells[1])
    alive = [row for row in out["masters"] if row["alive"] and row["state"] in ("-", "LEADER")]
    out["leader"] = alive[0] if alive and not out["errors"] else None
    return out


# ---- metadata and changelogs on disk ------------------------------------------------------------------

METADATA_FILES = ("metadata.mfs", "metadata.mfs.back")  # what `mfsmaster -a` starts from
CHANGELOG_RE = re.compile(r"^changelog(?:_ml|_ml_back)?\.(\d+)\.mfs$")
# Files mfsmaster itself writes in DATA_PATH; others (lost+found, mfsha's *.cfg on /mfsconf) are not its business.
MASTER_FILE_RE = re.compile(r"^(metadata.*\.(mfs|back|tmp|crc|\d+)|changelog.*\.mfs|stats\.mfs|\.mfsmaster\.lock"
                            r"|\.bgwriter\.lock)$")


def metadata_header(data):
    """First 16+ bytes of metadata.mfs -> {"format", "version", "fileid"}.
    `version` is the id of the NEXT change (mfscli's "metadata version" of a running master counts the
    same way). An empty filesystem (`MFSM NEW`, metadata.mfs.empty) starts at change 1."""
    if data[:8] == b"MFSM NEW":
        return {"format": "NEW", "version": 1, "fileid": None}
    if len(data) < 24 or data[:5] != b"MFSM ":
        raise ValueError("not a MooseFS metadata file (header {!r})".format(data[:8]))
    version, fileid = struct.unpack(">QQ", data[8:24])
    return {"format": data[5:8].decode("ascii", "replace"), "version": version, "fileid": fileid}


def changelog_versions(lines):
    """Versions of `<version>: <ts>|<op>` changelog lines, in file order."""
    versions, bad = [], None
    for line in lines:
        if bad is not None:  # only the last line may be torn (crash during a background write)
            raise ValueError("bad changelog line: {!r}".format(bad[:80]))
        head, sep, _ = line.partition(":")
        if sep and head.isdigit():
            versions.append(int(head))
        elif line.strip():
            bad = line
    return versions


def changelog_hole(start, files):
    """First gap in the change ids `mfsmaster -a` needs from metadata version `start` on.

    files: {name: [versions]}. Returns None, or {"from": v, "to": w, "after": file|None, "before": file}
    for missing ids v..w (mfsmaster: `hole in change files (entries from A:v to B:w are missing)`).
    Changes older than `start` are already in the metadata and ignored."""
    entries = sorted((v, name) for name, versions in files.items() for v in versions if v >= start)
    expected, prev = start, None
    for version, name in entries:
        if version > expected:
            return {"from": expected, "to": version - 1, "after": prev, "before": name}
        expected, prev = max(expected, version + 1), name
    return None


def changelog_tail(files, since):
    """{version: line} of the complete `<version>: ...` lines with version >= `since` in changelog files ({name:
    text}, e.g. a metalogger's changelog_ml*.mfs: its own copy of the master's change stream), read in numeric
    file order (.2 after .10 would be lexicographic). A torn last line (no newline: the writer died mid-line) is
    left out; replaying half an entry would fail. Two different lines for one version raise ValueError."""
    out = {}
    for name in sorted(files, key=lambda n: (int(CHANGELOG_RE.match(n).group(1)), n)):
        for line in files[name].splitlines(keepends=True):
            head, sep, _ = line.partition(":")
            if sep and head.isdigit() and line.endswith("\n") and int(head) >= since:
                if out.setdefault(int(head), line) != line:
                    raise ValueError("change {} differs between two changelog lines (one in {})".format(head, name))
    return out


RESERVE = ".mfsha-reserve"  # space set aside on the storage (mfsha_storage.keep_reserve) for a master that filled it
WAS_FULL = ".mfsha-was-full"  # left by release_reserve until a restart compared the changelog with the metaloggers
MISSING = "changes the master acknowledged are missing"  # restart_master's refusal text, for people
MISSING_CHANGES = "missing_changes"  # restart_master's `refused` field for it: the runner fills them in and retries
HOLE = "hole in change files"  # what `mfsmaster -a` says when a changelog entry it needs is missing


def last_change(data_path, window=65536):
    """Version of the newest complete entry in changelog.0.mfs (or changelog.1.mfs, just after a rotation), read
    from the file's end only: the quick check before a restart (disk_state reads every file). None if none."""
    for name in ("changelog.0.mfs", "changelog.1.mfs"):
        try:
            data, start = mfsha_files.read_tail(os.path.join(data_path, name), window)
        except (FileNotFoundError, mfsha_files.UnsafeFile):  # a planted link: disk_state reports it
            continue
        lines = data.split(b"\n")[1 if start else 0:-1]  # a cut first line, a torn last one
        for line in reversed(lines):
            head = line.split(b":", 1)[0]
            if head.isdigit():
                return int(head)
    return None


def release_reserve(path):
    """Delete the reserve in directory `path` when less than its size is left for the master (f_bavail: what a
    non-root user may use), so that it can replay and log again, and leave WAS_FULL behind: the master may have
    acknowledged changes it could not log. Returns the bytes freed (0: kept or absent). The directory is the mfs
    user's: a reserve that is not a regular file (a planted link) raises UnsafeFile, the marker never follows one."""
    st = mfsha_files.lstat_in(path, RESERVE)
    if st is None:
        return 0
    if not stat.S_ISREG(st.st_mode):
        raise mfsha_files.UnsafeFile(os.path.join(path, RESERVE), "is not a regular file")
    size = st.st_blocks * 512
    fs = os.statvfs(path)
    if fs.f_bavail * fs.f_frsize >= size:
        return 0
    os.unlink(os.path.join(path, RESERVE))
    mfsha_files.write_durably(os.path.join(path, WAS_FULL), "{:.0f}\n".format(time.time()))
    return size


def changelog_files(data_path, read):
    """({name: read(file)} of DATA_PATH's changelog files, each opened in text as mfsha_files.open_regular, [refusals]).
    DATA_PATH is the mfs user's: a name that is not a regular file (a planted link) is not read, its refusal listed,
    and what it would hold counts as missing (the loop's fill replaces it)."""
    files, refused = {}, []
    for name in sorted(os.listdir(data_path)):
        if CHANGELOG_RE.match(name):
            try:
                with mfsha_files.open_regular(os.path.join(data_path, name), text=True) as fh:
                    files[name] = read(fh)
            except mfsha_files.UnsafeFile as exc:
                refused.append(str(exc))
    return files, refused


def disk_state(data_path):
    """What `mfsmaster -a` would find in DATA_PATH.

    Returns {"metadata_file", "metadata_version", "changelogs": {name: (first, last)}, "version", "hole"}:
    `version` is the next change id after replaying contiguous changelogs (comparable with a running
    master's metadata version); `metadata_file` None when there is none. Unreadable files raise, but a changelog
    name that is not a regular file (a link planted by mfs) is not read and listed in "refused": what it would
    have held counts as missing, so that the loop's fill (which replaces it) supplies it instead of the link
    stopping every restart."""
    best = None
    for name in METADATA_FILES:
        if mfsha_files.lstat_in(data_path, name) is not None:  # a link there is refused by open_regular
            with mfsha_files.open_regular(os.path.join(data_path, name)) as fh:
                head = metadata_header(fh.read(24))
            if best is None or head["version"] > best[1]["version"]:
                best = (name, head)
    files, refused = changelog_files(data_path, changelog_versions)
    start = version = hole = None
    if best:
        start = best[1]["version"]
        hole = changelog_hole(start, files)
        last = max((v for vs in files.values() for v in vs), default=0)
        version = hole["from"] if hole else max(start, last + 1)  # as far as a replay can go
    return {
        "metadata_file": best[0] if best else None,
        "metadata_version": start,
        "changelogs": {n: (vs[0], vs[-1]) if vs else (None, None) for n, vs in files.items()},
        "version": version,
        "hole": hole,
        "refused": refused,
    }


def lock_holder(path):
    """PID holding a POSIX lock on `path` according to /proc/locks, or None (mfsmaster locks
    DATA_PATH/.mfsmaster.lock while it runs; the lock dies with the process, the file stays). The lock file is in
    the mfs user's directory: anything but a regular file there raises UnsafeFile."""
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise mfsha_files.UnsafeFile(path, "is not a regular file")
    with open("/proc/locks") as fh:
        for line in fh:
            parts = line.split()
            if "->" in parts:  # blocked waiter
                continue
            try:
                pid, dev, ino = parts[4], parts[5], parts[5].rsplit(":", 1)[1]
            except IndexError:
                continue
            if int(ino) == st.st_ino and _dev(dev) == (os.major(st.st_dev), os.minor(st.st_dev)):
                return int(pid)
    return None


def _dev(text):
    major, minor, _ = text.split(":")
    return int(major, 16), int(minor, 16)


# ---- protocol probe -----------------------------------------------------------------------------------

CLTOMA_INFO, MATOCL_INFO = 510, 511
STATES = {0: "DUMMY", 1: "LEADER", 2: "ELECT", 3: "FOLLOWER", 4: "USURPER"}


class ProbeError(Exception):
    """stage: "connect" (nothing accepted the TCP connection) or "answer" (connected, no valid answer)."""

    def __init__(self, stage, message):
        super().__init__("{}: {}".format(stage, message))
        self.stage = stage


def decode_info(data):
    """MATOCL_INFO payload -> {"version", "state", "metadata_version"} (layout as in mfscli 3.0.117)."""
    if len(data) < 4:
        raise ValueError("MATOCL_INFO too short ({} bytes)".format(len(data)))
    major, mid, minor = struct.unpack(">HBB", data[:4])
    if (major, mid) >= (2, 0):
        minor >>= 1  # lowest bit flags MooseFS Pro
    info = {"version": "{}.{}.{}".format(major, mid, minor), "state": None, "metadata_version": None}
    if len(data) in (121, 129, 137, 149):
        offset = 8 if len(data) in (137, 149) else 0
        working, nxt, stable, sync, _ip, _t, meta = struct.unpack(">BBBBLLQ", data[offset + 101:offset + 121])
        if (working, nxt, stable, sync) == (0xFF,) * 4:
            info["state"] = "LEADER"  # GPL master: mfscli shows "-"
        elif stable == 0 or working != nxt:
            info["state"] = "TRANSITION"
        else:
            info["state"] = STATES.get(working, "???")
        info["metadata_version"] = meta
    return info


def master_info(host, port, timeout=1.0):
    """Ask the master CLTOMA_INFO on its client port; the whole exchange is bounded by `timeout`.
    Returns decode_info() plus "latency_s"; raises ProbeError."""
    deadline = time.monotonic() + timeout
    start = time.monotonic()
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise ProbeError("connect", "{}:{} {}".format(host, port, exc.strerror or exc)) from None
    try:
        sock.sendall(struct.pack(">LL", CLTOMA_INFO, 0))
        cmd, length = struct.unpack(">LL", _recv(sock, 8, deadline))
        if cmd != MATOCL_INFO or length > 65536:
            raise ProbeError("answer", "unexpected reply type {} length {}".format(cmd, length))
        info = decode_info(_recv(sock, length, deadline))
    except ValueError as exc:  # a short or garbled reply: whatever answers there is no master
        raise ProbeError("answer", str(exc)) from None
    except socket.timeout:
        raise ProbeError("answer", "no answer within {:.2f} s (TCP accepted: hung master?)".format(timeout)) from None
    except OSError as exc:
        raise ProbeError("answer", str(exc)) from None
    finally:
        sock.close()
    info["latency_s"] = time.monotonic() - start
    return info


def _recv(sock, size, deadline):
    buf = b""
    while len(buf) < size:
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout()
        sock.settimeout(left)
        chunk = sock.recv(size - len(buf))
        if not chunk:
            raise ProbeError("answer", "connection closed after {} of {} bytes".format(len(buf), size))
        buf += chunk
    return buf


def probe(host, port, timeout=1.0):
    """(ok, latency_s, detail): ok when the master answered CLTOMA_INFO within timeout."""
    start = time.monotonic()
    try:
        info = master_info(host, port, timeout)
    except ProbeError as exc:
        return False, time.monotonic() - start, str(exc)
    detail = "mfsmaster {version} {state} metadata version {metadata_version}".format(**info)
    return True, info["latency_s"], detail


def disk_problems(state, data_path):
    """Why `mfsmaster -a` cannot start from DATA_PATH's disk_state STATE (data_path_ok's problems), [] if none."""
    problems = list(state["refused"])
    if state["metadata_file"] is None:
        problems.append(f"no metadata.mfs or metadata.mfs.back in {data_path} (seed a new one from "
                        "/var/lib/mfs/metadata.mfs.empty)")
    if state["hole"]:
        h = state["hole"]
        problems.append(f"changelog hole: changes {h['from']}..{h['to']} missing between "
                        f"{h['after'] or state['metadata_file']} and {h['before']}; mfsmaster -a will refuse (copy "
                        "the metaloggers' changelog_ml*.mfs into DATA_PATH)")
    return problems
