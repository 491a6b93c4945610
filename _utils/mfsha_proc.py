"""What /proc says about an mfsmaster process, parsed: the rules the mfsmaster module and the MFSMaster resource
script decide on. No Salt and no I/O here (the module reads /proc): unit-tested directly.
"""

# mfsmaster commands that hold the lock only a moment. While no master runs, `mfsmaster test` names whichever holds
# the lock for a moment (a health probe, a stop), and that is no master. MFSMaster's list is rendered from this one.
SHORT_LIVED = ("test", "stop", "kill", "reload", "info", "restore")


def cmdline(data):
    """The argv of /proc/PID/cmdline's text ("" when the process is gone: [])."""
    return data.split("\0")[:-1]


def short_lived(argv):
    """True when a process's argv is one of mfsmaster's short-lived commands (SHORT_LIVED): no master."""
    return bool(argv) and argv[-1] in SHORT_LIVED


def stat_fields(text):
    """(comm, state letter) of /proc/PID/stat's text (`pid (comm) state ...`), or (None, None) for ""."""
    if not text:
        return None, None
    comm, _, rest = text.partition("(")[2].rpartition(")")
    return comm, rest.split()[0]


def live_master(comm, state):
    """True for an mfsmaster process that is not a zombie."""
    return comm == "mfsmaster" and state != "Z"
