#!/bin/bash
# Builds the DRBD VM image into OUT (kernel, initrd, root.raw); run by vmimage.py, which picks OUT by a hash of the inputs.
# usage: build.sh OUT KERNEL_PKG WHEELHOUSE SALT_REQ    (root; runs itself again in a private mount namespace)
set -euo pipefail
out=$1 kpkg=$2 wheels=$3 saltreq=$4
here=$(dirname "$(readlink -f "$0")")
if [ -z "${MFSHA_VM_NS:-}" ]; then
  # chroot mounts (proc, dev, apt cache) vanish with the namespace, even on failure
  exec env MFSHA_VM_NS=1 unshare --mount --propagation private "$0" "$@"
fi
t0=$(date +%s)
step() { echo "build: +$(( $(date +%s) - t0 ))s $*" >&2; }
debs=${MFSHA_CACHE:-/var/cache/mfsha}/vm-debs
mirror=$(sed -n 's/^URIs: *//p; s/^deb \(http[^ ]*debian\/*\) bookworm .*/\1/p' /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list 2>/dev/null | grep -m1 -v security || true)
mirror=${mirror:-http://deb.debian.org/debian}
work=$out.tmp
rm -rf "$work"; mkdir -p "$work" "$debs"
cd "$work"

step "kernel $kpkg"
apt-get download -q -o APT::Sandbox::User=root "$kpkg" busybox-static >/dev/null
dpkg -x "$kpkg"_*.deb k
dpkg -x busybox-static_*.deb bb
kver=$(ls k/lib/modules)
mods=k/lib/modules/$kver/kernel
# keep what a virtio guest with DRBD, ext4, 9p and netfilter needs; the rest is 300 MB of hardware drivers
rm -rf "$mods/sound"
find "$mods/drivers" -mindepth 1 -maxdepth 1 ! -name block ! -name virtio ! -name char ! -name net ! -name md -exec rm -rf {} +
rm -rf "$mods/drivers/net/wireless" "$mods/drivers/net/ethernet" "$mods/drivers/net/can" "$mods/drivers/net/usb"
depmod -b k "$kver"

step "debootstrap ($mirror)"
debootstrap --variant=minbase --cache-dir="$debs" bookworm root "$mirror" >debootstrap.log 2>&1 \
  || { tail -30 debootstrap.log >&2; exit 1; }
printf '#!/bin/sh\nexit 101\n' > root/usr/sbin/policy-rc.d; chmod +x root/usr/sbin/policy-rc.d
cp /etc/apt/sources.list.d/debian.sources root/etc/apt/sources.list.d/ 2>/dev/null && rm -f root/etc/apt/sources.list || true
mount -t proc proc root/proc
mount --bind /dev root/dev
mount --bind "$debs" root/var/cache/apt/archives
step "apt-get install"
pkgs=$(grep -v '^#' "$here/packages.txt" | xargs)
chroot root apt-get update -q >apt.log 2>&1 || { tail -30 apt.log >&2; exit 1; }
chroot root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $pkgs >>apt.log 2>&1 \
  || { tail -30 apt.log >&2; exit 1; }

step "salt venv from $wheels"
mkdir root/wheels; mount --bind "$wheels" root/wheels
chroot root python3 -m venv /opt/salt
chroot root env -u PIP_FIND_LINKS /opt/salt/bin/pip install -q --disable-pip-version-check --no-index --find-links /wheels "$saltreq"
chroot root /opt/salt/bin/salt-call --version
ln -s /opt/salt/bin/salt-call root/usr/local/bin/salt-call
umount root/wheels root/var/cache/apt/archives root/dev root/proc; rmdir root/wheels

step "guest files"
cp -a "k/lib/modules" root/lib/
cp bb/bin/busybox root/usr/local/bin/busybox
# PID 1 is mfsha-init, not sysvinit: answer runlevel 2 like a booted Debian (Salt's debian_service asks `runlevel`)
printf '#!/bin/sh\necho "N 2"\n' > root/usr/local/sbin/runlevel; chmod 755 root/usr/local/sbin/runlevel
cp "$here/guest/mfsha-init" root/sbin/mfsha-init; chmod 755 root/sbin/mfsha-init
mkdir -p root/etc/salt root/srv/salt root/srv/pillar root/run/lock
cp "$here/guest/minion" root/etc/salt/minion
cat "$here/guest/hosts" > root/etc/hosts
chroot root apt-get clean; rm -rf root/var/lib/apt/lists/* root/usr/share/doc root/usr/share/man root/usr/share/locale

step "initrd"
mkdir -p ird/bin ird/mods
cp bb/bin/busybox ird/bin/; ln -s busybox ird/bin/sh
for m in $(modprobe -d k -S "$kver" -D -a virtio_pci virtio_blk ext4 | awk '{print $2}' | awk '!seen[$0]++'); do
  cp "$m" ird/mods/; echo "${m##*/}" >> ird/mods/order
done
cp "$here/guest/initrd-init" ird/init; chmod 755 ird/init
(cd ird && find . | cpio -o -H newc --quiet | gzip -1) > initrd.gz
cp "k/boot/vmlinuz-$kver" vmlinuz

step "root.raw"
size=$(( $(du -sm root | cut -f1) * 3 / 2 + 1024 ))
mkfs.ext4 -q -F -L mfsroot -d root root.raw "${size}M"
echo "$kver" > kernel-version
mkdir -p "$out.new"; mv vmlinuz initrd.gz root.raw kernel-version "$out.new/"
cd /; rm -rf "$work" "$out"; mv "$out.new" "$out"; chmod 444 "$out/root.raw"
step "done $out ($(du -sh "$out" | cut -f1) on disk)"
