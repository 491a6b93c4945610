"""The metalogger fill's judgement, pure Python (no Salt, no I/O): what the metaloggers answered and DATA_PATH's own
entries in, a verdict out.

The fill writes changelog lines into DATA_PATH and `mfsmaster -a` replays them as metadata operations, so a line is
taken only when: it comes from a minion the cluster's metalogger targets match on the Salt master (a minion decides
by itself whether it matches a target, so any other answer is refused), that minion is no master node and no other
cluster's target, its answer is well formed, and every version it shares with DATA_PATH or another metalogger has
the same line there. A metalogger that did not answer may hold the tail: the tail is then unknown. Any problem
refuses the whole fill (the service stays down and the reason says why): a wrong line replayed is worse than a
master that waits for a human. `fill` is the whole procedure as a conversation: it says what to ask, the runner asks.
"""
import hashlib
import re

import mfsha_node  # synced _utils beside this one
import mfsha_pillar

MAX_LINES = 1_000_000  # changes since the last metadata dump (an hour by default)
MAX_LINE = 256 * 1024  # an xattr value of 64 KiB, escaped, fits
MAX_BYTES = 128 * 1024 * 1024
LINE = re.compile(r"(\d{1,20}): [^\n\x00]*\n\Z")
SHOWN = 5  # disagreements named in full; the rest are counted


