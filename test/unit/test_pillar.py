"""Pillar validation (_utils/mfsha_pillar.py): every bad-pillar class gets one message naming the key path."""
import copy
import fnmatch
import itertools
import pathlib
import random
import re
import sys

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "_utils"))
import mfsha_glob  # noqa: E402
import mfsha_pillar  # noqa: E402

DEFAULTS = yaml.safe_load((REPO / "mfsha/defaults.yaml").read_text())
OSMAP = yaml.safe_load((REPO / "mfsha/osfamilymap.yaml").read_text())["Debian"]
EXAMPLE = yaml.safe_load((REPO / "pillar.example").read_text())["mfsha"]
P = "mfsha:clusters:paris"


def example(**changes):
    """pillar.example's `mfsha` with `changes` applied: {"a:b:c": value}; value DELETE removes the key."""
    pillar = copy.deepcopy(EXAMPLE)
    for path, value in changes.items():
        *parents, last = path.split(":")
        node = pillar["clusters"]
        for key in parents:
            node = node[key]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    return pillar


DELETE = object()


def error_of(pillar):
    with pytest.raises(mfsha_pillar.PillarError) as err:
        mfsha_pillar.validate(pillar, DEFAULTS)
    return str(err.value)


def test_example_is_valid_and_complete():
    clusters = mfsha_pillar.validate(EXAMPLE, DEFAULTS)
    assert sorted(clusters) == ["berlin", "paris"]
    paris = clusters["paris"]
    assert [n["id"] for n in paris["nodes"]] == ["paris-mfs1", "paris-mfs2"]
    assert paris["storage"]["device"] == "/dev/drbd0" and paris["storage"]["drbd"]["minor"] == 0
    assert paris["master"]["config"]["CHANGELOG_SAVE_MODE"] == 2  # the safe default survives the merge
    assert paris["master"]["config"]["MATIC_WORKERS"] == 1       # and the pillar's own key is added
    berlin = clusters["berlin"]
    assert berlin["preferred"] == "berlin-mfs1" and berlin["nodes"][0]["hostname"] == "berlin-mfs1"
    assert berlin["storage"]["device"] == "/dev/disk/by-id/wwn-0x600508b1001c6d4b"


def test_settings_pick_the_minions_cluster_and_roles():
    s = mfsha_pillar.settings(EXAMPLE, DEFAULTS, OSMAP, "berlin-mfs2")
    assert (s["cluster"], s["roles"], s["me"]["address"], s["peer"]["id"]) == \
        ("berlin", ["master"], "192.168.7.22", "berlin-mfs1")
    assert mfsha_pillar.settings(EXAMPLE, DEFAULTS, OSMAP, "berlin-cs1")["roles"] == ["chunkserver", "metalogger"]
    assert mfsha_pillar.settings(EXAMPLE, DEFAULTS, OSMAP, "nobody")["roles"] == []


