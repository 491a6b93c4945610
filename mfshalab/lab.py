"""The mfsha network-namespace lab: six hosts on a private bridge, a real Salt master and minions, heartbeat and
MooseFS deployed by the formula. One entry point for the CLI (`python -m mfshalab`), the pytest fixtures,
`make demo`, `make bench` and `make faults`.

State of a running lab (PIDs, namespaces, loop device) lives in the run dir (default /var/tmp/<name>), so `down`
and `destroy` work from another process and after an interrupted run, and touch only what the lab started.
"""
import atexit
import fnmatch
import json
import os
import shutil
import signal
import time

from mfshalab import client as clientio
from mfshalab.hosts import Host, LabError, run, start_time, wait_for
from mfshalab.pillar import CLUSTER, lab_pillar, write_pillar
from mfshalab.salt import Salt
from mfshalab.view import ClusterView
from mfshalab.watch import Timeline, watch_failover

# host -> last octet of its address; masters first (the first is the preferred node)
HOSTS = {"mfs-salt": 2, "mfs-a": 11, "mfs-b": 12, "mfs-cs1": 21, "mfs-cs2": 22, "mfs-client": 31}
MASTERS = ("mfs-a", "mfs-b")
MINIONS = ("mfs-a", "mfs-b", "mfs-cs1", "mfs-cs2", "mfs-client")
# Services a host of each role starts at boot when enabled (the shared root has every package's rc links).
BOOT_SERVICES = {"mfs-a": ["heartbeat"], "mfs-b": ["heartbeat"],
                 "mfs-cs1": ["moosefs-chunkserver", "moosefs-metalogger"], "mfs-cs2": ["moosefs-chunkserver"]}
IMAGE_MB = 256


