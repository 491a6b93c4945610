#!/usr/bin/env python3
"""`make demo`: deploy mfsha with a real Salt master onto the network-namespace lab, write files through the
client, kill the active master host, and show the failover as it happens. Exits non-zero if anything did not hold.
The lab is always torn down at the end (also after a failure or Ctrl-C)."""
import os
import signal
import sys
import time

# run as tools/demo.py: the repository root, for the lab package mfshalab
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mfshalab.lab import Lab, raise_interrupt  # noqa: E402

FILES, SIZE = 50, 256 * 1024


def say(text=""):
    print(text, flush=True)


def step(n, text):
    say(f"\n==> {n}. {text}")


class Checks:
    def __init__(self):
        self.results = []

    def __call__(self, ok, what):
        self.results.append((bool(ok), what))
        say(f"    {'ok  ' if ok else 'FAIL'} {what}")
        return ok


def demo(lab, check):
    step(1, "Start 6 hosts (network namespaces on a private bridge) and a shared disk")
    lab.timed("create", lab.create)
    for n, h in lab.state["hosts"].items():
        say(f"    {n:<11} {h['addr']:<11} {'Salt master' if n == lab.salt_host else 'salt-minion'}")
    say(f"    shared disk {lab.device} (blank: the formula makes the file system)")

    step(2, "Start the Salt master and the minions, sync the formula's modules")
    lab.timed("salt_start", lab.start_salt)
    lab.write_pillar()

    step(3, "Deploy: salt 'mfs*' state.apply mfsha")
    lab.timed("deploy", lab.deploy, sync=False)
    active = lab.timed("cluster_serving", lab.wait_serving)
    check(active, f"cluster serves on the VIP {lab.vip}; active master: {active}")
    check(lab.client_mounted() == [lab.mountpoint], f"client has MooseFS mounted on {lab.mountpoint}")

    step(4, f"Write {FILES} files of {SIZE // 1024} KiB with random content through the client (fsync'ed)")
    t = time.monotonic()
    manifest = lab.write_files(n=FILES, size=SIZE, subdir="demo")
    say(f"    {len(manifest)} files, {len(manifest) * SIZE // 1024} KiB in {time.monotonic() - t:.1f} s; "
        f"sha256 of {next(iter(manifest))}: {next(iter(manifest.values()))[:16]}...")
    mount, version = lab.mount_id(), lab.metadata_version()
    say(f"    mfsmount pid {mount[0]}; metadata version {version}")

    step(5, f"Crash the active master host {active}: cable pulled, kill -9 of every process on it")
    res = lab.fail_over("crash", timeout=120)

    step(6, "Check: nothing lost, nothing doubled")
    check(res["new_active"] and res["new_active"] != active, f"{res['new_active']} took over from {active}")
    check(not res["two_masters"] and not res["two_storage"] and not res["two_vip"],
          "never two mfsmaster processes, storage mounts or VIPs at once")
    bad = lab.verify_files(manifest, timeout=120)
    check(not bad, f"all {len(manifest)} checksums match after the failover" + (f" (bad: {bad})" if bad else ""))
    later = lab.write_files(n=FILES // 5, size=SIZE, subdir="after-failover")
    bad = lab.verify_files({**manifest, **later}, timeout=120)
    check(not bad, f"{len(later)} more files written through the new master; all {len(manifest) + len(later)} "
                   "checksums match" + (f" (bad: {bad})" if bad else ""))
    check(lab.mount_id() == mount, "the client never remounted (same mfsmount process)")
    after = lab.metadata_version()
    check(after >= version, f"metadata version {version} -> {after}")
    return res


def summary(lab, res, check):
    say("\n==> Timings")
    for k, label in (("create", "hosts up"), ("salt_start", "Salt master + 5 minions + sync_all"),
                     ("deploy", "state.apply mfsha"), ("cluster_serving", "cluster serving after deploy")):
        if k in lab.timings:
            say(f"    {label:<38} {lab.timings[k]:6.1f} s")
    if res:
        for k, label in (("detected", "failure detected by heartbeat"), ("vip_moved", "VIP on the other node"),
                         ("serving", "mfsmaster serving on the VIP"), ("client_resumed", "client I/O resumed")):
            v = res.get(k)
            say(f"    {label:<38} {v:6.1f} s after the crash" if v is not None else f"    {label:<38} never")
    failed = [w for ok, w in check.results if not ok]
    say("\n" + ("DEMO PASSED" if not failed and res else "DEMO FAILED: " + "; ".join(failed or ["see above"])))
    return 0 if not failed and res else 1


def main():
    if os.geteuid() != 0:
        sys.exit("demo: needs root (network namespaces, loop devices)")
    signal.signal(signal.SIGTERM, raise_interrupt)
    lab = Lab(os.environ.get("MFSHA_DEMO_LAB", "mfsdemo"), log=lambda m: say("    " + m.replace("lab: ", "")))
    if lab.state.get("created"):
        say(f"demo: removing a lab left by an interrupted run ({lab.rundir})")
        lab.down()
    check, res, rc = Checks(), None, 1
    try:
        res = demo(lab, check)
    except KeyboardInterrupt:
        say("\ndemo: interrupted")
    except Exception as e:  # shown plainly, then the summary says FAILED
        say(f"\ndemo: ERROR {type(e).__name__}: {e}\n    logs: {lab.rundir}/<host>/ (salt/minion.log, ov/var/log)")
    finally:
        say("\n==> Tear down: every process, namespace and loop device of the lab")
        try:
            lab.down()
            say("    done")
        except Exception as e:
            say(f"    FAIL teardown: {e}")
            check(False, "teardown")
    rc = summary(lab, res, check)
    sys.exit(rc)


if __name__ == "__main__":
    main()
