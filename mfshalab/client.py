"""Client I/O through mfsmount inside the client host. Every call is a subprocess with a timeout: with no master,
MooseFS client I/O only fails after ~355 s, so nothing here may block the caller longer than asked."""
import json

from mfshalab.hosts import LabError

PY = "/usr/bin/python3"

WRITE = r"""
import hashlib, json, os, sys
d, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(d, exist_ok=True)
out = {}
for i in range(n):
    p = os.path.join(d, "f%04d" % i)
    data = os.urandom(size)
    with open(p, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    out[p] = hashlib.sha256(data).hexdigest()
fd = os.open(d, os.O_RDONLY)
os.fsync(fd)
print(json.dumps(out))
"""

VERIFY = r"""
import hashlib, json, os, sys
want = json.load(sys.stdin)
bad = {}
for p, h in want.items():
    try:
        with open(p, "rb") as f:
            # drop this file's page cache: read what the chunkservers hold, not what the client wrote
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            got = hashlib.sha256(f.read()).hexdigest()
    except OSError as e:
        got = "error: %s" % e
    if got != h:
        bad[p] = got
print(json.dumps(bad))
"""

PROBE = r"""
import os, sys
p, data = sys.argv[1], os.urandom(4096)
with open(p, "wb") as f:
    f.write(data)
    f.flush()
    os.fsync(f.fileno())
with open(p, "rb") as f:
    assert f.read() == data, "read back differs"
os.unlink(p)
"""


def write_files(host, directory, n=20, size=256 * 1024, timeout=120):
    """Write N files of SIZE random bytes under DIRECTORY (fsync'ed); returns {path: sha256}."""
    p = host.run(["timeout", "-s", "KILL", str(timeout), PY, "-c", WRITE, directory, str(n), str(size)],
                 timeout=timeout + 10, check=False)
    if p.returncode:
        raise LabError(f"write_files on {host.name}: exit {p.returncode}: {p.stderr.strip()[-2000:]}")
    return json.loads(p.stdout)


def verify_files(host, manifest, timeout=120):
    """Read every file of MANIFEST back; returns {path: actual sha256 or error} of the ones that differ."""
    p = host.run(["timeout", "-s", "KILL", str(timeout), PY, "-c", VERIFY], input=json.dumps(manifest),
                 timeout=timeout + 10, check=False)
    if p.returncode:
        raise LabError(f"verify_files on {host.name}: exit {p.returncode}: {p.stderr.strip()[-2000:]}")
    return json.loads(p.stdout)


def probe(host, path, timeout=30):
    """One create+write+fsync+read+unlink through the mount; True if it completed within TIMEOUT."""
    p = host.run(["timeout", "-s", "KILL", str(timeout), PY, "-c", PROBE, path], timeout=timeout + 10, check=False)
    return p.returncode == 0
