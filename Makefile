# mfsha: see README.md. Every target installs what it needs through `setup`.
PY := .venv/bin/python
PYTEST := $(PY) -m pytest

.PHONY: setup demo test test-unit test-render test-lab test-vm test-integration bench faults soak lab-up lab-down lab-status clean
setup:
	@bash tools/setup.sh

# fast tiers first (pytest.ini testpaths): unit, render, then the lab, its integration tests and the DRBD VMs
test: setup
	$(PYTEST)

test-unit: setup
	$(PYTEST) test/unit

test-render: setup
	$(PYTEST) test/render

# The real DRBD tier: two qemu (TCG) VMs; the image is built once into /var/cache/mfsha/vm-<key> (~3-5 min cold).
test-vm: setup
	$(PYTEST) -m vm test/lab/vm

# --- network-namespace lab (test/lab/lab.py; run dir /var/tmp/<name>) ---
demo: setup
	$(PY) tools/demo.py

lab-up: setup
	$(PY) test/lab/lab.py up

lab-down:
	$(PY) test/lab/lab.py down

lab-status:
	$(PY) test/lab/lab.py status

test-lab: setup
	$(PYTEST) test/lab --ignore=test/lab/vm

test-integration: setup
	$(PYTEST) test/integration

# RTO/RPO benchmark on the lab (not a timed test): ROUNDS=3 make bench for a quick run; bench/results.json + rto.png
bench: setup
	ROUNDS=$${ROUNDS:-20} $(PY) tools/bench.py

# Fault matrix on a private lab `faults` (tools/faults.py, test/integration/faultlib.py): each fault ROUNDS times
# (3), one record per fault in faults/report.json (RTO median/max, bytes lost, two masters/primaries sampled
# throughout, final state); CYCLES=5 back-to-back failovers
faults: setup
	$(PY) tools/faults.py --rounds $${ROUNDS:-3} --cycles $${CYCLES:-5}

# The long variant: 50 back-to-back failover cycles, merged into faults/report.json
soak: setup
	$(PY) tools/faults.py --faults cycles --cycles $${CYCLES:-50} --merge
