"""Salt inside the VMs: copy the formula from the read-only 9p share (/srv/repo), write the pillar, salt-call."""
import itertools
import json
import shlex

import yaml

FORMULA_DIRS = ("mfsha", "_modules", "_states", "_utils", "_beacons", "_runners")


def install_formula(vm, timeout=120):
    """Copy the work tree's formula to /srv/salt (as a deploy would) and its custom modules where
    saltutil.sync_all puts them (a salt-call costs minutes on a loaded host under TCG; state.apply syncs again)."""
    dirs = " ".join(f"/srv/repo/{d}" for d in FORMULA_DIRS)
    ext = "/var/cache/salt/minion/extmods"
    vm.run(f"rm -rf /srv/salt {ext} && mkdir -p /srv/salt {ext} && for d in {dirs}; do [ -d $d ] && cp -r $d /srv/salt/;"
           f" done; find /srv/salt -name __pycache__ -prune -exec rm -rf {{}} +;"
           f" for k in modules states utils beacons; do [ -d /srv/salt/_$k ] && cp -r /srv/salt/_$k {ext}/$k; done; true",
           timeout=timeout)


def write_pillar(vm, pillar, name="mfsha.lab"):
    text = yaml.safe_dump(pillar, default_flow_style=False, sort_keys=False)
    top = yaml.safe_dump({"base": {"*": [name]}})
    path = "/srv/pillar/" + name.replace(".", "/") + ".sls"
    vm.run(f"mkdir -p $(dirname {path}) && cat > {path} <<'__EOF__'\n{text}__EOF__\n"
           f"cat > /srv/pillar/top.sls <<'__EOF__'\n{top}__EOF__\n", timeout=30)


def salt_call(vm, *args, timeout=300, check=True):
    """`salt-call --local --out=json ARGS` in the VM -> (rc, data under "local" or None, stdout + stderr);
    raises on rc != 0 when check. A function that raised leaves its error text on stderr."""
    cmd = "salt-call --local --out=json --retcode-passthrough " + " ".join(shlex.quote(a) for a in args)
    res = vm.run(cmd, timeout=timeout, check=False)
    try:
        data = json.loads(res.out)["local"] if res.out.strip() else None
    except (ValueError, KeyError) as exc:
        raise AssertionError(f"{vm.name}: unparsable salt-call output ({exc}): {res}") from None
    if check and res.rc != 0:
        raise AssertionError(f"{vm.name}: {cmd} failed: {res}")
    return res.rc, data, res.out + res.err


def state_changes(data):
    """{state id: changes} of the states that changed something, and {state id: (sls, comment)} of failed ones."""
    changed = {k: v["changes"] for k, v in data.items() if v.get("changes")}
    failed = {k: (v.get("__sls__"), v.get("comment")) for k, v in data.items() if v.get("result") is False}
    return changed, failed


_ids = itertools.count(1)


class Caller:
    """drbd.*/mfsha.* calls through saltcaller.py in the VM (modules loaded once). start() after install_formula:
    it loads the synced modules; restart it after a re-sync."""

    def __init__(self, vm):
        self.vm = vm

    def start(self, timeout=180):
        self.vm.run("[ -f /run/saltcaller.pid ] && kill $(cat /run/saltcaller.pid); rm -rf /run/saltcaller;"
                    " setsid /opt/salt/bin/python /srv/repo/test/lab/vm/saltcaller.py </dev/null"
                    " >/var/log/saltcaller.log 2>&1 & echo $! > /run/saltcaller.pid", timeout=30)
        res = self.vm.run(f"for i in $(seq {timeout * 2}); do [ -e /run/saltcaller/ready ] && exit 0; sleep 0.5; done;"
                          " cat /var/log/saltcaller.log; exit 1", timeout=timeout + 30, check=False)
        assert res.rc == 0, f"{self.vm.name}: saltcaller did not start: {res}"

    def __call__(self, fun, *args, timeout=120, **kwargs):
        """-> (ok, return or error text)."""
        ident = next(_ids)
        req = json.dumps({"id": ident, "fun": fun, "args": list(args), "kwargs": kwargs})
        out = f"/run/saltcaller/{ident}.json"
        res = self.vm.run(f"echo {shlex.quote(req)} > /run/saltcaller/in;"
                          f" for i in $(seq {timeout * 10}); do [ -e {out} ] && cat {out} && rm {out} && exit 0;"
                          " sleep 0.1; done; tail -20 /var/log/saltcaller.log; exit 1", timeout=timeout + 10, check=False)
        assert res.rc == 0, f"{self.vm.name}: no answer from saltcaller to {fun}{args}: {res}"
        ans = json.loads(res.out)
        return ans["ok"], ans["return"] if ans["ok"] else ans["error"]
