"""Fixtures of the DRBD VM tier: the cached image, a booted mfs-a/mfs-b pair per test module, timings."""
import os
import shutil
import signal
import subprocess
import time

import pytest

import vmimage
from vm_support import TIMINGS, record
import vmrun

def pytest_terminal_summary(terminalreporter):
    if TIMINGS:
        terminalreporter.section("DRBD VM tier timings")
        for phase, secs in TIMINGS:
            terminalreporter.write_line(f"{phase:<55} {secs:7.1f}s")


def qemu_unusable():
    """Why qemu cannot run a VM here, or None."""
    if os.geteuid() != 0:
        return "the VM tier needs root (debootstrap, chroot, image build)"
    if not shutil.which("qemu-system-x86_64"):
        return "qemu-system-x86_64 is not installed"
    try:
        p = subprocess.run(["qemu-system-x86_64", "-accel", "tcg", "-M", "none", "-display", "none", "-nodefaults",
                            "-qmp", "stdio"], input='{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n',
                           capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "qemu-system-x86_64 -accel tcg did not answer QMP in 30 s"
    if p.returncode != 0:
        return f"qemu-system-x86_64 -accel tcg cannot start: {p.stderr.strip()}"
    return None


def _term_as_interrupt(signum, frame):
    # SIGTERM (CI timeout, kill) runs the finalizers that kill our qemu PIDs; PDEATHSIG covers SIGKILL
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def vm_image():
    reason = qemu_unusable()
    if reason:
        pytest.skip(reason)
    signal.signal(signal.SIGTERM, _term_as_interrupt)
    t = time.monotonic()
    image = vmimage.ensure(log=print)
    record(f"image ({os.path.basename(image)}, build or cache hit)", time.monotonic() - t)
    return image


@pytest.fixture(scope="module")
def pair(vm_image, request):
    """A freshly booted pair with blank DRBD disks; torn down (qemu killed by PID) after the module."""
    p = vmrun.Pair(vm_image)
    try:
        t = time.monotonic()
        boots = p.start()
        record(f"{request.module.__name__}: boot both VMs (parallel)", time.monotonic() - t)
        for name, secs in boots.items():
            record(f"{request.module.__name__}: {name} boot", secs)
        yield p
    finally:
        p.close(keep=os.environ.get("MFSHA_VM_KEEP") == "1")
