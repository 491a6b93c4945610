"""The VM image: cached under /var/cache/mfsha/vm-<key>, key = hash of everything the build reads."""
import fcntl
import hashlib
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
CACHE = os.environ.get("MFSHA_CACHE", "/var/cache/mfsha")
SALT_REQ = "salt==3008.4"
BUILD_TIMEOUT = 1200


def kernel_package():
    """The kernel linux-image-amd64 points at, with its version: 'linux-image-6.1.0-56-amd64=6.1.192-2'."""
    deps = _run(["apt-cache", "depends", "linux-image-amd64"])
    name = next(l.split()[-1] for l in deps.splitlines() if "Depends: linux-image-6" in l)
    policy = _run(["apt-cache", "policy", name])
    version = next(l.split()[-1] for l in policy.splitlines() if "Candidate:" in l)
    return name, version


def _run(cmd, timeout=60):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if p.returncode:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr.strip()}")
    return p.stdout


def _inputs_hash(*extra):
    h = hashlib.sha256()
    files = ["build.sh", "packages.txt"] + sorted("guest/" + f for f in os.listdir(os.path.join(HERE, "guest")))
    for rel in files:
        h.update(rel.encode() + b"\0")
        with open(os.path.join(HERE, rel), "rb") as f:
            h.update(f.read() + b"\0")
    for e in extra:
        h.update(e.encode() + b"\0")
    return h.hexdigest()[:12]


def _constraints():
    with open(os.path.join(REPO, "constraints.txt")) as f:
        return f.read()


def wheelhouse(log=print):
    """Salt's wheels built on the host (same Python 3.11 ABI as the image) from pip's cache."""
    key = hashlib.sha256((SALT_REQ + _constraints()).encode()).hexdigest()[:12]
    path = os.path.join(CACHE, f"vm-wheels-{key}")
    if os.path.exists(os.path.join(path, ".complete")):
        return path
    t = time.monotonic()
    os.makedirs(path, exist_ok=True)
    pip = os.path.join(REPO, ".venv", "bin", "pip")
    p = subprocess.run([pip, "wheel", "-q", "--disable-pip-version-check", "-w", path,
                        "-c", os.path.join(REPO, "constraints.txt"), SALT_REQ],
                       capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    if p.returncode:
        raise RuntimeError(f"pip wheel {SALT_REQ} failed: {p.stderr.strip()[-2000:]}")
    open(os.path.join(path, ".complete"), "w").close()
    log(f"vm-image: wheelhouse {path} built in {time.monotonic() - t:.0f}s")
    return path


def ensure(log=print):
    """Return the image dir (vmlinuz, initrd.gz, root.raw), building it first if its key is new."""
    kpkg, kver = kernel_package()
    key = _inputs_hash(kpkg, kver, SALT_REQ, _constraints())
    out = os.path.join(CACHE, f"vm-{key}")
    if os.path.exists(os.path.join(out, "root.raw")):
        return out
    os.makedirs(CACHE, exist_ok=True)
    with open(os.path.join(CACHE, "vm-build.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a concurrent run builds the same key: wait for it
        if os.path.exists(os.path.join(out, "root.raw")):
            return out
        t = time.monotonic()
        wh = wheelhouse(log)
        log(f"vm-image: building {out} ({kpkg} {kver})")
        p = subprocess.run([os.path.join(HERE, "build.sh"), out, kpkg, wh, SALT_REQ],
                           stdout=sys.stderr, stderr=sys.stderr, timeout=BUILD_TIMEOUT)
        if p.returncode:
            raise RuntimeError(f"build.sh exited {p.returncode} (see its output above)")
        log(f"vm-image: built in {time.monotonic() - t:.0f}s")
    return out