def digest(line):
    """What DATA_PATH's entries are compared by (mfsmaster.changelog_digests): 128 bits of SHA-256."""
    return hashlib.sha256(line.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def outsiders(minions, clusters, name):
    """{minion: why} of the MINIONS that must not feed cluster NAME's fill: a master node of any cluster, or a minion
    another cluster's chunkserver/metalogger/client targets match (the pillar validator refuses such targets; this
    is the same rule at fill time, against the pillar the Salt master has now)."""
    out = {}
    for m in minions:
        for cname, c in sorted(clusters.items()):
            roles = mfsha_pillar.roles_of(m, c)
            if "master" in roles:
                out[m] = f"is a master node of cluster {cname}"
            elif cname != name and roles:
                out[m] = f"is a {'/'.join(roles)} target of cluster {cname}"
            if m in out:
                break
    return out


def _int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def parse_answer(answer, since):
    """{version: line} of one mfsmaster.changelog_since answer (versions >= SINCE); ValueError says what is wrong."""
    if not isinstance(answer, dict) or not {"first", "last", "lines"} <= set(answer):
        raise ValueError(f"not a dict with first, last and lines: {str(answer)[:120]!r}")
    first, last, lines = answer["first"], answer["last"], answer["lines"]
    if not isinstance(lines, list):
        raise ValueError("lines is not a list")
    if len(lines) > MAX_LINES:
        raise ValueError(f"{len(lines)} lines, more than {MAX_LINES}")
    if not lines:
        if first is not None or last is not None:
            raise ValueError(f"first {first!r} / last {last!r} without lines")
        return {}
    if not (_int(first) and _int(last)) or first < since or last != first + len(lines) - 1:
        raise ValueError(f"first {first!r} / last {last!r} do not fit {len(lines)} lines from {since} on")
    out, size = {}, 0
    for i, line in enumerate(lines):
        size += len(line) if isinstance(line, str) else 0
        if not isinstance(line, str) or len(line) > MAX_LINE or size > MAX_BYTES:
            raise ValueError(f"line {i} is not text or oversized (line <= {MAX_LINE}, all <= {MAX_BYTES} chars)")
        m = LINE.match(line)
        if not m:
            raise ValueError(f"line {i} is not one `<version>: ...` changelog line: {line[:80]!r}")
        if int(m.group(1)) != first + i:
            raise ValueError(f"line {i} is change {m.group(1)}, not {first + i}: versions must be gapless and "
                             "increasing")
        out[first + i] = line
    return out


def _streams(answers, expected, outside, since):
    """({minion: {version: line}} of the answers that may be used, [problems])."""
    streams, problems = {}, []
    for m in sorted(set(answers) | set(expected)):
        ok, ret = answers.get(m, (False, "no answer"))
        if m in outside:
            problems.append(f"{m} {outside[m]}: its changelog is refused")
        elif m not in expected:
            problems.append(f"{m} answered, but the metalogger targets do not match it on the Salt master: its "
                            "changelog is refused")
        elif not ok:
            problems.append(f"metalogger {m} gave no changelog ({str(ret)[:200]}): the changes it holds are unknown")
        else:
            try:
                streams[m] = parse_answer(ret, since)
            except ValueError as exc:
                problems.append(f"metalogger {m}'s answer is refused: {exc}")
    return streams, problems


def _disagreements(streams, own):
    """[problem] naming the versions that two sources (DATA_PATH, the metaloggers) hold with different lines, and
    both sides of each (the first SHOWN)."""
    seen, out = {}, []
    sources = [("DATA_PATH", {v: (d, None) for v, d in own.items()})]
    sources += [(m, {v: (digest(x), x) for v, x in s.items()}) for m, s in sorted(streams.items())]
    for who, entries in sources:
        for v, (d, line) in entries.items():
            first = seen.setdefault(v, (who, d, line))
            if first[1] != d:
                out.append((v, first, (who, d, line)))
    if not out:
        return []
    shown = [f"change {v}: {_side(*a)}, {_side(*b)}" for v, a, b in sorted(out)[:SHOWN]]
    more = [f"and {len(out) - SHOWN} more changes"] if len(out) > SHOWN else []
    return [f"DATA_PATH and the metaloggers disagree on {len(out)} change(s): " + "; ".join(shown + more)]


def _side(who, sha, line):
    return f"{who} has " + (f"{line[:80]!r} (sha256 {sha})" if line is not None else f"sha256 {sha}")


def _run(streams):
    """(lines, first, last, contributors): the gapless run of every metalogger's changes (they agree) from the
    earliest one on."""
    union = {}
    for m, s in sorted(streams.items()):
        for v, line in s.items():
            union.setdefault(v, (line, m))
    if not union:
        return [], None, None, []
    first = last = min(union)
    while last + 1 in union:
        last += 1
    picked = [union[v] for v in range(first, last + 1)]
    return [x for x, _ in picked], first, last, sorted({m for _, m in picked})


def verdict(answers, expected, outside, own, gap, since):
    """The fill's decision for a DATA_PATH whose replay (from metadata version SINCE) stops at gap["from"] and needs
    every change up to gap["to"] (None: the tail is unknown: a full disk).

    answers: {minion: (ok, mfsmaster.changelog_since return)} of every minion that answered; expected: the minions
    the metalogger targets match on the Salt master; outside: outsiders(); own: {version: digest} of DATA_PATH's
    entries from SINCE on. Returns {"action": fill|complete|refuse, "lines", "source": [minions], "first", "last",
    "problems": [..], "note"}."""
    out = {"action": "refuse", "lines": [], "source": [], "first": None, "last": None, "problems": [], "note": ""}
    streams, problems = _streams(answers, expected, outside, since)
    problems += _disagreements(streams, own)
    if not expected:
        problems.append("the metalogger targets match no minion on the Salt master")
    if problems:
        return dict(out, problems=problems)
    lines, first, last, source = _run(streams)
    seen = {m: (min(s), max(s)) if s else None for m, s in sorted(streams.items())}
    beyond = max((max(s) for s in streams.values() if s), default=None)
    if gap["to"] is None and (beyond is None or beyond < gap["from"]):
        return dict(out, action="complete", note=f"no metalogger holds changes from {gap['from']} on (first, "
                                                 f"last held: {seen})")
    need = max(x for x in (gap["to"], beyond) if x is not None)  # every change a metalogger holds, too
    if first is None or first > gap["from"] or last < need:
        return dict(out, problems=[f"the metaloggers hold no gapless run of the changes from {gap['from']} to "
                                   f"{need} (first, last held: {seen})"])
    return dict(out, action="fill", lines=lines, source=source, first=first, last=last)


# ---- the fill as a conversation: what to ask whom, and what the answers mean (the runner asks) --------------------

def gap_of(disk, expect):
    """The changes a fill must find, from NODE's DATA_PATH (mfsmaster.data_path_ok) and the version its master last
    reported (`expect`, or None): {"from", "to"}; `to` None when only an unknown tail (a full storage) is left."""
    gap = dict(disk.get("hole") or {"from": disk["version"], "to": expect - 1 if expect else None})
    if gap["to"] is not None and gap["to"] < gap["from"]:
        gap["to"] = None  # DATA_PATH reaches `expect`: only an unknown tail is left to look for
    return gap


def fill(c, node, expect=None):
    """The metalogger fill of master node NODE of cluster C, without I/O: a generator that yields what it needs and
    is sent the answer: ("call", target, fun, kwarg, timeout, tgt_type) -> {minion: (ok, return)};
    ("minions", compound target) -> the minions it matches on the Salt master; ("clusters",) -> the Salt master's
    validated clusters. Returns (note, None) when DATA_PATH is complete, else (None, why not).

    NODE's DATA_PATH may lack changes its master acknowledged: a hole (the restart stopped at it), the tail up to
    `expect` (the version its master last reported), or an unknown tail (the storage was full). The metaloggers
    keep their own copy of the change stream: their changes from the replay start (the metadata file's version) on
    go into DATA_PATH (mfsmaster.add_changelog): one gapless file closes every hole, also one that only
    `mfsmaster -a` sees, and replaces an earlier fill safely. Only what `verdict` accepts is written. An unknown tail
    that no metalogger extends is no loss."""
    cfg = mfsha_node.master_cfg(c)
    ok, disk = (yield ("call", [node], "mfsmaster.data_path_ok", {"cfg": cfg}, 10, "list"))[node]
    if not ok or not isinstance(disk, dict) or disk.get("version") is None:
        return None, f"reading {node}'s DATA_PATH failed: {disk}"
    start, gap = disk["metadata_version"], gap_of(disk, expect)
    if not c["metaloggers"]["targets"]:
        return (f"no metaloggers to compare {node}'s changelog with", None) if gap["to"] is None else (
            None, f"changes {gap['from']}..{gap['to']} are missing and there are no metaloggers to fill them from")
    ok, own = (yield ("call", [node], "mfsmaster.changelog_digests", {"since": start, "cfg": cfg}, 30, "list"))[node]
    if not ok or not isinstance(own, dict):
        return None, f"reading {node}'s changelog entries failed: {own}"
    targets = " or ".join(c["metaloggers"]["targets"])
    expected = yield ("minions", targets)
    data_path = c["metaloggers"]["config"].get("DATA_PATH", "/var/lib/mfs")
    answers = yield ("call", targets, "mfsmaster.changelog_since", {"since": start, "data_path": data_path}, 30,
                     "compound")
    outside = outsiders(sorted(set(answers) | set(expected)), (yield ("clusters",)), c["name"])
    v = verdict(answers, expected, outside, {ver: d for ver, d in own["digests"]}, gap, start)
    if v["action"] == "refuse":
        return None, f"the metalogger fill is refused: {'; '.join(v['problems'])}"
    if v["action"] == "complete":
        return v["note"], None
    return (yield from _write(cfg, node, gap, v, expect))


def _write(cfg, node, gap, v, expect):
    """The fill's last step: write verdict V's lines into NODE's DATA_PATH; it must then replay past them."""
    ok, after = (yield ("call", [node], "mfsmaster.add_changelog", {"lines": v["lines"], "cfg": cfg}, 60, "list"))[node]
    source = ", ".join(v["source"])
    if not ok:
        return None, f"writing {source}'s changes into {node}'s DATA_PATH failed: {after}"
    if after.get("hole") or (after.get("version") or 0) <= max(v["last"], (expect or 0) - 1):
        return None, f"{source}'s changes did not complete {node}'s DATA_PATH: {after['problems'] or after['version']}"
    return (f"changes {gap['from']}..{v['last']} were missing in {node}'s changelog: {len(v['lines'])} changes "
            f"from {v['first']} on copied from metalogger {source}"), None
