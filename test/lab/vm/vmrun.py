"""Two qemu (TCG) VMs, mfs-a and mfs-b, on a private UDP link, each with its own DRBD disk; a control channel
(virtio port, see guest/mfsha-init) runs scripts and returns exit code, stdout and stderr."""
import base64
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass

from vmimage import REPO

NODES = {"mfs-a": ("10.77.0.11", "52:54:00:77:00:11"), "mfs-b": ("10.77.0.12", "52:54:00:77:00:12")}
PREFIX = 24
DRBD_DISK_MB = 64
MEMORY_MB = 1024
_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent():
    # PR_SET_PDEATHSIG: a qemu outlives nothing, even a kill -9 of the test run
    _libc.prctl(1, signal.SIGKILL)


def free_udp_ports(n):
    """N UDP ports free on 127.0.0.1 right now (for qemu's socket netdevs); every socket is closed, also on error."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM)) for _ in range(n)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


@dataclass
class Result:
    rc: int
    out: str
    err: str
    secs: float

    def __str__(self):
        return f"rc={self.rc} ({self.secs:.1f}s)\n--- stdout\n{self.out}--- stderr\n{self.err}"


class CommandError(RuntimeError):
    pass


class VM:
    def __init__(self, name, image, rundir, port, peer_port):
        self.name, self.image, self.rundir = name, image, rundir
        self.ip, self.mac = NODES[name]
        self.port, self.peer_port = port, peer_port
        self.proc = None
        self.sock = None
        self._seq = 0
        self._replies = {}  # ident -> (rc, out, err), filled by the reader thread
        self._ready = False
        self._cond = threading.Condition()
        self.boot_secs = None

    def path(self, suffix):
        return os.path.join(self.rundir, f"{self.name}.{suffix}")

    def _disks(self):
        if not os.path.exists(self.path("root.qcow2")):
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
                            os.path.join(self.image, "root.raw"), self.path("root.qcow2")], check=True, timeout=60)
        if not os.path.exists(self.path("drbd.raw")):
            with open(self.path("drbd.raw"), "wb") as f:
                f.truncate(DRBD_DISK_MB << 20)

    def cmdline(self):
        img = self.image
        return [
            "qemu-system-x86_64", "-accel", "tcg", "-machine", "pc", "-cpu", "max", "-smp", "1",
            "-m", str(MEMORY_MB), "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-kernel", f"{img}/vmlinuz", "-initrd", f"{img}/initrd.gz",
            "-append", f"console=ttyS0 panic=-1 mitigations=off mfsha.host={self.name} mfsha.ip={self.ip}/{PREFIX}",
            "-serial", f"file:{self.path('console')}",
            "-monitor", f"unix:{self.path('mon')},server=on,wait=off",
            "-drive", f"file={self.path('root.qcow2')},format=qcow2,if=virtio",
            "-drive", f"file={self.path('drbd.raw')},format=raw,if=virtio",
            "-netdev", f"socket,id=n0,udp=127.0.0.1:{self.peer_port},localaddr=127.0.0.1:{self.port}",
            "-device", f"virtio-net-pci,netdev=n0,mac={self.mac}",
            "-device", "virtio-serial-pci",
            "-chardev", f"socket,id=ctl,path={self.path('ctl')},server=on,wait=off",
            "-device", "virtserialport,chardev=ctl,name=ctl",
            "-virtfs", f"local,path={REPO},mount_tag=repo,security_model=none,readonly=on",
        ]

    def start(self):
        """Launch qemu (disks persist in rundir, so a restart after kill() is a reboot of the same host)."""
        self._disks()
        for s in ("ctl", "mon"):
            if os.path.exists(self.path(s)):
                os.unlink(self.path(s))
        self._t0 = time.monotonic()
        log = open(self.path("qemu.log"), "ab")
        self.proc = subprocess.Popen(self.cmdline(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     preexec_fn=_die_with_parent)
        log.close()
        with open(self.path("pid"), "w") as f:
            f.write(f"{self.proc.pid}\n")
        deadline = time.monotonic() + 30
        while not os.path.exists(self.path("ctl")):
            self._check_alive()
            if time.monotonic() > deadline:
                raise CommandError(f"{self.name}: qemu made no control socket in 30 s")
            time.sleep(0.05)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path("ctl"))
        self._replies, self._ready = {}, False
        threading.Thread(target=self._reader, args=(self.sock,), daemon=True).start()

    def _reader(self, sock):
        """Collect answers (the guest runs requests concurrently, so they arrive in any order)."""
        buf = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._cond.notify_all()
                return
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                parts = line.decode(errors="replace").split(" ")
                with self._cond:
                    if parts[0] == "@@READY":
                        self._ready = True
                    elif len(parts) == 5 and parts[0] == "@@R":
                        dec = lambda t: base64.b64decode(t[1:]).decode(errors="replace")
                        self._replies[parts[1]] = (int(parts[2]), dec(parts[3]), dec(parts[4]))
                    self._cond.notify_all()

    def _check_alive(self):
        if self.proc is None or self.proc.poll() is not None:
            with open(self.path("qemu.log"), errors="replace") as f:
                qlog = f.read()[-2000:]
            raise CommandError(f"{self.name}: qemu is not running (exit {self.proc and self.proc.returncode}): "
                               f"{qlog}\nconsole tail:\n{self.console()[-3000:]}")

    def console(self):
        try:
            with open(self.path("console"), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_ready(self, timeout=120):
        """Wait for the agent's @@READY line, or the answer to one ping if it was up before we connected
        (qemu holds the ping until the guest opens its port)."""
        ident = self._send(10, "true")
        if self._wait(lambda: self._ready or ident in self._replies, timeout) is None:
            raise CommandError(f"{self.name}: no agent after {timeout} s; console tail:\n{self.console()[-3000:]}")
        self.boot_secs = time.monotonic() - self._t0
        return self.boot_secs

    def _send(self, timeout, script):
        with self._cond:
            self._seq += 1
            ident = f"c{self._seq}"
        payload = base64.b64encode(script.encode()).decode()
        self.sock.sendall(f"{ident} {int(timeout)} {payload}\n".encode())
        return ident

    def _wait(self, done, timeout):
        """True once done() holds; None on timeout; raises when qemu or the channel is gone."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not done():
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(min(left, 1.0))
                if not done():
                    self._check_alive()
        return True

    def run(self, script, timeout=60, check=True):
        """Run a bash script in the VM (callable from several threads at once); the guest kills it after
        `timeout` s (rc 124)."""
        t = time.monotonic()
        ident = self._send(timeout, script)
        if self._wait(lambda: ident in self._replies, timeout + 20) is None:
            raise CommandError(f"{self.name}: no answer in {timeout + 20} s to: {script}")
        with self._cond:
            reply = self._replies.pop(ident)
        res = Result(*reply, time.monotonic() - t)
        if check and res.rc != 0:
            raise CommandError(f"{self.name}: `{script}` failed: {res}")
        return res

    def monitor(self, command):
        """One HMP command (e.g. `set_link n0 off`) on the qemu monitor socket."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(self.path("mon"))
            s.sendall(command.encode() + b"\n")
            time.sleep(0.3)
            return s.recv(65536).decode(errors="replace")

    def kill(self):
        """Host death: SIGKILL the qemu process (ours, by PID)."""
        if self.sock:
            self.sock.close()
            self.sock = None
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.proc = None


class Pair:
    """mfs-a and mfs-b in a fresh run dir; use as a context manager or call close()."""

    def __init__(self, image, rundir=None):
        self.rundir = rundir or tempfile.mkdtemp(prefix="mfsha-vm-")
        pa, pb = free_udp_ports(2)
        self.vms = {"mfs-a": VM("mfs-a", image, self.rundir, pa, pb), "mfs-b": VM("mfs-b", image, self.rundir, pb, pa)}
        self.a, self.b = self.vms["mfs-a"], self.vms["mfs-b"]

    def __getitem__(self, name):
        return self.vms[name]

    def start(self, timeout=180):
        for vm in self.vms.values():
            vm.start()
        return {vm.name: vm.wait_ready(timeout) for vm in self.vms.values()}

    def close(self, keep=False):
        for vm in self.vms.values():
            vm.kill()
        if not keep:
            shutil.rmtree(self.rundir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close(keep=os.environ.get("MFSHA_VM_KEEP") == "1")
