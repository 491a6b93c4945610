# mfsha: see README.md. Every target installs what it needs through `setup`.
PY := .venv/bin/python
PYTEST := $(PY) -m pytest

.PHONY: setup demo test test-standalone test-unit test-render test-lab test-vm test-integration bench plot faults soak \
	lab-up lab-down lab-status clean
setup:
	@bash tools/setup.sh

# The clean-clone check first, then the tiers (pytest.ini testpaths): unit, render, the lab, its integration tests
# and the DRBD VMs. When the checkout has no change against HEAD the clone has just run unit and render on the same
# files, so they are not run twice.
test: setup test-standalone
	@if [ -z "$$(git status --porcelain)" ]; then \
	  echo "make test: no change against HEAD: unit and render passed in the clone; the lab tiers follow"; \
	  $(PYTEST) test/lab test/integration; \
	else $(PYTEST); fi

# The repository stands alone: the committed HEAD, cloned into an empty temporary directory with nothing beside it,
# passes the unit and render tiers (with this checkout's venv). The directory goes away whatever happens.
test-standalone: setup
	@tmp=$$(mktemp -d /tmp/mfsha-standalone.XXXXXX) && trap 'rm -rf "$$tmp"' EXIT && \
	echo "test-standalone: HEAD $$(git rev-parse --short HEAD) cloned into $$tmp/mfsha" && \
	git clone -q "$(CURDIR)" "$$tmp/mfsha" && ln -s "$$(readlink -f .venv)" "$$tmp/mfsha/.venv" && \
	cd "$$tmp/mfsha" && .venv/bin/python -m pytest -q test/unit test/render || \
	{ echo "test-standalone: FAILED in a clean clone of HEAD: does a test need a file git does not track?" >&2; \
	  exit 1; }

test-unit: setup
	$(PYTEST) test/unit

test-render: setup
	$(PYTEST) test/render

# The real DRBD tier: two qemu (TCG) VMs; the image is built once into /var/cache/mfsha/vm-<key> (~3-5 min cold).
test-vm: setup
	$(PYTEST) -m vm test/lab/vm

# --- network-namespace lab (the mfshalab package, mfshalab/README.md; run dir /var/tmp/<name>; NAME=mfslab) ---
demo: setup
	$(PY) tools/demo.py

lab-up: setup
	$(PY) -m mfshalab up --name $${NAME:-mfslab}

lab-down:
	$(PY) -m mfshalab down --name $${NAME:-mfslab}

lab-status:
	$(PY) -m mfshalab status --name $${NAME:-mfslab}

test-lab: setup
	$(PYTEST) test/lab --ignore=test/lab/vm

test-integration: setup
	$(PYTEST) test/integration

# RTO/RPO benchmark on the lab (not a timed test): ROUNDS=3 make bench for a quick run; bench/results.json + rto.png
bench: setup
	ROUNDS=$${ROUNDS:-20} $(PY) tools/bench.py

# Redraw bench/rto.png from bench/results.json (no lab)
plot: setup
	$(PY) tools/bench.py --plot-only

# Fault matrix on a private lab `faults` (tools/faults.py, mfshalab/faults): each fault ROUNDS times
# (3), one record per fault in faults/report.json (RTO median/max, bytes lost, two masters/primaries sampled
# throughout, final state); CYCLES=5 back-to-back failovers
faults: setup
	$(PY) tools/faults.py --rounds $${ROUNDS:-3} --cycles $${CYCLES:-5}

# The long variant: 50 back-to-back failover cycles, merged into faults/report.json
soak: setup
	$(PY) tools/faults.py --faults cycles --cycles $${CYCLES:-50} --merge

# What the build left in this checkout: the .venv link, bytecode, pytest caches. Never the venv cache it points to
# (/var/cache/mfsha, shared by every checkout) and never a lab (its run dir is under /var/tmp: `make lab-down`).
clean:
	if [ -L .venv ]; then rm .venv; fi
	find . -path ./.git -prune -o -type d \( -name __pycache__ -o -name .pytest_cache \) -prune -exec rm -rf {} +
	rm -rf bench/out faults/out
