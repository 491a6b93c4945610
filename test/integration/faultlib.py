"""Faults on the lab and what they cost, in one place for tools/bench.py, tools/faults.py and test_faults.py.

run_fault(lab, name) heals the lab, writes checksummed fsync'ed files through the client, starts a Watcher that
samples both masters in the background (never two mfsmaster processes, never the shared storage mounted twice,
never the VIP on both), injects the fault, times until one client create+write+fsync+read through the VIP works
again (rto_s), writes more files, reads every file back (bytes_lost) and returns the report record:

  {"fault", "rto_s", "bytes_lost", "two_masters", "two_primaries", "final_state",
   "node", "two_vips", "files_bytes", "samples", "notes", "observed", "seconds"}

rto_s is None when client I/O did not come back within the fault's limit; files are then still verified after the
fault is undone (what an operator finds). Every wait is bounded; every fault is undone, also after an error.
"""
import fcntl
import glob
import json
import os
import shutil
import signal
import statistics
import threading
import time

from labhosts import LabError, wait_for

FILE_SIZE, FILES = 64 * 1024, 5
LIMIT_S = 90
NFT_TABLE = "mfsha_fault"
FILL = ".mfsha-fault-fill"


# ---- pieces ------------------------------------------------------------------------------------------------------

def maintenance(lab, on):
    p = lab.salt.run_cmd("mfsha.maintenance", "lab", "on" if on else "off")
    if p.returncode:
        raise LabError(f"salt-run mfsha.maintenance: {p.stderr.strip()}")


def loop_idle(lab, timeout=150):
    """Wait (bounded) until no recovery of the failover loop runs: the runner holds this flock while it acts."""
    path = os.path.join(lab.rundir, "salt", "cache", "mfsha", "lab.lock")

    def free():
        if not os.path.exists(path):
            return True
        with open(path) as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            fcntl.flock(fh, fcntl.LOCK_UN)
            return True
    wait_for("the failover loop's running recovery to end", free, timeout, interval=1)


def book_path(lab):
    """The loop's book of the lab's cluster: the runner's file in the lab Salt master's cachedir."""
    return os.path.join(lab.rundir, "salt", "cache", "mfsha", "lab.json")


def fresh_book(lab):
    """Forget the loop's history (restart budget, flap guard, maintenance): every fault is a first fault."""
    if os.path.exists(book_path(lab)):
        os.unlink(book_path(lab))


def loop_history(lab):
    """The loop's actions in the book, with their reasons."""
    if not os.path.exists(book_path(lab)):
        return []
    with open(book_path(lab)) as f:
        return json.load(f).get("history", [])


def loop_actions(lab, since):
    """The loop's actions as report lines: what, on which node, its result, when it was decided (seconds after
    SINCE, a time.time()) and its reason."""
    return [f"{e['action']} {e.get('node')} {e['result']} at {e['time'] - since:.1f} s: {e['reason']}"
            for e in loop_history(lab)]


def signal_master(lab, node, sig):
    pids = master_daemons(lab, node)
    if not pids:
        raise LabError(f"no mfsmaster process on {node}")
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    return pids


def resume_all(lab):
    """SIGCONT every mfsmaster: a stopped master must never outlive its fault."""
    for m in lab.masters:
        for pid in lab.mfsmaster_pids(m):
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass


def wait_client(lab, t0, limit):
    """Seconds from T0 until one client create+write+fsync+read through the VIP works, or None after LIMIT s."""
    while time.monotonic() - t0 < limit:
        try:
            if lab.probe(timeout=max(1, int(limit - (time.monotonic() - t0)))):
                return round(time.monotonic() - t0, 2)
        except LabError:  # the probe sat in FUSE I/O past SIGKILL (no master): still not back
            pass
        time.sleep(0.1)
    return None


def write(lab, tag):
    return lab.write_files(n=FILES, size=FILE_SIZE, subdir=f"faults/{tag}-{time.time_ns()}")


