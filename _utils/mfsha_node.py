"""node_state's keyword arguments from a cluster's validated settings, pure Python (no Salt, no I/O): the one place
that says which settings describe a master node's look. The runner (both nodes in one call), the execution module
(a node's own settings: the CLI, status) and monitoring.sls (the beacon's config, which the beacon hands to
node_state as it is: a beacon cannot import _utils) all build them here."""

# node_state's arguments that describe the node, in its signature's order (the beacon's config carries these keys)
ARGS = ("cluster", "vip", "interface", "port", "mountpoint", "storage", "resource", "peer")


def node_args(cluster, node=None):
    """node_state's arguments for master node NODE of a validated cluster (mfsha_pillar.validate, or a minion's
    settings); without NODE for both nodes at once: `peer` is then {node id: its peer's heartbeat name} and each
    node picks its own. A NODE that is not a master node of the cluster raises ValueError naming it."""
    nodes = cluster["nodes"]
    peers = {n["id"]: next(p["hostname"] for p in nodes if p["id"] != n["id"]) for n in nodes}
    if node is not None and node not in peers:
        raise ValueError(f"node {node!r} is not a master node of cluster {cluster['name']} ({', '.join(peers)})")
    st = cluster["storage"]
    return {"cluster": cluster["name"], "vip": cluster["vip"]["address"], "interface": cluster["vip"]["interface"],
            "port": cluster["master"]["config"]["MATOCL_LISTEN_PORT"], "mountpoint": st["mountpoint"],
            "storage": st["type"], "resource": st["drbd"]["resource"], "peer": peers if node is None else peers[node]}


def master_cfg(cluster):
    """The master's mfsmaster.cfg: on the storage, beside DATA_PATH (the mountpoint; mfsha_pillar)."""
    return f"{cluster['storage']['mountpoint']}/mfsmaster.cfg"
