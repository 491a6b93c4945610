"""Faults of the network between the masters: a partition (with heartbeat lost in its heal), the standby or the
active node cut off. Each holds for HOLD s, then heals and measures the outage of the heal itself."""
import os
import signal
import threading
import time

from mfshalab.faults.common import NFT_TABLE, nft, nft_clear, wait_client
from mfshalab.hosts import LabError, wait_for


def f_partition(lab, ctx):
    """The two masters lose each other (every packet between their own addresses dropped, both sides) while the
    clients still reach both, and the VIP. Held for HOLD s (peer declared dead after deadtime, its takeover and
    heartbeat's retry 30 s after a failed one), then healed; the watcher samples throughout."""
    a, b = lab.masters
    for me, other in ((a, b), (b, a)):
        h, addr = lab.host(me), lab.host(other).addr
        ctx["undo"].append(lambda h=h: nft_clear(h))
        nft(h, f"table inet {NFT_TABLE} {{\n"
               f" chain input {{ type filter hook input priority 0; ip saddr {addr} drop; }}\n"
               f" chain output {{ type filter hook output priority 0; ip daddr {addr} drop; }}\n}}\n")
    rto = wait_client(lab, ctx["t0"], ctx["limit"])
    wait_for("each side declaring the other dead", lambda: all("dead" in lab.heartbeat_view(m).values()
                                                               for m in lab.masters), 40, interval=1)
    ctx["observed"]["heartbeat_views"] = {m: lab.heartbeat_view(m) for m in lab.masters}
    ctx["notes"].append(f"heartbeat views during the partition: {ctx['observed']['heartbeat_views']}")
    hold_then_heal(lab, ctx)
    return rto


def f_heal_loses_heartbeat(lab, ctx):
    """The partition above, and heartbeat lost on the standby in the heal. heartbeat v1 restarts on meeting the peer
    it had declared dead; when its two ping readers miss the SIGTERM (a signal race, seen in CI and in this lab's
    partition runs), its "Emergency Shutdown" kills everything 30 s later and nothing starts it again. The race
    cannot be forced, so this does the emergency's last step at once: SIGKILL to every heartbeat process of the
    standby as soon as its restart has signalled its children. The loop starts heartbeat there again (rejoin)."""
    standby = lab.host(lab.peer(ctx["node"]))
    mark, done = len(standby.syslog()), {}

    def lose():
        try:
            wait_for(f"{standby.name}'s heartbeat restart signalling its children", lambda: any(
                "killing HBREAD process" in line for line in standby.syslog()[mark:]), 60, interval=0.2)
            pids = sorted(p for p, cmd in standby.processes().items() if cmd.startswith("heartbeat:"))
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            done["pids"] = pids
        except (LabError, OSError) as e:
            done["error"] = str(e)
    killer = threading.Thread(target=lose, daemon=True)
    ctx["undo"].append(killer.start)  # at the heal, beside the partition's own undo
    rto = f_partition(lab, ctx)
    killer.join(timeout=70)
    if "pids" not in done:
        raise LabError(f"heal_loses_heartbeat: the standby's heartbeat was not killed: {done.get('error')}")
    ctx["notes"].append(f"{standby.name}: heartbeat processes {done['pids']} killed in its restart")
    return rto


def f_isolated_standby(lab, ctx):
    """The passive master's cable is pulled: it hears neither its peer nor an ARP answer for the VIP, so only the
    witness rule (no ping node answers) keeps its heartbeat from taking the group while the active node serves.
    Held for HOLD s (deadtime, the refused takeover, heartbeat's retry), then plugged back in."""
    cut = lab.host(lab.peer(ctx["node"]))
    ctx["undo"].append(lambda: cut.link(True))
    cut.link(False)
    rto = wait_client(lab, ctx["t0"], ctx["limit"])
    wait_for(f"{cut.name} declaring {ctx['node']} dead", lambda: lab.heartbeat_view(cut.name)[ctx["node"]] == "dead",
             40, interval=1)
    ctx["observed"]["heartbeat_views"] = {m: lab.heartbeat_view(m) for m in lab.masters}
    ctx["notes"].append(f"heartbeat views while {cut.name} was cut off: {ctx['observed']['heartbeat_views']}")
    hold_then_heal(lab, ctx)
    return rto


def f_isolated_active(lab, ctx):
    """The active master's cable is pulled. Its peer still reaches the ping nodes and hears no ARP answer for the
    VIP, so it takes over after deadtime; the cut-off holder must let go first (mfsha-selffence), or the storage
    and the VIP are held twice. Held for HOLD s, then plugged back in."""
    cut = lab.host(ctx["node"])
    ctx["undo"].append(lambda: cut.link(True))
    cut.link(False)
    rto = wait_client(lab, ctx["t0"], ctx["limit"])
    ctx["observed"]["heartbeat_views"] = {m: lab.heartbeat_view(m) for m in lab.masters}
    ctx["notes"].append(f"heartbeat views while {cut.name} was cut off: {ctx['observed']['heartbeat_views']}")
    hold_then_heal(lab, ctx)
    return rto


def hold_then_heal(lab, ctx):
    """Keep the fault until HOLD s after T0, undo it, then measure the outage while heartbeat meets the peer it
    had declared dead again (it restarts on both sides: resources released and re-acquired), until both have
    joined and 40 s have passed."""
    while time.monotonic() - ctx["t0"] < ctx.get("hold", 45):
        time.sleep(1)
    for undo in ctx["undo"]:
        undo()
    ctx["undo"].clear()
    ctx["notes"].append(f"healed at {round(time.monotonic() - ctx['t0'], 1)} s")
    healed, lost_at, outage = time.monotonic(), None, 0.0
    while time.monotonic() - healed < 120:
        ok = bool(lab.active() and lab.serving(timeout=1))
        now = time.monotonic()
        if not ok and lost_at is None:
            lost_at = now
        elif ok and lost_at is not None:
            outage, lost_at = outage + now - lost_at, None
        if ok and now - healed > 40 and lab.joined():
            break
        time.sleep(0.5)
    ctx["observed"]["heal_outage_s"] = round(outage + (time.monotonic() - lost_at if lost_at else 0), 1)
    ctx["notes"].append(f"no service for {ctx['observed']['heal_outage_s']} s after the heal "
                        f"(heartbeat restarts on both nodes)")