def bytes_lost(lab, manifest, timeout=120, bad=None):
    """Bytes of acknowledged (fsync'ed) files that no longer read back identically (their paths into BAD)."""
    mismatch = lab.verify_files(manifest, timeout=timeout) if manifest else {}
    if bad is not None:
        bad.update(mismatch)
    return FILE_SIZE * len(mismatch)


def nft(host, rules):
    """Load an nft ruleset (a table of this module) inside HOST's network namespace."""
    host.run(["nft", "-f", "-"], input=rules, timeout=10)


def nft_clear(host):
    if host.alive() and host.run(["nft", "list", "table", "inet", NFT_TABLE], timeout=10, check=False).returncode == 0:
        host.run(["nft", "delete", "table", "inet", NFT_TABLE], timeout=10)


def host_path(lab, name, path):
    """PATH inside host NAME's mount namespace, seen from the machine."""
    return f"/proc/{lab.host(name).pid}/root{path}"


def final_state(lab, timeout=60, join_timeout=90):
    """After the fault is undone: who serves and whether both heartbeats joined (bounded waits: heartbeat gone from
    a node is the loop's to start again), e.g. 'serving on mfs-b'."""
    try:
        active = lab.wait_serving(timeout)
    except LabError:
        st = {m: lab.node_state(m) for m in lab.masters}
        return f"NOT serving: {json.dumps(st, sort_keys=True)}"
    down = [m for m in lab.masters if not lab.host(m).alive()]
    if down:
        return f"serving on {active} ({', '.join(down)} down)"
    try:
        wait_for("both heartbeats joined", lab.joined, join_timeout, interval=1)
        return f"serving on {active}"
    except LabError:
        return f"serving on {active} (heartbeats not joined)"


def master_daemons(lab, node):
    """PIDs of mfsmaster processes on NODE other than `mfsmaster ... test` (health checks)."""
    out = []
    for pid in lab.mfsmaster_pids(node):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except (FileNotFoundError, ProcessLookupError):
            continue
        if b"test" not in args:
            out.append(pid)
    return out


class Watcher:
    """Samples both masters every INTERVAL s in a thread; any sample with two holders sets the flag for good."""

    def __init__(self, lab, interval=0.3):
        self.lab, self.interval = lab, interval
        self.flags = {"two_masters": [], "two_primaries": [], "two_vips": []}
        self.samples, self.errors = 0, []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.t0 = time.monotonic()

    def start(self):
        self.thread.start()
        return self

    def sample(self):
        st = {m: self.lab.node_state(m) for m in self.lab.masters}
        for m, s in st.items():  # a master process, not the beacon's or the agent's `mfsmaster -c CFG test`
            s["mfsmaster"] = bool(master_daemons(self.lab, m))
        t = round(time.monotonic() - self.t0, 2)
        for key, what in (("two_masters", "mfsmaster"), ("two_primaries", "storage"), ("two_vips", "vip")):
            if all(s[what] for s in st.values()):
                self.flags[key].append(t)
        self.samples += 1

    def _run(self):
        while not self.stopping.wait(self.interval):
            try:
                self.sample()
            except Exception as e:  # noqa: BLE001 - a host restarting mid-sample; keep sampling, report it
                self.errors.append(f"{type(e).__name__}: {e}")

    def stop(self):
        self.stopping.set()
        self.thread.join(timeout=30)
        self.sample()  # and the end state
        return {k: bool(v) for k, v in self.flags.items()}


# ---- the faults: each injects, drives the scenario and returns rto_s; undo steps go to ctx["undo"] ----------------

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


def salt_master_running(lab):
    return any("/salt-master -c " in c for c in lab.host(lab.salt_host).processes().values())


def free_space(lab, mnt):
    """Remove the fill file wherever the storage is (or mounted for it on a live master)."""
    node = held_by(lab) or next(m for m in lab.masters if lab.host(m).alive())
    on_storage(lab, node, mnt, lambda path: os.path.exists(f"{path}/{FILL}") and os.unlink(f"{path}/{FILL}"))


