"""The one way mfsha's execution modules run a command, and the one format of a command's failure.

No Salt here: the caller hands in Salt's cmd.run_all (and the exception class to raise), so the rules are unit-tested
directly. Every command runs without a shell and with its output kept out of Salt's log (drbdadm's output can carry
the DRBD shared secret); a failure's message is `<command> failed with exit code N: <output>`, secrets masked.
"""
import mfsha_redact


def output(res):
    """A command's own words: stderr and stdout, each stripped, joined by a newline. mfsmaster writes its messages
    to stderr and ends some with a NUL byte; mfscli and the heartbeat scripts write to stdout."""
    parts = (res.get("stderr") or "", res.get("stdout") or "")
    return "\n".join(p.replace("\x00", "").strip() for p in parts if p.strip("\x00 \n"))


def failure(args, res, note=""):
    """The message of a failed command, secrets masked (drbdadm reports a failed step with its `--shared-secret=`
    command line)."""
    return mfsha_redact.text(f"{' '.join(str(a) for a in args)} failed with exit code {res['retcode']}: "
                             f"{output(res)}{note}")


def run(run_all, args, timeout=None, stdin=None, env=None, fail=None):
    """Run `args` (a list, no shell) through `run_all` (Salt's cmd.run_all) within `timeout` s (None: unbounded),
    with `stdin` and extra `env`; returns its result dict ({"retcode", "stdout", "stderr", ...}). With `fail` (an
    exception class), a non-zero exit raises fail(failure(args, result)); without, the caller reads the exit code."""
    res = run_all(args, python_shell=False, ignore_retcode=True, output_loglevel="quiet", timeout=timeout,
                  stdin=stdin, env=env)
    if fail is not None and res["retcode"] != 0:
        raise fail(failure(args, res))
    return res
