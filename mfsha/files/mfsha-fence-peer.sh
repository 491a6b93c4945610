#!/bin/sh
# Managed by Salt (mfsha). DRBD fence-peer handler (`fencing resource-only`). DRBD runs it when a node would be
# Primary without knowing its peer's disk: a disconnected Secondary being promoted, or a Primary that lost the
# peer. There is no second path to the peer to outdate it, so the decision is mfsha-witness's rule:
#   a ping node answers (or none is configured) -> exit 5, "peer unreachable": DRBD takes the peer as dead and,
#       with an UpToDate disk, goes on;
#   nothing answers on a Secondary -> exit 6, "peer is active": DRBD outdates this node's disk and refuses to
#       promote it (it resyncs from the peer when the link is back; only `primary --force` overrides it);
#   nothing answers on a Primary -> exit 5: a Primary cannot outdate itself; it stays as it is.
# Never calls drbdadm/drbdsetup: DRBD waits for this handler while it holds its configuration lock.
res=${DRBD_RESOURCE:-?}
minor=${DRBD_MINOR:-[0-9]*}   # a regex: DRBD 9 runs fence-peer per connection, maybe without a minor
role=$(sed -n "s/^ *$minor: .* ro:\([A-Za-z]*\)\/.*/\1/p" /proc/drbd 2>/dev/null)
# DRBD 9 lists no roles there. A node with the device mounted is the serving Primary (heartbeat mounts it right
# after drbddisk promotes it); the mount table, like DRBD's status file, is read without any DRBD lock.
[ -n "$role" ] || ! grep -q "^/dev/drbd$minor " /proc/mounts 2>/dev/null || role=Primary
if [ ! -x /usr/local/sbin/mfsha-witness ]; then
	why="mfsha-witness is not installed"
elif why=$(/usr/local/sbin/mfsha-witness); then
	logger -t mfsha-fence-peer "$res: peer ${DRBD_PEER_ADDRESS:-?} unreachable and $why: the peer is taken as dead"
	exit 5
fi
if [ "$role" = Primary ]; then
	logger -t mfsha-fence-peer "$res: this Primary lost its peer and $why: it may be the isolated node"
	exit 5
fi
logger -t mfsha-fence-peer "$res: refusing to promote: peer ${DRBD_PEER_ADDRESS:-?} unreachable and $why"
exit 6
