# mfsha: see README.md. Every target installs what it needs through `setup`.
PY := .venv/bin/python
PYTEST := $(PY) -m pytest

.PHONY: setup demo test test-unit test-render test-lab test-vm test-integration bench faults lab-up lab-down lab-status clean
setup:
	@bash tools/setup.sh

test: setup
	$(PYTEST) test

test-unit: setup
	$(PYTEST) test/unit

test-render: setup
	$(PYTEST) test/render

# The real DRBD tier: two qemu (TCG) VMs; the image is built once into /var/cache/mfsha/vm-<key> (~3-5 min cold).
test-vm: setup
	$(PYTEST) -m vm test/lab/vm