def f_disk_full(lab, ctx):
    """The metadata file system (storage mountpoint) fills up on the active node; client writes during it, so the
    master's changelog lacks them; then mfsmaster crashes while it is full. The loop must give the storage its
    reserve back and copy the missing changes from the metalogger before `-a` (which would serve without them).
    Space is freed after LIMIT s; if client I/O is still not back 30 s later, the operator recovery from the
    metalogger runs (see the notes)."""
    node, mnt = ctx["node"], lab.cluster_pillar()["storage"]["mountpoint"]
    h = lab.host(node)
    fill = f"{mnt}/{FILL}"
    reserve = host_path(lab, node, f"{mnt}/.mfsha-reserve")
    wait_for("the beacon's reserve on the storage", lambda: os.path.exists(reserve), 30)
    ctx["notes"].append(f"reserve: {os.stat(reserve).st_size} bytes")
    ctx["undo"].append(lambda: free_space(lab, mnt))
    h.run(f"fallocate -l $(($(df --output=avail -B1 {mnt} | tail -1) - 65536)) {fill}; "
          f"dd if=/dev/zero of={fill} bs=4k oflag=append conv=notrunc 2>/dev/null; true", timeout=60)
    ctx["notes"].append("df while full: " + h.run(["df", "-B1", "--output=avail", mnt], timeout=10)
                        .stdout.split()[-1] + " bytes free")
    try:
        ctx["extra"] = write(lab, "during-full")
        ctx["notes"].append("client writes while full: ok")
    except LabError as e:
        ctx["notes"].append(f"client writes while full failed: {str(e)[-300:]}")
    signal_master(lab, node, signal.SIGKILL)
    rto = wait_client(lab, ctx["t0"], ctx["limit"])
    ctx["observed"]["reserve_released"] = not os.path.exists(reserve)
    if rto is None:
        ctx["notes"].append(f"not serving after {ctx['limit']} s while full; space freed")
        for undo in ctx["undo"]:
            undo()
        ctx["undo"].clear()
        rto = wait_client(lab, ctx["t0"], ctx["limit"] + 30)
        if rto is None:
            rto = operator_recovery(lab, ctx, mnt)
    return rto


