"""Faults of the master service and host: kill -9, SIGSTOP, its port blocked, host death, the Salt master down, a
second fault during a failover, and back-to-back planned failovers (cycles)."""
import signal
import time

from mfshalab.faults.common import (NFT_TABLE, master_daemons, maintenance, nft, nft_clear, resume_all,
                                    salt_master_running, signal_master, wait_client, write)
from mfshalab.faults.recovery import hands_off, held_by, take_over
from mfshalab.hosts import wait_for


def f_kill9(lab, ctx):
    signal_master(lab, ctx["node"], signal.SIGKILL)
    return wait_client(lab, ctx["t0"], ctx["limit"])


def f_sigstop(lab, ctx):
    ctx["undo"].append(lambda: resume_all(lab))
    signal_master(lab, ctx["node"], signal.SIGSTOP)
    return wait_client(lab, ctx["t0"], ctx["limit"])


def f_port_blocked(lab, ctx):
    """nft on the active node drops what clients send to 9421 (loopback untouched: a typical firewall rule)."""
    h = lab.host(ctx["node"])
    ctx["undo"].append(lambda: nft_clear(h))
    nft(h, f'table inet {NFT_TABLE} {{\n chain input {{ type filter hook input priority 0; '
           f'iifname != "lo" tcp dport 9421 drop; }}\n}}\n')
    return wait_client(lab, ctx["t0"], ctx["limit"])


def f_host_death(lab, ctx):
    lab.crash(ctx["node"])
    return wait_client(lab, ctx["t0"], ctx["limit"])


def loop_off(lab, ctx):
    """Before the fault's clock starts (a salt-run takes seconds): the loop in maintenance, undone with the fault."""
    ctx["undo"].append(lambda: maintenance(lab, False))
    maintenance(lab, True)


def f_salt_master_down(lab, ctx):
    """Salt master down, then kill -9 mfsmaster: degraded, nothing may act (heartbeat v1 does not watch mfsmaster).
    Once the Salt master is back, the beacon's re-announcement (every cooldown s) lets the loop restore service."""
    lab.salt.stop_master()
    ctx["undo"].append(lambda: lab.salt.start_master() if not salt_master_running(lab) else None)
    signal_master(lab, ctx["node"], signal.SIGKILL)
    # SIGKILL is asynchronous: until the process is gone its socket still accepts
    wait_for("the killed mfsmaster gone", lambda: not master_daemons(lab, ctx["node"]), 10, interval=0.1)
    hold = ctx.get("hold", 20)
    end = time.monotonic() + hold
    while time.monotonic() < end:
        # serving, not mfsmaster processes: the beacon's `mfsmaster test` runs under that name every second
        if lab.serving(timeout=1):
            ctx["observed"]["acted_while_down"] = True
            ctx["notes"].append(f"something restored the master while the Salt master was down "
                                f"({round(time.monotonic() - ctx['t0'], 1)} s)")
            break
        time.sleep(0.5)
    else:
        ctx["observed"]["acted_while_down"] = False
        ctx["notes"].append(f"no action for {hold} s while the Salt master was down")
    lab.salt.start_master()
    lab.salt.wait_minions(lab.minions, timeout=90)
    ctx["notes"].append(f"Salt master back at {round(time.monotonic() - ctx['t0'], 1)} s")
    return wait_client(lab, ctx["t0"], ctx["limit"])


def f_during_failover(lab, ctx):
    """Host death of the active node, and the new master on the peer is killed (kill -9) as soon as heartbeat has
    started it: a second fault while the first failover runs. When MFSMaster's start then fails, heartbeat v1 gives
    the group up and nobody holds it: the loop's takeover (runner) must bring it back; the operator's hb_takeover
    runs only if client I/O is not back within the limit (the record says so)."""
    lab.crash(ctx["node"])
    peer = lab.peer(ctx["node"])
    wait_for(f"mfsmaster started on {peer}", lambda: master_daemons(lab, peer), 60, interval=0.1)
    signal_master(lab, peer, signal.SIGKILL)
    ctx["notes"].append(f"new master on {peer} killed at {round(time.monotonic() - ctx['t0'], 1)} s")
    rto = wait_client(lab, ctx["t0"], ctx["limit"])
    if rto is not None:
        return rto
    hands_off(lab, ctx)
    if not held_by(lab):
        take_over(lab, peer)
        ctx["observed"]["operator_recovery"] = f"takeover on {peer} (nobody held the group; {ctx['node']} dead)"
        ctx["notes"].append(f"not back after {ctx['limit']} s, nobody holds the group; operator hb_takeover on "
                            f"{peer} at {round(time.monotonic() - ctx['t0'], 1)} s")
        rto = wait_client(lab, ctx["t0"], ctx["limit"] + 120)
    return rto


def f_cycles(lab, ctx):
    """N back-to-back planned failovers (salt-run mfsha.switchover), each with files written before it and read
    after it; rto_s is the worst cycle, every cycle's RTO is in the notes."""
    runs = []
    for i in range(ctx["cycles"]):
        manifest = write(lab, f"cycle{i}")
        ctx["extra"] = {**(ctx.get("extra") or {}), **manifest}
        t = time.monotonic()
        p = lab.salt.run_cmd("mfsha.switchover", "lab", "--out=json", timeout=150)
        if p.returncode or '"switched"' not in p.stdout:
            ctx["notes"].append(f"cycle {i}: switchover: exit {p.returncode}: {p.stdout[-500:]} {p.stderr[-500:]}")
            runs.append(None)
            break
        runs.append(wait_client(lab, t, ctx["limit"]))
        if runs[-1] is None or lab.verify_files(manifest):
            ctx["notes"].append(f"cycle {i}: client I/O or files not back")
            break
    ctx["notes"].append(f"cycle RTOs (s): {runs}")
    ctx["observed"]["cycle_rtos"] = runs
    return None if None in runs or len(runs) < ctx["cycles"] else max(runs)
