"""Lab hosts: one network namespace per host on a bridge that lives in its own namespace, plus a holder process
(holder.py) that owns the host's UTS, IPC, mount and PID namespaces. Nothing here touches the machine's /etc:
each host sees copy-on-write overlays of /etc, /var/lib, /var/log and private /run, /tmp, /srv, /mnt.
"""
import os
import re
import signal
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ENV = {"PATH": PATH, "LANG": "C.UTF-8", "HOME": "/root", "TERM": "dumb"}


class LabError(RuntimeError):
    pass


def run(cmd, timeout=60, check=True, input=None):
    """Run a command on the machine; a failure raises with its stderr."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input, env=ENV)
    except subprocess.TimeoutExpired as e:
        raise LabError(f"timeout after {timeout}s: {' '.join(cmd)}") from e
    if check and p.returncode != 0:
        raise LabError(f"{' '.join(cmd)} -> exit {p.returncode}: {p.stderr.strip() or p.stdout.strip()}")
    return p


def ns_inode(pid, kind):
    """Inode of /proc/PID/ns/KIND, or None if the process is gone."""
    try:
        return os.stat(f"/proc/{pid}/ns/{kind}").st_ino
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def start_time(pid):
    """Start time in clock ticks (field 22 of /proc/PID/stat): tells a PID apart from a later reuse of it."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (FileNotFoundError, ProcessLookupError):
        return None


def pids_in_ns(kind, inode):
    """PIDs (machine's view) of every process whose KIND namespace is INODE."""
    if inode is None:
        return []
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit() and ns_inode(d, kind) == inode:
            out.append(int(d))
    return out


def wait_for(what, check, timeout, interval=0.2):
    """Poll check() until it returns something truthy; raise LabError after timeout seconds."""
    end = time.monotonic() + timeout
    while True:
        v = check()
        if v:
            return v
        if time.monotonic() > end:
            raise LabError(f"timeout after {timeout}s waiting for {what}")
        time.sleep(interval)


