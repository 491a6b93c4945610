"""Runs INSIDE a test VM (/opt/salt/bin/python, from the 9p share): one salt.client.Caller that stays loaded,
so a check costs ~1 s instead of a 10-30 s salt-call start-up under TCG. The same execution modules, grains
and pillar as `salt-call --local`; state runs still go through the real salt-call.

Requests: JSON lines {"id", "fun", "args", "kwargs"} on the FIFO /run/saltcaller/in; each answer is written
to /run/saltcaller/<id>.json as {"ok": true, "return": ...} or {"ok": false, "error": "..."}."""
import json
import os
import sys

import salt.client
import salt.config

DIR = "/run/saltcaller"


def main():
    os.makedirs(DIR, exist_ok=True)
    fifo = os.path.join(DIR, "in")
    if not os.path.exists(fifo):
        os.mkfifo(fifo)
    opts = salt.config.minion_config("/etc/salt/minion")
    caller = salt.client.Caller(mopts=opts)
    open(os.path.join(DIR, "ready"), "w").close()
    while True:
        with open(fifo, encoding="utf-8") as requests:
            for line in requests:
                req = json.loads(line)
                try:
                    ans = {"ok": True, "return": caller.cmd(req["fun"], *req.get("args", []), **req.get("kwargs", {}))}
                except Exception as exc:  # the error goes back to the test, which decides
                    ans = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                tmp = os.path.join(DIR, f"{req['id']}.tmp")
                with open(tmp, "w", encoding="utf-8") as out:
                    json.dump(ans, out, default=str)
                os.rename(tmp, os.path.join(DIR, f"{req['id']}.json"))


if __name__ == "__main__":
    sys.exit(main())
