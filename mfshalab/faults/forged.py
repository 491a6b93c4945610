"""Forged beacon events from the least trusted host (issue 21): the client minion puts hostile
`salt/beacon/<master>/mfsha/*/down` events on the Salt master's bus (event.send with `preload`, as an attacker on
that host can), and the loop must run nothing, act on nothing but its own look, and say so.

  forged_event   phase 1, healthy cluster: issue 21's reactor injection (a state ID smuggled in `id`), hostile ids,
                 tags and a 64 KiB payload, forged `since`/`last_version`: no file on any host, no action, every
                 run ends `healthy`/`ignored`/`skipped`; phase 2: kill -9 of the master with the beacons paused and
                 one forged event (id of the node, last_version 10^15, since 0): the loop's own look restarts the
                 master (a forged last_version would keep it down if it were believed).

In the catalogue (mfshalab.faults.catalogue) as forged_event."""
import json
import signal
import time

from mfshalab.faults.common import signal_master, wait_client
from mfshalab.hosts import LabError
from mfshalab.loop import Events

PWNED = "/tmp/mfsha-pwned"
INJECTION = (f'x:\n  test.nop: []\npwn:\n  local.cmd.run:\n    - tgt: "*"\n    - arg: ["touch {PWNED}"]\n'
             "mfsha-recover-y")
SENDER = "mfs-client"
RESULT_TIMEOUT = 90


def forge(lab, tag, data):
    """One event with TAG and DATA fired on the Salt master's bus from the client minion (preload's `events` are
    re-fired by the master as sent: Salt's _minion_event)."""
    preload = json.dumps({"events": [{"tag": tag, "data": data}]})
    ret = lab.salt.cmd(SENDER, "event.send", "mfsha/forged", f"preload={preload}")
    if ret.get(SENDER) is not True:
        raise LabError(f"event.send from {SENDER} failed: {ret}")


def hostile(node):
    """(tag, data) an attacker on a client would send against master NODE of a healthy cluster."""
    down = f"salt/beacon/{node}/mfsha/master/down"
    return [(down, {"id": INJECTION, "since": 0}),
            (down, {"id": node, "since": 0, "last_version": 10 ** 15, "what": "master", "state": "down"}),
            (down, {"id": node, "since": "yesterday", "last_version": "x", "cluster": "other"}),
            (f"salt/beacon/{INJECTION}/mfsha/service/down", {"id": f"{node}\n{INJECTION}"}),
            (down, {"id": "a" * 65536}),  # over the loop's 64 KiB hint limit once encoded (one argv string: <128 KiB)
            (down, {"id": SENDER, "since": 0})]


def pwned(lab):
    """Hosts where the injection's file exists."""
    return [h for h in (lab.salt_host,) + tuple(lab.minions) if lab.host(h).run(["test", "-e", PWNED], check=False,
                                                                                timeout=10).returncode == 0]


def _results(ev, count):
    return [(t, d) for t, d in ev.wait("mfsha/failover/", RESULT_TIMEOUT, count=count)]


def f_forged_event(lab, ctx):
    node = ctx["node"]
    ev = Events(lab, "forged")
    ctx["undo"].append(ev.close)
    events = hostile(node)
    for i, (tag, data) in enumerate(events, 1):
        forge(lab, tag, data)
        _results(ev, i)  # one at a time: a run still looking would make the next one "skipped"
    results = _results(ev, len(events))
    ctx["observed"]["forged"] = [{"result": d.get("result"), "reason": str(d.get("reason"))[:200]}
                                 for _, d in results]
    ctx["observed"]["pwned_hosts"] = pwned(lab)
    # phase 2: a real fault and one forged event carrying a huge last_version; the beacons are paused
    masters = ",".join(lab.masters)
    lab.salt.cmd(masters, "beacons.disable_beacon", "mfsha", tgt_type="list")
    ctx["undo"].append(lambda: lab.salt.cmd(masters, "beacons.enable_beacon", "mfsha", tgt_type="list"))
    ctx["t0"] = time.monotonic()
    signal_master(lab, node, signal.SIGKILL)
    forge(lab, f"salt/beacon/{node}/mfsha/master/down", {"id": node, "since": 0, "last_version": 10 ** 15})
    rto = wait_client(lab, ctx["t0"], ctx["limit"])
    (_, after), = _results(ev, len(events) + 1)[len(events):]
    ctx["observed"]["after_kill9"] = {"result": after.get("result"), "reason": str(after.get("reason"))[:300]}
    ctx["notes"].append(f"forged on a healthy cluster: {[r['result'] for r in ctx['observed']['forged']]}; "
                        f"kill -9 + forged last_version: {after.get('result')}")
    return rto
