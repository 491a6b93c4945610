"""The `mfsha:tofs` pillar (_utils/mfsha_tofs.py through mfsha_pillar): where a site's own templates are looked for.
A bad value stops the render with one message naming its key path, like every other pillar key."""
import copy
import pathlib
import sys

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "_utils"))
import mfsha_pillar  # noqa: E402
import mfsha_tofs  # noqa: E402

DEFAULTS = yaml.safe_load((REPO / "mfsha/defaults.yaml").read_text())
OSMAP = yaml.safe_load((REPO / "mfsha/osfamilymap.yaml").read_text())["Debian"]
EXAMPLE = yaml.safe_load((REPO / "pillar.example").read_text())["mfsha"]


def with_tofs(tofs):
    pillar = copy.deepcopy(EXAMPLE)
    pillar["tofs"] = tofs
    return pillar


def error_of(pillar):
    with pytest.raises(mfsha_pillar.PillarError) as err:
        mfsha_pillar.validate(pillar, DEFAULTS)
    return str(err.value)


def test_defaults_when_the_pillar_has_no_tofs():
    pillar = copy.deepcopy(EXAMPLE)
    pillar.pop("tofs", None)
    for minion in ("paris-mfs1", "paris-cs1", "nobody"):
        tofs = mfsha_pillar.settings(pillar, DEFAULTS, OSMAP, minion)["tofs"]
        assert tofs == {"files_switch": ["id", "cluster", "os_family"], "source_files": {}}, minion


def test_the_pillars_tofs_replaces_the_defaults():
    tofs = {"files_switch": ["cluster", "site"], "source_files": {"mfsha-heartbeat-ha.cf": ["ha.cf.v2.jinja"]}}
    assert mfsha_pillar.settings(with_tofs(tofs), DEFAULTS, OSMAP, "paris-mfs2")["tofs"] == tofs
    only_files = {"source_files": {"mfsha-storage-drbd-resource": ["r0/drbd.res.jinja"]}}
    got = mfsha_pillar.settings(with_tofs(only_files), DEFAULTS, OSMAP, "paris-mfs2")["tofs"]
    assert got == {"files_switch": ["id", "cluster", "os_family"], **only_files}


@pytest.mark.parametrize("tofs,message", [
    ("files", "mfsha:tofs: 'files' must be a mapping with files_switch and/or source_files"),
    ({"files_switch": "id"}, "mfsha:tofs:files_switch: 'id' must be a list"),
    ({"files_switch": ["id", "os family"]},
     "mfsha:tofs:files_switch:1: 'os family' must be a grain or config key (e.g. id, os_family) or cluster"),
    ({"files_switch": [["id"]]}, "mfsha:tofs:files_switch:0: ['id'] must be a grain"),
    ({"source_files": ["ha.cf.jinja"]}, "mfsha:tofs:source_files: ['ha.cf.jinja'] must map a state id to a list"),
    ({"source_files": {"mfsha-heartbeat-ha.cf": "ha.cf.jinja"}},
     "mfsha:tofs:source_files:mfsha-heartbeat-ha.cf: 'ha.cf.jinja' must be a list"),
    ({"source_files": {"mfsha-heartbeat-ha.cf": ["../../etc/shadow"]}},
     "mfsha:tofs:source_files:mfsha-heartbeat-ha.cf:0: '../../etc/shadow' must be a relative file name"),
    ({"source_files": {"mfsha-heartbeat-ha.cf": ["/etc/ha.cf"]}},
     "mfsha:tofs:source_files:mfsha-heartbeat-ha.cf:0: '/etc/ha.cf' must be a relative file name"),
    ({"source_files": {"mfsha-heartbeat-ha.cf": ["ha cf"]}},
     "mfsha:tofs:source_files:mfsha-heartbeat-ha.cf:0: 'ha cf' must be a relative file name"),
])
def test_bad_tofs_is_rejected_with_its_key_path(tofs, message):
    msg = error_of(with_tofs(tofs))
    assert msg.startswith(f"invalid pillar {message}"), msg


@pytest.mark.parametrize("tofs,path", [({"file_switch": ["Zq8vN3xKp2LmT7wR"]}, "mfsha:tofs:file_switch"),
                                       ({"source_files": {"mfsha-heartbeat-hacf": ["Zq8vN3xKp2LmT7wR"]}},
                                        "mfsha:tofs:source_files:mfsha-heartbeat-hacf")])
def test_a_typo_is_an_error_and_its_value_is_not_shown(tofs, path):
    """A typo'd key or state id would otherwise do nothing, silently: the operator's override never applies."""
    msg = error_of(with_tofs(tofs))
    assert msg.startswith(f"invalid pillar {path}: <value not shown> is not a "), msg
    assert "Zq8v" not in msg


def test_tofs_is_known_beside_clusters_and_nothing_else_is():
    assert error_of({**EXAMPLE, "tof": {}}).startswith(
        "invalid pillar mfsha:tof: <value not shown> is not a known key (known: clusters, tofs)")


def test_every_lookup_is_a_state_id_pattern():
    assert len(set(mfsha_tofs.LOOKUPS)) == len(mfsha_tofs.LOOKUPS)
    assert all(lookup.startswith("mfsha-") for lookup in mfsha_tofs.LOOKUPS)
