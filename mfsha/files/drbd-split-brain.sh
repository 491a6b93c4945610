#!/bin/sh
# Managed by Salt (mfsha). DRBD split-brain handler: leaves durable evidence for drbd.split_brain and the mfsha
# beacon (the kernel log rotates), then logs. DRBD exports DRBD_RESOURCE to handlers.
mkdir -p /var/lib/mfsha
date +%s > "/var/lib/mfsha/split-brain-${DRBD_RESOURCE:-unknown}"
logger -t mfsha "DRBD split brain on resource ${DRBD_RESOURCE:-unknown}: see README, Split brain"
exit 0
