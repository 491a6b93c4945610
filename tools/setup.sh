#!/usr/bin/env bash
# Idempotent: Debian packages, then a venv cached outside the clone keyed by the pins, linked as .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${MFSHA_CACHE:-/var/cache/mfsha}
PKGS="moosefs-master moosefs-metalogger moosefs-chunkserver moosefs-cli moosefs-client heartbeat resource-agents
      drbd-utils iputils-arping iputils-ping iproute2 nftables psmisc procps kmod e2fsprogs util-linux fuse3 bridge-utils
      qemu-system-x86 qemu-utils debootstrap cpio zstd"
missing=$(for p in $PKGS; do dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || echo "$p"; done)
if [ -n "$missing" ]; then
  echo "setup: installing Debian packages:" $missing
  export DEBIAN_FRONTEND=noninteractive
  timeout 600 apt-get update -qq
  # heartbeat's recommends pull ~100 packages (pacemaker); policy-rc.d keeps daemons stopped
  timeout 1200 apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
key=$(cat requirements.txt constraints.txt | sha256sum | cut -c1-12)
venv="$CACHE/venv-$key"
if [ ! -e "$venv/.complete" ]; then
  echo "setup: building $venv (salt sdists take a few minutes cold)"
  # venv scripts embed their own path, so build in place and mark completion last
  rm -rf "$venv"; mkdir -p "$CACHE"
  python3 -m venv "$venv"
  timeout 1500 "$venv/bin/pip" install -q --disable-pip-version-check -r requirements.txt -c constraints.txt 2>&1 \
    | { grep -v "^WARNING: Location" || true; }
  "$venv/bin/python" -c 'import salt.version, saltfactories, jinja2, yaml, requests, matplotlib'
  touch "$venv/.complete"
fi
ln -sfn "$venv" .venv
.venv/bin/salt-call --version >/dev/null
echo "setup: ok ($venv)"