class Lab(ClusterView):
    """One lab, by NAME; its observation methods (active, node_state, serving, ...) are mfshalab.view's."""

    def __init__(self, name="mfslab", rundir=None, subnet="10.99.0", pillar=None, log=print, master_minion=False):
        """NAME prefixes the namespaces; SUBNET is the first three octets; PILLAR is merged over the lab pillar.
        MASTER_MINION also runs a minion (no mfsha role) on the Salt master host, for `salt mfs-salt state.apply
        mfsha.reactor`: its mfsha_reactor_dir is the lab master's include dir (then salt.restart_master())."""
        self.name, self.subnet = name, subnet
        self.rundir = rundir or os.path.join(os.environ.get("MFSHA_LAB_RUN", "/var/tmp"), name)
        self.statefile = os.path.join(self.rundir, "state.json")
        self.hosts_file = os.path.join(self.rundir, "hosts")
        self.bridge_ns = f"{name}-net"
        self.masters, self.salt_host = MASTERS, "mfs-salt"
        self._minions = MINIONS + ((self.salt_host,) if master_minion else ())
        self.pillar_overrides = pillar
        self.log = log
        self.timings = {}
        self.state = self._load()
        # a running lab keeps the subnet it was created with
        self.subnet = self.state.get("subnet", subnet)
        self.vip = f"{self.subnet}.10"
        if pillar is None:
            self.pillar_overrides = self.state.get("pillar_overrides")
        self.salt = Salt(self)

    # --- state ----------------------------------------------------------------------------------------------------
    def _load(self):
        if os.path.exists(self.statefile):
            with open(self.statefile) as f:
                return json.load(f)
        return {"hosts": {}}

    def save(self):
        os.makedirs(self.rundir, exist_ok=True)
        tmp = self.statefile + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.state, f, indent=1)
        os.replace(tmp, self.statefile)

    @property
    def minions(self):
        """Minion ids; a running lab keeps the set it was created with (CLI, other processes)."""
        return tuple(self.state.get("minions") or self._minions)

    def host(self, name):
        if name not in self.state["hosts"]:
            raise LabError(f"no lab host {name!r} (lab not created?)")
        return Host(self, name, self.state["hosts"][name])

    @property
    def device(self):
        return self.state.get("loop", {}).get("dev")

    def timed(self, key, fn, *a, **kw):
        t = time.monotonic()
        out = fn(*a, **kw)
        self.timings[key] = round(time.monotonic() - t, 1)
        self.log(f"lab: {key} {self.timings[key]} s")
        return out

    # --- bring-up -------------------------------------------------------------------------------------------------
    def up(self, deploy=True):
        """Create hosts, start Salt, write the pillar and (by default) deploy with the formula."""
        self.timed("create", self.create)
        self.timed("salt_start", self.start_salt)
        self.write_pillar()
        if deploy:
            self.timed("deploy", self.deploy, sync=False)
            self.timed("cluster_serving", self.wait_serving)
        return self

    def create(self):
        if self.state.get("created"):
            raise LabError(f"lab {self.name} exists in {self.rundir}: run `destroy` first")
        for n in HOSTS:
            if os.path.exists(f"/run/netns/{self.name}-{n}"):
                raise LabError(f"namespace {self.name}-{n} exists but not in {self.statefile}: "
                               f"another lab with this name? (ip netns del it if it is a leftover)")
        self._clean_rundir()
        self.state = {"name": self.name, "subnet": self.subnet, "created": time.time(), "hosts": {},
                      "minions": list(self._minions)}
        self.save()
        with open(self.hosts_file, "w") as f:
            f.write("".join(f"{self.subnet}.{o} {h}\n" for h, o in HOSTS.items()))
        run(["ip", "netns", "add", self.bridge_ns])
        self.state["bridge_ns"] = self.bridge_ns
        self.save()
        run(["ip", "-n", self.bridge_ns, "link", "add", "br0", "type", "bridge"])
        run(["ip", "-n", self.bridge_ns, "link", "set", "br0", "up"])
        for n, octet in HOSTS.items():
            self.state["hosts"][n] = {"netns": f"{self.name}-{n}", "addr": f"{self.subnet}.{octet}",
                                      "peer": f"v-{n}"}
            self.save()
            self.host(n).create_net(self.bridge_ns, 24)
        self._create_disk()
        for n in HOSTS:
            self.host(n).boot()

    def _clean_rundir(self):
        """A new lab starts from blank disks: drop what a previous (downed) lab left in the run dir."""
        os.makedirs(self.rundir, exist_ok=True)
        for n in list(HOSTS) + ["salt", "pillar"]:
            shutil.rmtree(os.path.join(self.rundir, n), ignore_errors=True)
        for f in ("shared.img", "hosts"):
            if os.path.exists(os.path.join(self.rundir, f)):
                os.unlink(os.path.join(self.rundir, f))

    def _create_disk(self):
        """A blank image on a loop device both masters see; the formula makes the file system."""
        image = os.path.join(self.rundir, "shared.img")
        with open(image, "wb") as f:
            f.truncate(IMAGE_MB << 20)
        dev = run(["losetup", "--find", "--show", image]).stdout.strip()
        self.state["loop"] = {"dev": dev, "image": image}
        self.save()

    def start_salt(self):
        self.salt.start_master()
        for m in self.minions:
            self.salt.start_minion(m)
        self.salt.wait_minions(self.minions)
        self.sync()

    def sync(self, target="mfs*"):
        """saltutil.sync_all on TARGET (before the first state.apply and after formula changes)."""
        tgt_type = "list" if "," in target else None
        ret = self.salt.cmd(target, "saltutil.sync_all", timeout=120, tgt_type=tgt_type)
        bad = {m: r for m, r in ret.items() if not isinstance(r, dict)}
        if not ret or bad:
            raise LabError(f"saltutil.sync_all {target}: {bad or 'no answer'}")
        return ret

    def write_pillar(self, overrides=None):
        if overrides is not None:
            self.pillar_overrides = overrides
        data = write_pillar(self, self.device, self.pillar_overrides)
        self.state["pillar_overrides"] = self.pillar_overrides
        self.save()
        return data

    def cluster_pillar(self):
        """The lab cluster's pillar (mfsha:clusters:lab) as written for Salt."""
        return lab_pillar(self, self.device, self.state.get("secret", ""), self.pillar_overrides)["mfsha"][
            "clusters"][CLUSTER]

    def refresh_pillar(self):
        self.salt.cmd("mfs*", "saltutil.refresh_pillar", timeout=60)

    def deploy(self, target="mfs*", timeout=300, staged=None, sync=True):
        """`salt 'mfs*' state.apply mfsha` (TARGET: a glob or a comma list); raises listing the failed states;
        returns {minion: summary}. STAGED (or MFSHA_LAB_STAGED=1) applies masters, then chunkservers and
        metalogger, then the client, as separate commands. SYNC runs saltutil.sync_all first (the formula's
        custom modules, states and beacons may have changed since the lab started)."""
        if sync:
            self.sync(target)
        staged = os.environ.get("MFSHA_LAB_STAGED") == "1" if staged is None else staged
        if staged and target == "mfs*":
            ret = {}
            for t in (",".join(self.masters), "mfs-cs*", "mfs-client"):
                ret.update(self.deploy(t, timeout, staged=False, sync=False))
            return ret
        tgt_type = "list" if "," in target else None
        self.log(f"lab: salt {'-L ' if tgt_type else ''}'{target}' state.apply mfsha")
        ret = self.salt.apply(target, "mfsha", timeout=timeout, tgt_type=tgt_type)
        expected = [m for m in self.minions if fnmatch.fnmatch(m, target) or m in target.split(",")]
        missing = [m for m in expected if m not in ret]
        failed = {m: r["failed"] for m, r in ret.items() if r["failed"]}
        for m, r in sorted(ret.items()):
            self.log(f"lab: deploy {m}: {len(r['result']) if isinstance(r['result'], dict) else 0} states, "
                     f"{r['changes']} changed, {len(r['failed'])} failed")
        if missing or failed:
            details = {m: {k: {"comment": ret[m]["result"][k].get("comment"),
                               "changes": ret[m]["result"][k].get("changes")} for k in f}
                       if isinstance(ret[m]["result"], dict) else ret[m]["result"] for m, f in failed.items()}
            raise LabError(f"deploy {target} failed: no answer from {missing}; failed states: "
                           f"{json.dumps(details, indent=1)[:6000]}")
        return ret

    # --- client ---------------------------------------------------------------------------------------------------
    @property
    def client(self):
        return self.host("mfs-client")

    @property
    def mountpoint(self):
        return self.cluster_pillar()["clients"]["mountpoint"]

    def client_mounted(self):
        c = self.client
        with open(f"/proc/{c.pid}/mounts") as f:
            mounts = [line.split() for line in f]
        return [m[1] for m in mounts if m[2] == "fuse" or m[2].startswith("fuse.")]

    def mount_id(self):
        """Identity of the client's mfsmount (PID + start time): unchanged means the client never remounted."""
        for pid, cmd in self.client.processes().items():
            if cmd.startswith("mfsmount") or "/mfsmount" in cmd.split(" ")[0]:
                return (pid, start_time(pid))
        return None

    def write_files(self, n=20, size=256 * 1024, subdir="data", timeout=120):
        return clientio.write_files(self.client, f"{self.mountpoint}/{subdir}", n, size, timeout)

    def verify_files(self, manifest, timeout=120):
        return clientio.verify_files(self.client, manifest, timeout)

    def probe(self, timeout=30):
        return clientio.probe(self.client, f"{self.mountpoint}/.probe-{time.time_ns()}", timeout)

    # --- faults and operations -------------------------------------------------------------------------------------
    def crash(self, name):
        """Host death: cable pulled + kill -9 of every process of NAME."""
        self.host(name).crash()

    def restart(self, name, services=True):
        """Boot NAME again: cable in, fresh PID 1, salt-minion and its role's enabled init scripts."""
        h = self.host(name)
        h.restart()
        if name == self.salt_host:
            self.salt.start_master()
        if name in self.minions:
            self.salt.start_minion(name)
        if services:
            self.boot_services(name)

    def boot_services(self, name):
        """What init would start at boot: the role's services that are enabled in rc2.d (formula's service.enabled)."""
        h = self.host(name)
        for svc in BOOT_SERVICES.get(name, []):
            enabled = h.run(f"ls /etc/rc2.d/S*{svc} 2>/dev/null", check=False).stdout.strip()
            if enabled:
                p = h.run(["/etc/init.d/" + svc, "start"], timeout=60, check=False)
                self.log(f"lab: {name}: /etc/init.d/{svc} start -> {p.returncode} {p.stdout.strip()} "
                         f"{p.stderr.strip()}".rstrip())

    def heal(self, timeout=150):
        """Back to the normal state after a fault: every host up, both heartbeats joined, one master serving on
        the VIP. Crashed hosts are restarted (boot services); the active node is not moved."""
        for n in self.state["hosts"]:
            if not self.host(n).alive():
                self.restart(n)
        end = time.monotonic() + timeout
        self.salt.wait_minions(self.minions, timeout=max(10, end - time.monotonic()))
        wait_for("both heartbeats joined", self.joined, max(5, end - time.monotonic()), interval=1)
        return self.wait_serving(timeout=max(5, end - time.monotonic()))

    def handover(self, name=None):
        """Graceful handover: heartbeat standby on the active node (NAME or the current active)."""
        name = name or self.active()
        if not name:
            raise LabError("handover: no active master")
        self.host(name).run(["/usr/share/heartbeat/hb_standby"], timeout=30)
        return name

    def fail_over(self, kind="crash", client=True, timeout=90, out=print):
        """Fault the active master (KIND crash = host death, handover = heartbeat standby) and watch the cluster
        recover. Returns mfshalab.watch.watch_failover's dict (timings in s after the fault, events, two_masters)."""
        old = self.active()
        if not old:
            raise LabError(f"{kind}: no active master to fail over from: {self.status()['masters']}")
        before = {m: self.node_state(m) for m in self.masters}
        tl = Timeline(out=out)
        if kind == "crash":
            tl.mark("CRASH: cable pulled, kill -9 of every process of the host", old)
            self.crash(old)
        elif kind == "handover":
            tl.mark("graceful handover: hb_standby", old)
            self.handover(old)
        else:
            raise LabError(f"unknown failover kind {kind!r}")
        return watch_failover(self, old, tl, timeout=timeout, client=client, expect_detect=kind == "crash",
                              before=before)

    # --- teardown -------------------------------------------------------------------------------------------------
    def down(self):
        """Kill every lab process, remove namespaces and the loop device; keep the run dir (logs) unless destroy."""
        errors = []
        for n in list(self.state.get("hosts", {})):
            try:
                self.host(n).kill_all()
            except LabError as e:
                errors.append(str(e))
        # a holder still starting (interrupted boot) has only its unshare pid recorded
        for n, hs in self.state.get("hosts", {}).items():
            pid = hs.get("unshare_pid")
            if pid and os.path.exists(f"/proc/{pid}") and _cmd(pid).startswith("ip\0netns\0exec\0" + hs["netns"]):
                os.kill(pid, signal.SIGKILL)
        for ns in [hs["netns"] for hs in self.state.get("hosts", {}).values()] + [self.state.get("bridge_ns")]:
            if ns and os.path.exists(f"/run/netns/{ns}"):
                p = run(["ip", "netns", "del", ns], check=False)
                if p.returncode:
                    errors.append(p.stderr.strip())
        loop = self.state.get("loop")
        if loop:
            p = run(["losetup", "-j", loop["image"]], check=False)
            for line in p.stdout.splitlines():
                dev = line.split(":")[0]
                q = run(["losetup", "-d", dev], check=False)
                if q.returncode:
                    errors.append(q.stderr.strip())
        self.state = {"hosts": {}}
        if os.path.isdir(self.rundir):
            self.save()
        if errors:
            raise LabError("down: " + "; ".join(errors))

    def destroy(self):
        """down, then remove the run dir."""
        self.down()
        shutil.rmtree(self.rundir, ignore_errors=False)


def _cmd(pid):
    try:
        with open(f"/proc/{pid}/cmdline") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def raise_interrupt(signum, frame):
    """SIGTERM handler: `timeout` or a CI cancel unwinds through the callers' cleanup like Ctrl-C does."""
    raise KeyboardInterrupt(f"signal {signum}")


def install_cleanup(lab):
    """Tear the lab down on SIGINT/SIGTERM and at exit (for scripts using the API)."""
    signal.signal(signal.SIGTERM, raise_interrupt)
    atexit.register(lambda: lab.state.get("created") and lab.down())
