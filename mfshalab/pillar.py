"""The lab's pillar, shaped exactly like pillar.example (`mfsha:clusters:lab:...`)."""
import os
import secrets

import yaml

from mfshalab.formula import merge

CLUSTER = "lab"
# heartbeat timing of the lab (s); tools/plot.py draws the host-death target from its deadtime
HEARTBEAT_TIMING = {"keepalive": 1, "warntime": 3, "deadtime": 6, "initdead": 12}


def lab_pillar(lab, device, secret, overrides=None):
    net = f"{lab.subnet}.0/24"
    cluster = {
        "nodes": {m: {"hostname": m, "address": lab.host(m).addr} for m in lab.masters},
        "preferred": lab.masters[0],
        "vip": {"address": lab.vip, "prefix": 24, "interface": "eth0"},
        "storage": {
            "type": "shared",
            # under the host's private /srv: the machine's / is never written
            "mountpoint": "/srv/mfsconf",
            "fstype": "ext4",
            "shared": {"device": device},
        },
        "heartbeat": {**HEARTBEAT_TIMING, "udpport": 694, "auth_key": secret, "auto_failback": False,
                      # witnesses of a takeover (mfsha-witness): a master that reaches no chunkserver serves no one
                      "ping_nodes": [lab.host(cs).addr for cs in ("mfs-cs1", "mfs-cs2")]},
        "master": {
            "config": {"MATIC_WORKERS": 1},
            "exports": [{"network": net, "path": "/", "options": "rw,alldirs,maproot=0"},
                        {"network": net, "path": ".", "options": "rw"}],
        },
        "chunkservers": {"targets": ["mfs-cs*"], "hdds": ["/srv/mfs/hdd1"], "config": {}},
        "metaloggers": {"targets": ["mfs-cs1"], "config": {}},
        "clients": {"targets": ["mfs-client"], "mountpoint": "/mnt/mfs", "options": []},
    }
    return {"mfsha": {"clusters": {CLUSTER: merge(cluster, overrides)}}}


def write_pillar(lab, device, overrides=None):
    """Write pillar/top.sls and pillar/mfsha/lab.sls under the run dir; keep the secret across rewrites."""
    root = os.path.join(lab.rundir, "pillar")
    os.makedirs(os.path.join(root, "mfsha"), exist_ok=True)
    secret = lab.state.setdefault("secret", secrets.token_hex(16))
    data = lab_pillar(lab, device, secret, overrides)
    with open(os.path.join(root, "top.sls"), "w") as f:
        yaml.safe_dump({"base": {"*": [f"mfsha.{CLUSTER}"]}}, f)
    with open(os.path.join(root, "mfsha", f"{CLUSTER}.sls"), "w") as f:
        yaml.safe_dump(data, f, default_flow_style=False, sort_keys=False)
    return data
