"""mfshalab: the network-namespace lab and fault harness of mfsha, one package for the tests (test/lab,
test/integration), `make demo`, `make bench` and `make faults` (see README.md here).

  lab.Lab             six hosts, a real Salt master and minions, the formula deployed (python -m mfshalab up|down)
  loop                the failover loop (runner + reactor) on the lab's Salt master, its event bus
  faults              the fault catalogue: run_fault(lab, name) -> one report record
  report              repeated runs of a fault summed up into faults/report.json's records

Import it with the repository root on sys.path: pytest does (pytest.ini `pythonpath = .`), tools/*.py add the root.
"""
