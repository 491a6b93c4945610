"""_utils/mfsha_cmd.py: the one command wrapper of the execution modules and its one error format; _utils/mfsha_proc.py:
the "a short-lived mfsmaster command is no master" rule that the mfsmaster module and MFSMaster share."""
import pytest

import mfsha_cmd
import mfsha_proc

SECRET = "Sup3r-S3cret-drbd"


def test_every_command_runs_without_a_shell_and_quietly():
    seen = []

    def run_all(args, **kw):
        seen.append((args, kw))
        return {"retcode": 0, "stdout": "ok\n", "stderr": ""}
    assert mfsha_cmd.run(run_all, ["ip", "-o", "addr"], timeout=3, stdin="x")["stdout"] == "ok\n"
    assert seen == [(["ip", "-o", "addr"], {"python_shell": False, "ignore_retcode": True, "output_loglevel": "quiet",
                                            "timeout": 3, "stdin": "x", "env": None})]


def test_a_failure_names_the_command_its_exit_code_and_output_with_secrets_masked():
    res = {"retcode": 10, "stdout": "", "stderr": f"Command 'drbdsetup net r0 --shared-secret={SECRET}' terminated "
                                                  "with exit code 10\x00\n"}
    with pytest.raises(RuntimeError) as err:
        mfsha_cmd.run(lambda args, **kw: res, ["drbdadm", "up", "r0"], fail=RuntimeError)
    assert str(err.value).startswith("drbdadm up r0 failed with exit code 10: Command 'drbdsetup net r0")
    assert SECRET not in str(err.value) and "\x00" not in str(err.value)
    assert mfsha_cmd.run(lambda args, **kw: res, ["drbdadm", "up", "r0"])["retcode"] == 10  # no fail: the caller reads it


def test_output_joins_stderr_and_stdout_without_nul_bytes():
    assert mfsha_cmd.output({"stderr": "mfsmaster: bad\x00\n", "stdout": "info\n"}) == "mfsmaster: bad\ninfo"
    assert mfsha_cmd.output({"stderr": "\x00\n", "stdout": None}) == ""


def test_a_short_lived_mfsmaster_command_is_no_master():
    for cmd in ("test", "stop", "kill", "reload", "info", "restore"):
        assert mfsha_proc.short_lived(mfsha_proc.cmdline(f"mfsmaster\0-c\0/mfsconf/mfsmaster.cfg\0{cmd}\0"))
    assert not mfsha_proc.short_lived(mfsha_proc.cmdline("mfsmaster\0-a\0-c\0/mfsconf/mfsmaster.cfg\0start\0"))
    assert not mfsha_proc.short_lived(mfsha_proc.cmdline(""))  # gone: not counted as a probe


def test_stat_fields_and_a_live_master():
    assert mfsha_proc.stat_fields("4242 (mfsmaster) T 1 4242 4242 0 -1") == ("mfsmaster", "T")
    assert mfsha_proc.stat_fields("7 (a (b) c) S 1") == ("a (b) c", "S")  # comm may hold parentheses
    assert mfsha_proc.stat_fields("") == (None, None)
    assert mfsha_proc.live_master("mfsmaster", "S") and not mfsha_proc.live_master("mfsmaster", "Z")
    assert not mfsha_proc.live_master("mfsmaster-x", "S") and not mfsha_proc.live_master(None, None)