class Host:
    """One lab host. `state` is the host's dict in the lab state file (kept up to date by this class)."""

    def __init__(self, lab, name, state):
        self.lab, self.name, self.state = lab, name, state
        self.dir = os.path.join(lab.rundir, name)

    @property
    def ns(self):
        return self.state["netns"]

    @property
    def addr(self):
        return self.state["addr"]

    @property
    def pid(self):
        """Real PID of the host's PID 1 (holder.py)."""
        return self.state.get("init_pid")

    @property
    def syslog_path(self):
        """The host's /var/log/syslog as the machine sees it (written by holder.py; kept across host restarts)."""
        return os.path.join(self.dir, "ov", "var", "log", "upper", "syslog")

    def syslog(self, pattern=None):
        """Lines of the host's syslog, those matching regex PATTERN only if given."""
        if not os.path.exists(self.syslog_path):
            return []
        with open(self.syslog_path, errors="replace") as f:
            lines = f.read().splitlines()
        return [line for line in lines if re.search(pattern, line)] if pattern else lines

    # --- creation -------------------------------------------------------------------------------------------------
    def create_net(self, bridge_ns, prefix_len):
        self.state["prefix"] = prefix_len
        run(["ip", "netns", "add", self.ns])
        run(["ip", "-n", bridge_ns, "link", "add", self.state["peer"], "type", "veth", "peer", "name", "eth0",
             "netns", self.ns])
        run(["ip", "-n", bridge_ns, "link", "set", self.state["peer"], "master", "br0", "up"])
        run(["ip", "-n", self.ns, "link", "set", "lo", "up"])
        run(["ip", "-n", self.ns, "addr", "add", f"{self.addr}/{prefix_len}", "dev", "eth0"])
        run(["ip", "-n", self.ns, "link", "set", "eth0", "up"])

    def boot(self, timeout=20):
        """Start the holder (the host's PID 1) and wait until its private mounts are in place."""
        if self.alive():
            raise LabError(f"{self.name} is already running (pid {self.pid})")
        ready = os.path.join(self.dir, "ready")
        if os.path.exists(ready):
            os.unlink(ready)
        os.makedirs(self.dir, exist_ok=True)
        log = open(os.path.join(self.dir, "holder.log"), "ab")
        p = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, "unshare", "--uts", "--ipc", "--mount", "--pid", "--fork",
             "--mount-proc", "--propagation", "private", "--", "/usr/bin/python3", os.path.join(HERE, "holder.py"),
             self.name, self.dir, self.lab.hosts_file],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, env=ENV)
        log.close()
        self.state["unshare_pid"] = p.pid

        def child():
            if p.poll() is not None:
                raise LabError(f"{self.name}: holder exited {p.returncode}, see {self.dir}/holder.log")
            try:
                with open(f"/proc/{p.pid}/task/{p.pid}/children") as f:
                    kids = f.read().split()
            except FileNotFoundError:
                return None
            return int(kids[0]) if kids and os.path.exists(ready) else None
        pid = wait_for(f"{self.name} holder", child, timeout)
        self.state.update(init_pid=pid, init_start=start_time(pid), pidns=ns_inode(pid, "pid"),
                          mntns=ns_inode(pid, "mnt"))
        self.lab.save()

    # --- running things -------------------------------------------------------------------------------------------
    def nsenter(self):
        if not self.alive():
            raise LabError(f"{self.name} is not running")
        return ["nsenter", "-t", str(self.pid), "--net", "--uts", "--ipc", "--mount", "--pid", "--wd=/"]

    def run(self, cmd, timeout=60, check=True, input=None):
        """Run CMD (list, or a string for sh -c) inside the host; returns CompletedProcess (text)."""
        if isinstance(cmd, str):
            cmd = ["sh", "-c", cmd]
        return run(self.nsenter() + ["--"] + cmd, timeout=timeout, check=check, input=input)

    def spawn(self, cmd, log):
        """Start a long-running process inside the host, output to LOG; returns its Popen (nsenter's pid)."""
        f = open(log, "ab")
        try:
            return subprocess.Popen(self.nsenter() + ["--"] + cmd, stdin=subprocess.DEVNULL, stdout=f, stderr=f,
                                    start_new_session=True, env=ENV)
        finally:
            f.close()

    def alive(self):
        pid = self.pid
        return bool(pid) and start_time(pid) == self.state.get("init_start")

    def pids(self):
        """Every process of this host (its PID namespace), machine PIDs. When PID 1 is gone the kernel has killed
        the namespace, so none are left (and a reused namespace inode must not be trusted)."""
        if not self.alive():
            return []
        return pids_in_ns("pid", self.state.get("pidns"))

    def processes(self):
        """{pid: command line} of the host's processes."""
        out = {}
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    out[pid] = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            except (FileNotFoundError, ProcessLookupError):
                pass
        return out

    # --- faults and shutdown --------------------------------------------------------------------------------------
    def link(self, up):
        """Plug or pull the host's cable (the bridge side of its veth)."""
        run(["ip", "-n", self.lab.bridge_ns, "link", "set", self.state["peer"], "up" if up else "down"])

    def abort_fuse(self):
        """Abort the host's FUSE connections (mfsmount): frees processes blocked in FUSE I/O, which SIGKILL alone
        cannot end while the client retries a lost master (~355 s)."""
        if not self.alive():
            return
        with open(f"/proc/{self.pid}/mountinfo") as f:
            conns = [line.split()[2].split(":")[1] for line in f if " - fuse" in line]
        if conns:
            self.run("for c in " + " ".join(conns) + "; do echo 1 > /sys/fs/fuse/connections/$c/abort; done",
                     timeout=10, check=False)

    def kill_all(self, timeout=10):
        """SIGKILL every process of the host by PID, its PID 1 included, until none is left."""
        self.abort_fuse()

        def gone():
            pids = self.pids()
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            return not pids
        wait_for(f"{self.name} processes to die", gone, timeout, interval=0.1)
        self.state["init_pid"] = None
        self.lab.save()

    def crash(self):
        """Host death: cable pulled, then kill -9 of every process of the host."""
        self.link(False)
        self.kill_all()

    def restart(self, timeout=20):
        """Power the host back on: cable in, fresh PID 1 and /run, persistent /etc, /var/lib, /srv kept."""
        if self.alive():
            self.kill_all()
        # the namespace outlived the host: a booting host has only its own address (no VIP, no stale ARP)
        run(["ip", "-n", self.ns, "addr", "flush", "dev", "eth0"])
        run(["ip", "-n", self.ns, "neigh", "flush", "dev", "eth0"])
        run(["ip", "-n", self.ns, "addr", "add", f"{self.addr}/{self.state['prefix']}", "dev", "eth0"])
        self.link(True)
        self.boot(timeout)
