"""What the failover loop takes from a beacon event: a hint of which cluster to look at, nothing more.

Any minion can put any event on the Salt master's bus, with any tag, `id` and payload (`event.send` with `preload`),
so nothing in an event is trusted: not the sender id, not the minion id inside the tag, not `since` or
`last_version`. The reactor hands the event on as one JSON string (mfsha/reactor/health.sls); `hint` decodes it
within bounds and returns only a candidate minion id (which names the cluster to look at) and the tag (for the
report). Everything the loop acts on comes from its own fresh look at the nodes (mfsha.node_state, which carries each
node's own beacon record). Pure Python, no Salt: unit-tested directly.
"""
import json
import re

LIMIT = 65536  # bytes of event JSON decoded; a bigger one is only a hint of nothing
MINION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$")
TAG = re.compile(r"^salt/beacon/([^/]+)/mfsha/([a-z]+)/(down|up)$")


def _decode(event):
    """(dict, problem): the event as the reactor sent it (a JSON string) or as an operator passes it (a dict)."""
    if event is None or event == "":
        return {}, None
    if isinstance(event, dict):
        return event, None
    if not isinstance(event, str):
        return {}, f"event of type {type(event).__name__} ignored"
    if len(event) > LIMIT:
        return {}, f"event of {len(event)} bytes ignored (over {LIMIT})"
    try:
        out = json.loads(event)
    except ValueError as exc:
        return {}, f"event is not JSON ({exc.msg} at {exc.pos})"
    return (out, None) if isinstance(out, dict) else ({}, "event is not a JSON object")


def minion_id(value):
    """`value` when it can be a minion id (a short plain name), else None."""
    return value if isinstance(value, str) and MINION_ID.fullmatch(value) else None


def hint(event, minion=None):
    """{"minion": candidate id or None, "tag": the tag if it is an mfsha beacon tag else None, "problems": [...]}.
    `minion` (an operator's argument) wins over the event's `id`, which wins over the id in the tag."""
    decoded, problem = _decode(event)
    problems = [problem] if problem else []
    tag = decoded.get("tag")
    match = TAG.fullmatch(tag) if isinstance(tag, str) and len(tag) <= 512 else None
    if tag is not None and not match:
        problems.append("tag is not salt/beacon/<id>/mfsha/<check>/<down|up>")
    data = decoded.get("data")
    data = data if isinstance(data, dict) else {}
    candidates = [minion, data.get("id"), match.group(1) if match else None]
    given = [c for c in candidates if c is not None]
    found = next((minion_id(c) for c in given if minion_id(c)), None)
    if given and not found:
        problems.append("no valid minion id in the event")
    return {"minion": found, "tag": tag if match else None, "problems": problems}
