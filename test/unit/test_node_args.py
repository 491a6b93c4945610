"""node_state's arguments are built in one place (_utils/mfsha_node.py): the runner's look at both nodes, the
module's own (CLI, status) and the beacon's config (monitoring.sls writes mfsha.node_args; the beacon hands them on)."""
import inspect

import pytest
import yaml

import mfsha_node
import mfsha_pillar
from unit_support import REPO, load_salt_module

PILLAR = yaml.safe_load((REPO / "pillar.example").read_text())["mfsha"]
DEFAULTS = yaml.safe_load((REPO / "mfsha" / "defaults.yaml").read_text())
OSMAP = yaml.safe_load((REPO / "mfsha" / "osfamilymap.yaml").read_text())["Debian"]


def test_one_node_or_both_at_once():
    paris = mfsha_pillar.validate(PILLAR, DEFAULTS)["paris"]
    assert mfsha_node.node_args(paris, "paris-mfs1") == {
        "cluster": "paris", "vip": "10.20.0.10", "interface": "eth0", "port": 9421, "mountpoint": "/mfsconf",
        "storage": "drbd", "resource": "r0", "peer": "paris-mfs2"}
    both = mfsha_node.node_args(paris)
    assert both["peer"] == {"paris-mfs1": "paris-mfs2", "paris-mfs2": "paris-mfs1"}
    assert dict(both, peer="paris-mfs1") == mfsha_node.node_args(paris, "paris-mfs2")
    with pytest.raises(ValueError, match="node 'paris-web1' is not a master node of cluster paris"):
        mfsha_node.node_args(paris, "paris-web1")


def test_the_module_builds_them_from_the_minions_settings():
    mod = load_salt_module("_modules/mfsha.py")
    mod.__grains__ = {"id": "berlin-mfs2"}
    cfg = mfsha_pillar.settings(PILLAR, DEFAULTS, OSMAP, "berlin-mfs2")
    want = mfsha_node.node_args(mfsha_pillar.validate(PILLAR, DEFAULTS)["berlin"], "berlin-mfs2")
    assert mod.node_args(cfg) == want and (want["peer"], want["interface"]) == ("berlin-mfs1", "bond0")
    assert mod._check_args(cfg) == dict(want, peer_address=cfg["peer"]["address"])


def test_they_are_node_states_arguments_and_the_beacons():
    mod = load_salt_module("_modules/mfsha.py")
    assert tuple(inspect.signature(mod.node_state).parameters)[:len(mfsha_node.ARGS)] == mfsha_node.ARGS
    assert load_salt_module("_beacons/mfsha.py").NODE_ARGS == mfsha_node.ARGS  # the beacon cannot import _utils