@pytest.mark.parametrize("changes,message", [
    ({"paris:nodes:paris-mfs3": {"address": "10.20.0.13"}},
     f"invalid pillar {P}:nodes: ['paris-mfs1', 'paris-mfs2', 'paris-mfs3'] must name exactly two master nodes"),
    ({"paris:nodes:paris-mfs2": DELETE, "paris:storage:drbd:disks:paris-mfs2": DELETE},
     f"invalid pillar {P}:nodes: ['paris-mfs1'] must name exactly two master nodes"),
    ({"paris:preferred": "paris-mfs9"},
     f"invalid pillar {P}:preferred: 'paris-mfs9' is not one of the nodes (paris-mfs1, paris-mfs2)"),
    ({"paris:vip:address": "10.20.0.300"}, f"invalid pillar {P}:vip:address: '10.20.0.300' is not an IPv4 address"),
    ({"paris:vip:address": "10.21.0.10"},
     f"invalid pillar {P}:vip:address: '10.21.0.10/24' is outside the subnet of node paris-mfs1 (10.20.0.11)"),
    ({"paris:nodes:paris-mfs2:address": "10.20.0.11"},
     f"invalid pillar {P}:nodes:paris-mfs2:address: '10.20.0.11' duplicates the other node's address"),
    ({"paris:vip:address": "10.20.0.12"},
     f"invalid pillar {P}:vip:address: '10.20.0.12' duplicates the address of node paris-mfs2"),
    ({"paris:storage:type": "nfs"}, f"invalid pillar {P}:storage:type: 'nfs' must be drbd or shared"),
    ({"paris:storage:reserve_mb": "64M"},
     f"invalid pillar {P}:storage:reserve_mb: '64M' must be an integer from 0 to 1048576"),
    ({"paris:storage:drbd:secret": DELETE},
     f"invalid pillar {P}:storage:drbd:secret: '' is missing: set a random secret, e.g. `openssl rand -hex 16`"),
    ({"paris:heartbeat:auth_key": "CHANGE-ME-please"},
     f"invalid pillar {P}:heartbeat:auth_key: <hidden: 16 characters> is a placeholder or shorter than 12 characters"),
    ({"paris:heartbeat:auth_key": "short"},
     f"invalid pillar {P}:heartbeat:auth_key: <hidden: 5 characters> is a placeholder or shorter than 12 characters"),
    ({"paris:vip:interface": "eth0; rm -rf /"},
     f"invalid pillar {P}:vip:interface: 'eth0; rm -rf /' must be a plain value (no spaces, quotes, newlines or "
     "shell metacharacters)"),
    ({"paris:master:config:MATIC_WORKERS": "1\nDATA_PATH = /tmp"},
     f"invalid pillar {P}:master:config:MATIC_WORKERS: '1\\nDATA_PATH = /tmp' must be a plain value (no spaces, "
     "quotes, newlines or shell metacharacters)"),
    ({"paris:storage:drbd:disks:paris-mfs1": "/dev/vdb$(reboot)"},
     f"invalid pillar {P}:storage:drbd:disks:paris-mfs1: '/dev/vdb$(reboot)' must be an absolute path without "
     "spaces or shell metacharacters"),
    ({"paris:clients:options": ["allow_other`id`"]},
     f"invalid pillar {P}:clients:options:0: 'allow_other`id`' must be a plain value (no spaces, quotes, newlines or "
     "shell metacharacters)"),
    ({"paris:master:exports": [{"network": "*", "path": "/", "options": "rw\n* / rw"}]},
     f"invalid pillar {P}:master:exports:0:options: 'rw\\n* / rw' must be a plain value (no spaces, quotes, "
     "newlines or shell metacharacters)"),
    ({"paris:heartbeat:deadtim": 10},
     f"invalid pillar {P}:heartbeat:deadtim: <value not shown> is not a known key (known: auth_key, auto_failback, deadtime, "
     "initdead, join_timeout, keepalive, ping_nodes, udpport, warntime)"),
    ({"paris:master:config:DATA_PATH": "/var/lib/mfs"},
     f"invalid pillar {P}:master:config:DATA_PATH: '/var/lib/mfs' is set by the formula from storage:mountpoint"),
    ({"paris:heartbeat:initdead": 8}, f"invalid pillar {P}:heartbeat:initdead: 8 must be at least twice deadtime"),
    ({"paris:storage:drbd:protocol": "D"}, f"invalid pillar {P}:storage:drbd:protocol: 'D' must be A, B or C"),
    ({"paris:storage:drbd:disks": {"paris-mfs1": "/dev/vdb"}},
     f"invalid pillar {P}:storage:drbd:disks: {{'paris-mfs1': '/dev/vdb'}} must give one backing disk for each of "
     "the two nodes"),
    ({"paris:storage:drbd:after_sb_2pri": "discard-secondary"},
     f"invalid pillar {P}:storage:drbd:after_sb_2pri: 'discard-secondary' must be one of call-pri-lost-after-sb, "
     "disconnect, violently-as0p"),
    ({"paris:heartbeat:ping_nodes": ["10.20.0.1", "10.20.0.12"]},
     f"invalid pillar {P}:heartbeat:ping_nodes:1: '10.20.0.12' is the address of node paris-mfs2: a ping node must "
     "be a third host"),
    ({"paris:heartbeat:ping_nodes": ["10.20.0.10"]},
     f"invalid pillar {P}:heartbeat:ping_nodes:0: '10.20.0.10' is the VIP: a ping node must be a third host"),
    ({"paris:heartbeat:ping_nodes": ["10.20.0.1"], "paris:heartbeat:deadtime": 4, "paris:heartbeat:initdead": 8},
     f"invalid pillar {P}:heartbeat:deadtime: 4 must be at least 5 with ping_nodes: a cut-off holder needs ~3 s to "
     "let go before its peer takes over"),
    ({"paris:heartbeat:ping_nodes": ["gw; reboot"]},
     f"invalid pillar {P}:heartbeat:ping_nodes:0: 'gw; reboot' is not an IPv4 address"),
], ids=["three-nodes", "one-node", "unknown-preferred", "vip-not-ip", "vip-outside-subnet", "duplicate-node-address",
        "vip-duplicates-node", "unknown-storage-type", "reserve-not-int", "missing-secret", "placeholder-secret", "short-secret",
        "shell-metachar-interface", "newline-in-config", "shell-metachar-disk", "backtick-client-option",
        "newline-in-exports", "unknown-key", "forced-data-path", "initdead-too-short", "bad-protocol",
        "missing-disk", "unsafe-after-sb", "ping-node-is-a-node", "ping-node-is-the-vip", "ping-node-deadtime-short", "ping-node-not-ip"])
