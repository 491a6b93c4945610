"""The fault catalogue on the lab: run_fault(lab, name) runs one fault and returns its report record
(mfshalab.faults.run); FAULTS, LIMITS, PREPARE and MATRIX are the catalogue (mfshalab.faults.catalogue). The faults
are grouped by what they hit: service (master process and host, Salt master, cycles), network, storage, and the
security faults forged, rogue and security; common holds their pieces, recovery the operator's documented steps.
The names below are the ones the tests and tools use."""
from mfshalab.faults.catalogue import FAULTS, LIMITS, MATRIX, PREPARE
from mfshalab.faults.common import (bytes_lost, fresh_book, host_path, loop_history, loop_idle,
                                    maintenance, signal_master, wait_client, write)
from mfshalab.faults.run import run_fault
from mfshalab.faults.storage import FILL, free_space

__all__ = ["FAULTS", "FILL", "LIMITS", "MATRIX", "PREPARE", "bytes_lost", "free_space", "fresh_book", "host_path",
           "loop_history", "loop_idle", "maintenance", "run_fault", "signal_master", "wait_client", "write"]
