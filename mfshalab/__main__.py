"""The lab from the command line (root), run from the repository root:

  python -m mfshalab up [--no-deploy] [--keep] [--name N] [--rundir D]    # make lab-up
  python -m mfshalab status | down | destroy [--name N]                  # make lab-status / lab-down

`down` keeps the run dir (logs), `destroy` removes it too. See mfshalab/README.md.
"""
import argparse
import json
import os
import signal
import sys

from mfshalab.lab import Lab, raise_interrupt


def up(lab, deploy, keep):
    """Bring LAB up; a failed bring-up is torn down unless KEEP (its logs stay in the run dir either way)."""
    try:
        lab.up(deploy=deploy)
    except BaseException:
        if keep:
            print(f"lab: up failed; left running (--keep); logs under {lab.rundir}", file=sys.stderr)
            raise
        print(f"lab: up failed; logs under {lab.rundir}; tearing down", file=sys.stderr)
        lab.down()
        raise
    print(json.dumps({"timings": lab.timings, "active": lab.active() if deploy else None}))


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m mfshalab", description="The mfsha network-namespace lab.")
    ap.add_argument("command", choices=["up", "down", "status", "destroy"])
    ap.add_argument("--name", default="mfslab", help="names the namespaces and the run dir (default mfslab)")
    ap.add_argument("--rundir", help="default $MFSHA_LAB_RUN/<name>, MFSHA_LAB_RUN defaulting to /var/tmp")
    ap.add_argument("--no-deploy", action="store_true", help="up: hosts + Salt only, no state.apply")
    ap.add_argument("--keep", action="store_true", help="up: leave a failed lab running for inspection")
    a = ap.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("mfshalab: needs root (namespaces, loop devices)")
    lab = Lab(a.name, a.rundir)
    signal.signal(signal.SIGTERM, raise_interrupt)
    if a.command == "up":
        up(lab, not a.no_deploy, a.keep)
    elif a.command == "status":
        print(json.dumps(lab.status(), indent=1))
    elif a.command == "down":
        lab.down()
    else:
        lab.destroy()


if __name__ == "__main__":
    main()