def test_bad_pillar_is_rejected_with_its_key_path(changes, message):
    assert error_of(example(**changes)) == message


def test_a_node_cannot_serve_two_clusters():
    pillar = example()
    pillar["clusters"]["berlin"]["nodes"]["paris-mfs1"] = pillar["clusters"]["berlin"]["nodes"].pop("berlin-mfs1")
    pillar["clusters"]["berlin"]["nodes"]["paris-mfs1"]["address"] = "192.168.7.29"
    assert error_of(pillar) == "invalid pillar mfsha:clusters:paris:nodes:paris-mfs1: 'paris-mfs1' is already used " \
                               "by cluster berlin"


def test_no_clusters_at_all():
    assert error_of({}) == "invalid pillar mfsha:clusters: None must map at least one cluster name to its settings"


def test_secret_is_never_echoed():
    msg = error_of(example(**{"paris:storage:drbd:secret": "password-9f8e7d6c5b"}))
    assert "passw" not in msg and "9f8e" not in msg and "storage:drbd:secret: <hidden: 19 characters>" in msg


@pytest.mark.parametrize("path", ["paris:storage:drbd:secrte", "paris:heartbeat:authkey", "paris:heartbeat:auth_kye",
                                  "paris:vip:password", "paris:heartbeat:deadtim"])
def test_the_value_of_an_unknown_key_is_never_echoed(path):
    """A typo'd secret key is not known to be a secret: no unknown key's value is shown at all."""
    msg = error_of(example(**{path: "Zq8vN3xKp2LmT7wR-typo"}))
    assert "Zq8v" not in msg and "typo" not in msg and "is not a known key" in msg, msg


@pytest.mark.parametrize("changes,message", [
    ({"paris:nodes:paris-mfs2": ["10.20.0.12"]},
     f"invalid pillar {P}:nodes:paris-mfs2: ['10.20.0.12'] must be a mapping with address (and hostname)"),
    ({"paris:nodes:paris-mfs2": "10.20.0.12"},
     f"invalid pillar {P}:nodes:paris-mfs2: '10.20.0.12' must be a mapping with address (and hostname)"),
    ({"paris:vip:address": "fd00::10"}, f"invalid pillar {P}:vip:address: 'fd00::10' is IPv6: mfsha supports IPv4 "
                                        "addresses only"),
    ({"paris:nodes:paris-mfs1:address": "fd00::11"},
     f"invalid pillar {P}:nodes:paris-mfs1:address: 'fd00::11' is IPv6: mfsha supports IPv4 addresses only"),
    ({"paris:vip:address": 168427530}, f"invalid pillar {P}:vip:address: 168427530 is not an IPv4 address"),
    ({"paris:master:config:MATOCS_LISTEN_PORT": "9420x"},
     f"invalid pillar {P}:master:config:MATOCS_LISTEN_PORT: '9420x' must be an integer from 1 to 65535"),
    ({"paris:master:config:MATOCL_LISTEN_PORT": 70000},
     f"invalid pillar {P}:master:config:MATOCL_LISTEN_PORT: 70000 must be an integer from 1 to 65535"),
    ({"paris:chunkservers:config:MASTER_PORT": "x"},
     f"invalid pillar {P}:chunkservers:config:MASTER_PORT: 'x' must be an integer from 1 to 65535"),
], ids=["node-is-a-list", "node-is-a-string", "ipv6-vip", "ipv6-node", "vip-not-a-string", "port-not-int",
        "port-out-of-range", "client-port-not-int"])