def changelog_hole(data_dir):
    """Cut the middle third of the replayable entries out of changelog.0.mfs (what CHANGELOG_SAVE_MODE 0 lost in 1
    of 5 kill -9 crashes in the lab): `mfsmaster -a` then stops at `hole in change files`. Returns the removed version range."""
    path = os.path.join(data_dir, "changelog.0.mfs")
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    entries = [i for i, line in enumerate(lines) if line.split(b":", 1)[0].isdigit()]
    if len(entries) < 6:
        raise LabError(f"changelog.0.mfs has only {len(entries)} entries: no hole to make")
    cut = entries[len(entries) // 3: 2 * len(entries) // 3]
    gone = (lines[cut[0]].split(b":")[0].decode(), lines[cut[-1]].split(b":")[0].decode())
    st = os.stat(path)
    with open(path + ".tmp", "wb") as f:
        f.write(b"\n".join(line for i, line in enumerate(lines) if i not in set(cut)))
    os.chown(path + ".tmp", st.st_uid, st.st_gid)
    os.replace(path + ".tmp", path)
    return gone


def on_storage(lab, node, mnt, fn):
    """fn(path of MNT seen from the machine) with the shared storage mounted on NODE: as it is when NODE holds it,
    else mounted for the call only (nobody holds it: heartbeat gave the group up). Returns whether it was held."""
    held = lab.node_state(node)["storage"]
    if not held:
        lab.host(node).run(["mount", lab.device, mnt], timeout=30)
    try:
        fn(host_path(lab, node, mnt))
    finally:
        if not held:
            lab.host(node).run(["umount", mnt], timeout=30)
    return held


def recover_from_metalogger(lab, node, mnt, metalogger="mfs-cs1"):
    """The manual recovery of a changelog hole (it worked in the lab): the metalogger's changelog_ml*.mfs into DATA_PATH,
    then mfsmaster -a. NODE holds the storage: restart through the module. Nobody holds it (heartbeat gave the
    group up after MFSMaster failed to start on both): mount it on NODE for the copy only, then `hb_takeover all`
    there. Returns what it did."""
    src = sorted(glob.glob(host_path(lab, metalogger, "/var/lib/mfs/changelog_ml*.mfs")))

    def copy(dst):
        st = os.stat(dst)
        for old in glob.glob(os.path.join(dst, "changelog_ml*.mfs")):  # a previous recovery's copies are stale
            os.unlink(old)
        for f in src:
            shutil.copy(f, dst)
            os.chown(os.path.join(dst, os.path.basename(f)), st.st_uid, st.st_gid)
    held = on_storage(lab, node, mnt, copy)
    how = "hb_takeover all (nobody held the group)"
    if held:
        ret = lab.salt.cmd(node, "mfsha.restart_master", f"cfg={mnt}/mfsmaster.cfg", "timeout=60", timeout=90)
        if isinstance(ret.get(node), dict) and ret[node].get("started"):  # else its refusal says why
            how = "mfsha.restart_master"
        elif held_by(lab) == node:
            raise LabError(f"mfsha.restart_master on {node} after the metalogger copy: {ret}")
        else:  # heartbeat gave the group up meanwhile (its own start failed): the copy is on the storage already
            how = f"hb_takeover all (heartbeat gave the group up during the restart: {ret})"
    if how.startswith("hb_takeover"):
        take_over(lab, node)
    return f"{', '.join(os.path.basename(f) for f in src)} copied to {node}, {how}"


def take_over(lab, node, tries=4):
    """Operator: `hb_takeover all` on NODE until it holds the group (peer dead: heartbeat restart on NODE). A failed start leaves heartbeat's own
    `sleep 30; hb_standby` pending, which swallows a takeover asked meanwhile ("Standby in progress- new request
    ignored"), hence the retries."""
    peer = lab.peer(node)
    if not lab.host(peer).alive():
        # hb_takeover asks the peer to hand over; with the peer dead only a heartbeat restart (alone after initdead,
        # it acquires every resource) brings the group back
        lab.host(node).run(["/etc/init.d/heartbeat", "restart"], timeout=120)
        init = lab.cluster_pillar()["heartbeat"]["initdead"]
        return wait_for(f"{node} taking the group after a heartbeat restart", lambda: lab.active() == node,
                        init + 60, interval=1)
    for _ in range(tries):
        lab.host(node).run(["/usr/share/heartbeat/hb_takeover", "all"], timeout=30)
        try:
            return wait_for(f"{node} taking the group over", lambda: lab.active() == node, 40, interval=1)
        except LabError:
            continue
    raise LabError(f"hb_takeover all on {node}: the group is still not held after {tries} tries")


def reset(lab):
    """Healthy again before a fault: dead hosts restarted, both heartbeats joined; when nobody holds the group (a
    failed start released it and heartbeat v1 never retries) the operator's hb_takeover on the preferred node.
    Returns what it had to do beyond lab.heal."""
    for n in lab.state["hosts"]:
        if not lab.host(n).alive():
            lab.restart(n)
    wait_for("both heartbeats joined", lab.joined, 150, interval=1)
    done = None
    if not held_by(lab):
        take_over(lab, lab.masters[0])
        done = f"nobody held the group: hb_takeover all on {lab.masters[0]}"
    lab.heal(timeout=180)
    return done


def held_by(lab):
    """The master holding the storage, None when nobody does (after settling 20 s: heartbeat may be moving it)."""
    end = time.monotonic() + 20
    while time.monotonic() < end:
        holder = next((m for m in lab.masters if lab.node_state(m)["storage"]), None)
        if holder:
            return holder
        time.sleep(1)
    return None


def hands_off(lab, ctx):
    """The operator's first step: the loop in maintenance (undone with the fault) and its running recovery ended."""
    maintenance(lab, True)
    ctx["undo"].append(lambda: maintenance(lab, False))
    loop_idle(lab)


def operator_recovery(lab, ctx, mnt):
    """Client I/O did not come back by itself: run the documented recovery (the record's notes say so), as an
    operator would: the loop in maintenance first (and its running recovery finished), so the two never race."""
    hands_off(lab, ctx)
    holder = held_by(lab)
    done = recover_from_metalogger(lab, holder or ctx["node"], mnt)
    ctx["observed"]["operator_recovery"] = done
    who = f"held by {holder}" if holder else "nobody holds the group"
    ctx["notes"].append(f"not back after {ctx['limit']} s ({who}); operator recovery at "
                        f"{round(time.monotonic() - ctx['t0'], 1)} s: {done}")
    return wait_client(lab, ctx["t0"], ctx["limit"] + 120)


def f_changelog_hole(lab, ctx):
    """mfsmaster hangs (SIGSTOP, so nothing writes), a hole is cut into its changelog, then it dies (kill -9).
    The loop's `mfsmaster -a` meets the hole and fills it from the metalogger's changelog. If client I/O is not
    back after LIMIT s, the operator recovery from the metalogger runs on whichever node holds the storage; the
    record says so."""
    node, mnt = ctx["node"], lab.cluster_pillar()["storage"]["mountpoint"]
    lab.write_files(n=20, size=4096, subdir=f"faults/changelog-{time.time_ns()}")  # entries to cut
    ctx["undo"].append(lambda: resume_all(lab))
    signal_master(lab, node, signal.SIGSTOP)
    gone = changelog_hole(host_path(lab, node, mnt))
    ctx["notes"].append(f"changelog entries {gone[0]}..{gone[1]} removed")
    signal_master(lab, node, signal.SIGKILL)
    rto = wait_client(lab, ctx["t0"], ctx["limit"])
    if rto is None:
        rto = operator_recovery(lab, ctx, mnt)
    return rto


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


FAULTS = {
    "kill9": f_kill9,
    "sigstop": f_sigstop,
    "port_blocked": f_port_blocked,
    "host_death": f_host_death,
    "heartbeat_only_host_death": f_host_death,  # with loop_off first (PREPARE)
    "partition": f_partition,
    "heal_loses_heartbeat": f_heal_loses_heartbeat,
    "isolated_standby": f_isolated_standby,
    "isolated_active": f_isolated_active,
    "salt_master_down": f_salt_master_down,
    "disk_full": f_disk_full,
    "changelog_hole": f_changelog_hole,
    "during_failover": f_during_failover,
    "cycles": f_cycles,
}
PREPARE = {"heartbeat_only_host_death": loop_off}  # set up before the fault's clock starts
# per-fault limit (s) for client I/O to come back; salt_master_down: hold + Salt restart + beacon repeat (cooldown)
# port_blocked: the passive node's service_after (30 s) + a move; during_failover: heartbeat's failed start, its own
# retry (runner settle_s: 57 s in the lab) and the loop's takeover (a heartbeat restart: initdead 12 s)
LIMITS = {"salt_master_down": 180, "port_blocked": 90, "changelog_hole": 60, "disk_full": 60, "during_failover": 150,
          "cycles": 60}


def run_fault(lab, name, limit=None, out=print, **opts):
    """Run fault NAME once on a healed lab (the failover loop installed); returns its report record.
    opts: cycles=N (cycles), hold=S (partition, isolated_*, salt_master_down)."""
    if name not in FAULTS:
        raise LabError(f"unknown fault {name!r}: {', '.join(FAULTS)}")
    started = time.monotonic()
    resume_all(lab)
    reset_note = reset(lab)
    fresh_book(lab)
    before = write(lab, f"{name}-before")
    node = lab.active()
    ctx = {"node": node, "limit": limit or LIMITS.get(name, LIMIT_S), "undo": [], "notes": [], "extra": None,
           "observed": {},
           "cycles": 5, **opts}
    label = f"cycles_{ctx['cycles']}" if name == "cycles" else name
    watcher = Watcher(lab).start()
    try:
        if name in PREPARE:
            PREPARE[name](lab, ctx)
        ctx["t0"], wall0 = time.monotonic(), time.time()
        rto = FAULTS[name](lab, ctx)
    finally:
        errors = []
        for undo in reversed(ctx["undo"]):
            try:
                undo()
            except LabError as e:
                errors.append(str(e))
        flags = watcher.stop()
        if errors:
            raise LabError(f"{name}: undoing the fault failed: {errors}")
    state = final_state(lab)
    if name != "cycles":  # a cycles run's switchovers are its notes
        loop_idle(lab)  # the client (and final_state) can be back before the runner records what it did
        ctx["observed"]["loop"] = loop_actions(lab, wall0)
    if ctx["observed"].get("operator_recovery"):
        state += " after operator recovery"
    manifest = dict(before, **(ctx["extra"] or {}))
    if state.startswith("serving"):
        manifest.update(write(lab, f"{name}-after"))
        bad = {}
        lost = bytes_lost(lab, manifest, bad=bad)
        if bad:
            ctx["observed"]["lost_files"] = dict(sorted(bad.items())[:20])
    else:
        lost = None  # nothing can be read: unknown, not zero
    rec = {"fault": label, "rto_s": rto, "bytes_lost": lost, "two_masters": flags["two_masters"],
           "two_primaries": flags["two_primaries"], "final_state": state, "node": node,
           "two_vips": flags["two_vips"], "files_bytes": FILE_SIZE * len(manifest), "samples": watcher.samples,
           "notes": ctx["notes"] + watcher.errors[:3],
           "observed": dict(ctx["observed"], **({"reset_before": reset_note} if reset_note else {})),
           "seconds": round(time.monotonic() - started, 1)}
    out(f"faults: {label}: fault on {node}, RTO {rto} s, bytes lost {lost}, two masters {flags['two_masters']}, "
        f"two primaries {flags['two_primaries']}, two VIPs {flags['two_vips']}, {state}; {'; '.join(rec['notes'])}")
    return rec


# ---- the report: repeated runs of one fault summed up (tools/faults.py, tools/bench.py) --------------------------

def rto_summary(runs):
    """Median over the runs that came back; max only when every run came back (a run that never did has no max)."""
    ok = [r for r in runs if r is not None]
    return {"runs": runs, "median_s": round(statistics.median(ok), 2) if ok else None,
            "max_s": max(ok) if ok and len(ok) == len(runs) else None}


def combine(recs):
    """One report record for the runs of one fault (run_fault's records, in order). rto_s is the median RTO and
    rto_max_s the max, over the runs, or over the cycles of a cycles run; bytes are summed; a flag is set when any run
    set it (None, unknown, when none set it and one could not tell); final_state is the first that is not serving,
    else the last run's. Each run's own record, trimmed, stays under "rounds"."""
    runs = [t for r in recs for t in r["observed"].get("cycle_rtos", [r["rto_s"]])]
    rto = rto_summary(runs)
    lost = [r["bytes_lost"] for r in recs]

    def flag(k):
        vals = [r[k] for r in recs]
        return True if True in vals else None if None in vals else False
    bad = [r["final_state"] for r in recs if not r["final_state"].startswith("serving")]
    return {"fault": recs[0]["fault"], "rto_s": rto["median_s"], "rto_max_s": rto["max_s"], "rto_runs": runs,
            "bytes_lost": None if None in lost else sum(lost), "two_masters": flag("two_masters"),
            "two_primaries": flag("two_primaries"), "two_vips": flag("two_vips"),
            "final_state": (bad or [recs[-1]["final_state"]])[0], "runs": len(recs),
            "files_bytes": sum(r["files_bytes"] for r in recs), "samples": sum(r["samples"] for r in recs),
            "seconds": round(sum(r["seconds"] for r in recs), 1),
            "rounds": [{k: r[k] for k in ("node", "rto_s", "bytes_lost", "final_state", "notes", "observed")}
                       for r in recs]}

# the security faults live in modules of their own (this file is long enough); importing them registers them here
import faults_forged  # noqa: E402,F401
import faults_rogue  # noqa: E402,F401
import faults_security  # noqa: E402,F401
