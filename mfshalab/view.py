"""What the lab observes of its cluster, read from the real state only (addresses, mounts, processes, cl_status,
TCP, mfscli): the observation half of mfshalab.lab.Lab, kept here so each file stays one concern."""
from mfshalab.hosts import LabError, run, wait_for


class ClusterView:
    """Mixed into Lab: needs self.masters, self.vip, self.device, self.host(), self.client, self.state."""

    def peer(self, node):
        """The other master of the pair."""
        return next(m for m in self.masters if m != node)

    def mfsmaster_pids(self, name):
        """PIDs of mfsmaster processes on host NAME (running or stopping; not zombies)."""
        h = self.host(name)
        out = []
        for pid in h.pids():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    st = f.read()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if "(mfsmaster)" in st and st.rsplit(")", 1)[1].split()[0] != "Z":
                out.append(pid)
        return out

    def has_vip(self, name):
        h = self.host(name)
        out = run(["ip", "-n", h.ns, "-o", "-4", "addr", "show", "dev", "eth0"], check=False).stdout
        return f" {self.vip}/" in out

    def storage_mounted(self, name):
        h = self.host(name)
        if not h.alive():
            return False
        try:
            with open(f"/proc/{h.pid}/mounts") as f:
                return any(line.split()[0] == self.device for line in f)
        except (FileNotFoundError, ProcessLookupError):
            return False

    def node_state(self, name):
        h = self.host(name)
        up = h.alive()
        return {"up": up, "vip": up and self.has_vip(name), "storage": up and self.storage_mounted(name),
                "mfsmaster": bool(up and self.mfsmaster_pids(name))}

    def active(self):
        """The master host holding VIP, storage and a running mfsmaster, or None."""
        act = [m for m in self.masters if all(self.node_state(m).values())]
        return act[0] if len(act) == 1 else None

    def serving(self, timeout=2):
        """The client host can open a TCP connection to mfsmaster's client port on the VIP."""
        c = self.host("mfs-client")
        p = run(["nsenter", f"--net=/run/netns/{c.ns}", "timeout", str(timeout), "bash", "-c",
                 f"</dev/tcp/{self.vip}/9421"], timeout=timeout + 5, check=False)
        return p.returncode == 0

    def wait_serving(self, timeout=120):
        wait_for("mfsmaster serving on the VIP", lambda: self.active() and self.serving(), timeout, interval=0.5)
        return self.active()

    def status(self):
        if not self.state.get("created"):
            return {"lab": self.name, "created": False}
        hosts = {}
        for n in self.state["hosts"]:
            h = self.host(n)
            hosts[n] = {"addr": h.addr, "up": h.alive(), "pid": h.pid, "processes": len(h.pids())}
        return {"lab": self.name, "rundir": self.rundir, "loop": self.state.get("loop"), "hosts": hosts,
                "masters": {m: self.node_state(m) for m in self.masters}, "active": self.active(),
                "serving": self.hosts_up(["mfs-client"]) and self.serving()}

    def metadata_version(self):
        """Metadata version the master on the VIP reports (mfscli from the client host)."""
        p = self.client.run(["mfscli", "-H", self.vip, "-SIM", "-s", "|"], timeout=15, check=False)
        for line in p.stdout.splitlines():
            f = line.split("|")
            if f[0].startswith("metadata servers") and len(f) > 5 and f[5].replace(" ", "").isdigit():
                return int(f[5].replace(" ", ""))
        raise LabError(f"no metadata version from mfscli on {self.vip}: {p.stdout.strip()} {p.stderr.strip()}")

    def heartbeat_view(self, name):
        """{node: status} as heartbeat on NAME sees the master nodes ('active', 'dead', ...; None if not running)."""
        h = self.host(name)
        if not h.alive():
            return {m: None for m in self.masters}
        return {m: h.run(["cl_status", "nodestatus", m], timeout=5, check=False).stdout.strip() or None
                for m in self.masters}

    def joined(self):
        """Both masters up and each heartbeat sees both nodes active."""
        return all(set(self.heartbeat_view(m).values()) == {"active"} for m in self.masters)

    def hosts_up(self, names):
        return all(self.host(n).alive() for n in names)