def test_malformed_values_get_a_clear_error(changes, message):
    assert error_of(example(**changes)) == message



# ---- a minion feeds one cluster only (the metalogger fill copies what the targets' minions return) ---------------

@pytest.mark.parametrize("a, b, both", [
    ("paris-cs*", "paris-cs1", "paris-cs1"), ("*-cs1", "berlin-cs*", "berlin-cs1"), ("a*", "*b", "ab"),
    ("mfs-[a-c]?", "mfs-b[0-9]", "mfs-b0"), ("x[]]y", "x?y", "x]y"), ("[ab", "?ab", "[ab"),
    ("paris-cs*", "berlin-cs*", None), ("mfs-[a-c]1", "mfs-[d-f]1", None), ("a?", "a", None),
    ("[z-a]*", "*", None), ("cs1", "cs10", None),
])
def test_two_globs_overlap_exactly_when_a_string_matches_both(a, b, both):
    got = mfsha_glob.example(a, b)
    assert (got is None) == (both is None) and mfsha_glob.overlap(a, b) == (both is not None)
    if got is not None:
        assert fnmatch.fnmatchcase(got, a) and fnmatch.fnmatchcase(got, b)


def test_glob_overlap_agrees_with_fnmatch_on_random_globs():
    """Random globs over the pillar's glob characters: a found example matches both (fnmatch itself), and when
    none is found no string up to 5 characters matches both."""
    rnd = random.Random(7)
    strings = ["".join(p) for n in range(6) for p in itertools.product("ab-[]c", repeat=n)]
    for _ in range(400):
        a, b = ("".join(rnd.choice("ab-*?[]") for _ in range(rnd.randint(0, 6))) for _ in range(2))
        got = mfsha_glob.example(a, b)
        if got is None:
            ra, rb = (re.compile(fnmatch.translate(g)) for g in (a, b))
            assert not any(ra.match(s) and rb.match(s) for s in strings), (a, b)
        else:
            assert fnmatch.fnmatchcase(got, a) and fnmatch.fnmatchcase(got, b), (a, b, got)


@pytest.mark.parametrize("changes, message", [
    ({"paris:metaloggers:targets": ["*-cs1"]},
     "invalid pillar mfsha:clusters:berlin:chunkservers:targets:0: 'berlin-cs*' can match a minion that metalogger "
     "target '*-cs1' of cluster paris matches too (e.g. 'berlin-cs1'): a minion serves one cluster only"),
    ({"berlin:clients:targets": ["*web[0-9]"]},
     "invalid pillar mfsha:clusters:berlin:clients:targets:0: '*web[0-9]' can match a minion that chunkserver "
     "target 'paris-cs*' of cluster paris matches too (e.g. 'paris-csweb0'): a minion serves one cluster only"),
    ({"paris:clients:targets": ["paris-*"]},
     f"invalid pillar {P}:clients:targets:0: 'paris-*' matches paris-mfs1, a master node of cluster paris"),
    ({"paris:metaloggers:targets": ["paris-cs1", "berlin-mfs?"]},
     f"invalid pillar {P}:metaloggers:targets:1: 'berlin-mfs?' matches berlin-mfs1, a master node of cluster berlin"),
    ({"paris:metaloggers:targets": ["or"]},
     f"invalid pillar {P}:metaloggers:targets:0: 'or' is a compound target operator, not a minion id or glob"),
    ({"paris:metaloggers:targets": ["G@os:Debian"]},
     f"invalid pillar {P}:metaloggers:targets:0: 'G@os:Debian' must be a minion id or glob"),
], ids=["metalogger-glob-overlaps-other-cluster", "client-glob-overlaps-other-cluster", "target-matches-own-master",
        "target-matches-other-master", "compound-operator", "compound-target"])
def test_a_target_that_can_reach_another_clusters_minion_is_refused(changes, message):
    assert error_of(example(**changes)) == message


def test_roles_may_overlap_within_one_cluster():
    pillar = example(**{"paris:metaloggers:targets": ["paris-cs1", "paris-web1"]})
    assert mfsha_pillar.validate(pillar, DEFAULTS)["paris"]["metaloggers"]["targets"] == ["paris-cs1", "paris-web1"]
