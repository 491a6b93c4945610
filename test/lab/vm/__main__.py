"""Entry point of the DRBD VM tier: `python test/lab/vm COMMAND` (root).

  build   build (or find) the cached image; prints its directory
  smoke   boot mfs-a and mfs-b, load DRBD, ping over the private link, tear down; prints timings
  up      boot the pair and read `NODE COMMAND...` lines on stdin (e.g. `mfs-a drbdadm status`); EOF or
          Ctrl-C tears it down (the VMs never outlive this process)
  prune   delete cached images other than the current one
Tests: `make test-vm` (pytest -m vm test/lab/vm)."""
import glob
import os
import shutil
import sys
import time

import vmimage
import vmrun


def smoke(image):
    with vmrun.Pair(image) as pair:
        t = time.monotonic()
        boots = pair.start()
        print(f"boot (parallel): {time.monotonic() - t:.1f}s {boots}")
        for vm in (pair.a, pair.b):
            print(vm.name, vm.run("modprobe drbd && head -1 /proc/drbd && uname -r && hostname").out.strip())
        print(pair.a.run("ping -c 2 -W 5 10.77.0.12 | tail -2").out.strip())


def up(image):
    with vmrun.Pair(image) as pair:
        print("booting...", file=sys.stderr)
        print(pair.start(), f"run dir {pair.rundir}", file=sys.stderr)
        for line in sys.stdin:
            name, _, cmd = line.strip().partition(" ")
            if name not in pair.vms or not cmd:
                print("usage: mfs-a|mfs-b COMMAND", file=sys.stderr)
                continue
            res = pair[name].run(cmd, timeout=600, check=False)
            sys.stdout.write(res.out)
            sys.stderr.write(res.err)
            print(f"[{name} rc={res.rc} {res.secs:.1f}s]", file=sys.stderr)


def prune(image):
    for old in glob.glob(os.path.join(vmimage.CACHE, "vm-*")):
        if os.path.basename(old).startswith(("vm-wheels-", "vm-debs", "vm-build")) or old == image:
            continue
        print("removing", old)
        shutil.rmtree(old)


def main(argv):
    cmds = {"build": None, "smoke": smoke, "up": up, "prune": prune}
    if len(argv) != 1 or argv[0] not in cmds:
        print(__doc__, file=sys.stderr)
        return 2
    t = time.monotonic()
    image = vmimage.ensure(log=lambda m: print(m, file=sys.stderr))
    print(f"image {image} ({time.monotonic() - t:.1f}s)")
    if cmds[argv[0]]:
        try:
            cmds[argv[0]](image)
        except KeyboardInterrupt:
            return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
