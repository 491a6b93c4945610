"""PID 1 of one lab host: private mounts, hostname, then reap orphans until killed.

Started by mfshalab.hosts.Host.boot() as
  ip netns exec NS unshare --uts --ipc --mount --pid --fork --mount-proc --propagation private -- python3 holder.py ...
Everything of the host runs below it (nsenter --all -t <this pid>), so killing it ends the host like a power cut:
the kernel kills every process of the PID namespace and drops the host's mounts.
Runs with the system python3, no imports beyond the stdlib.
"""
import ctypes
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

# Copy-on-write views: the host's packages stay visible, every write lands in the lab host's own upper dir.
# usr/local: the formula's helpers (mfsha-witness, ...) are each host's own, so mfsha.clean on one lab host (or
# one lab) never removes another's.
OVERLAYS = ("etc", "var/lib", "var/log", "usr/local")
# Persistent per-host dirs (survive a host restart like a disk would): storage mountpoint, chunk dirs, client mount.
BINDS = ("srv", "mnt")
# Dirs daemons expect under /run (normally made by systemd-tmpfiles or the packages' postinst).
RUN_DIRS = (("lock", 0o1777, None), ("heartbeat", 0o750, "hacluster"), ("heartbeat/ccm", 0o750, "hacluster"),
            ("heartbeat/crm", 0o750, "hacluster"), ("heartbeat/dopd", 0o750, "hacluster"),
            ("crm", 0o750, "hacluster"), ("resource-agents", 0o1755, None), ("mfs", 0o755, "mfs"),
            ("sendsigs.omit.d", 0o755, None))


# Dirs this host mounts a fresh tmpfs on. A repository cloned below one of them (/tmp/x) is bound back at its own
# path, so the lab's Salt master still serves it (file_roots) and its .venv link still resolves.
PRIVATE = ("/run", "/tmp")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MS_BIND = 4096


def hold_repo():
    """An O_PATH handle on the repository when a private mount is about to hide it, else None."""
    if any(REPO.startswith(d + "/") for d in PRIVATE):
        return os.open(REPO, os.O_PATH | os.O_DIRECTORY)
    return None


def bind_back(fd):
    """Bind the held repository back at its path under the fresh tmpfs, through mount(2) on the handle (mount(8)
    would resolve /proc/self/fd/N to the path, which is by now the new empty dir)."""
    os.makedirs(REPO, exist_ok=True)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(f"/proc/self/fd/{fd}".encode(), REPO.encode(), None, MS_BIND, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"binding the repository back at {REPO}: {os.strerror(err)}")
    os.close(fd)


def sh(*cmd):
    subprocess.run(cmd, check=True)


def chown(path, user):
    import pwd
    import grp
    pw = pwd.getpwnam(user)
    gid = grp.getgrnam("haclient").gr_gid if user == "hacluster" else pw.pw_gid
    os.chown(path, pw.pw_uid, gid)


def private_dev():
    """A /dev of its own: copies of the machine's device nodes (same devices), fresh pts and shm, and room for
    this host's /dev/log (syslog) without touching the machine's /dev."""
    nodes = []
    for n in os.listdir("/dev"):
        st = os.lstat(f"/dev/{n}")
        if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            nodes.append((n, st))
    sh("mount", "-t", "tmpfs", "-o", "mode=755,nosuid", "tmpfs", "/dev")
    for n, st in nodes:
        os.mknod(f"/dev/{n}", st.st_mode, st.st_rdev)
        os.chown(f"/dev/{n}", st.st_uid, st.st_gid)
        os.chmod(f"/dev/{n}", stat.S_IMODE(st.st_mode))
    for n, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                      ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"/dev/{n}")
    os.mkdir("/dev/pts")
    sh("mount", "-t", "devpts", "-o", "newinstance,ptmxmode=0666,mode=620", "devpts", "/dev/pts")
    if os.path.exists("/dev/ptmx"):
        os.unlink("/dev/ptmx")
    os.symlink("pts/ptmx", "/dev/ptmx")
    os.mkdir("/dev/shm")
    sh("mount", "-t", "tmpfs", "-o", "mode=1777,nosuid,nodev", "tmpfs", "/dev/shm")


def syslog(name):
    """The host's syslog: /dev/log datagrams -> /var/log/syslog with a precise wall-clock time (heartbeat,
    its resource agents and the MooseFS daemons log only to syslog)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("/dev/log")
    os.chmod("/dev/log", 0o666)
    with open("/var/log/syslog", "a", buffering=1) as out:
        while True:
            msg = sock.recv(65536).decode(errors="replace").rstrip("\n\0")
            if msg.startswith("<") and ">" in msg[:5]:
                msg = msg.split(">", 1)[1]
            if len(msg) > 16 and msg[3] == " " and msg[6] == " " and msg[9] == ":":
                msg = msg[16:]  # drop the sender's coarse "Mmm dd hh:mm:ss "
            t = time.time()
            out.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.localtime(t))}.{int(t % 1 * 1000):03d} {name} {msg}\n")


def setup(name, hostdir, hosts_lines):
    sh("hostname", name)
    for d in OVERLAYS:
        up, work = f"{hostdir}/ov/{d}/upper", f"{hostdir}/ov/{d}/work"
        os.makedirs(up, exist_ok=True)
        os.makedirs(work, exist_ok=True)
        sh("mount", "-t", "overlay", "overlay", "-o", f"lowerdir=/{d},upperdir={up},workdir={work}", f"/{d}")
    for d in BINDS:
        os.makedirs(f"{hostdir}/{d}", exist_ok=True)
        sh("mount", "--bind", f"{hostdir}/{d}", f"/{d}")
    repo = hold_repo()
    private_dev()
    sh("mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", "/run")
    sh("mount", "-t", "tmpfs", "-o", "mode=1777", "tmpfs", "/tmp")
    if repo is not None:
        bind_back(repo)
    # lets the lab abort this host's FUSE connections: a process stuck in FUSE writeback ignores SIGKILL
    subprocess.run(["mount", "-t", "fusectl", "none", "/sys/fs/fuse/connections"], check=False)
    for d, mode, owner in RUN_DIRS:
        os.makedirs(f"/run/{d}", exist_ok=True)
        os.chmod(f"/run/{d}", mode)
        if owner:
            chown(f"/run/{d}", owner)
    with open("/etc/hostname", "w") as f:
        f.write(name + "\n")
    with open("/etc/hosts", "w") as f:
        f.write("127.0.0.1 localhost\n" + hosts_lines)


def main():
    name, hostdir, hosts_file = sys.argv[1:4]
    with open(hosts_file) as f:
        setup(name, hostdir, f.read())
    # PID 1 of a namespace gets no signal it has no handler for; SIGTERM = orderly power-off of the host.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    threading.Thread(target=syslog, args=(name,), daemon=True).start()
    open(f"{hostdir}/ready", "w").close()
    while True:
        try:
            os.wait()
        except ChildProcessError:
            time.sleep(0.2)


if __name__ == "__main__":
    main()
