"""Timings of the VM tier, recorded by tests and printed in the pytest summary (vm conftest)."""

TIMINGS = []


def record(phase, secs):
    TIMINGS.append((phase, secs))
    print(f"vm-timing: {phase}: {secs:.1f}s")
