"""Templates overridable per site (mfsha/libtofs.jinja, after template-formula's TOFS): a template dropped under
salt://mfsha/files/<minion id | cluster | os_family>/ or named in mfsha:tofs:source_files is what real Salt picks;
without one, the formula's own. The site's tree is a file root before the repo, as an operator's would be."""
import copy
import shutil
import sys

import pytest

from render_support import REPO, load_pillar

sys.path.insert(0, str(REPO / "_utils"))
import mfsha_tofs  # noqa: E402

FILE_STATES = (("file", "managed"), ("mfsha", "storage_file"))


@pytest.fixture
def site(formula):
    """drop(path under salt://, text): a file in the site's tree; all removed after the test."""
    made = []

    def drop(path, text):
        dst = formula.site / path
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(text)
        made.append(path.split("/")[0])
    yield drop
    for top in set(made):
        shutil.rmtree(formula.site / top, ignore_errors=True)


def example_with(tofs):
    """pillar.example with `tofs` instead of its own (None: none, the defaults)."""
    pillar = copy.deepcopy(load_pillar("example"))
    pillar["mfsha"]["tofs"] = tofs
    if tofs is None:
        del pillar["mfsha"]["tofs"]
    return pillar


def file_chunks(f):
    return [c for c in f.lowstate() if (c["state"], c["fun"]) in FILE_STATES]


def test_without_overrides_every_file_is_the_formulas_own(formula):
    for minion in ("paris-mfs1", "paris-cs1", "berlin-mfs2"):
        f = formula.use(minion, example_with(None))
        chunks = file_chunks(f)
        assert chunks, minion
        for c in chunks:
            src = c["source"]
            assert isinstance(src, list) and src[-1].startswith("salt://mfsha/files/") and src[-1].count("/") == 4, c
            # minion id, then its cluster, then os_family, then the formula's own file
            name = src[-1].rsplit("/", 1)[1]
            cluster = minion.split("-")[0]
            assert src[:3] == [f"salt://mfsha/files/{d}/{name}" for d in (minion, cluster, f.loaders.grains["os_family"])]
            assert f.chosen_source(src)[0] == src[-1], (minion, c["__id__"])
    # pillar.example names a v2 ha.cf, which no file root has: the formula's own is still taken
    f = formula.use("paris-mfs1", "example")
    src = f.ids()["mfsha-heartbeat-ha.cf"]["source"]
    assert src[0] == "salt://mfsha/files/paris-mfs1/ha.cf.v2.jinja" and src[-1] == "salt://mfsha/files/ha.cf.jinja"
    assert f.chosen_source(src)[0] == src[-1]


def test_a_sites_template_is_picked_for_that_site_only(formula, site):
    site("mfsha/files/paris/ha.cf.jinja", "# paris's own ha.cf for {{ mfsha.me.hostname }}\n")
    for minion in ("paris-mfs1", "paris-mfs2"):
        files = formula.use(minion, "example").managed_files()
        assert files["/etc/ha.d/ha.cf"] == f"# paris's own ha.cf for {minion}\n"
        assert files["/etc/ha.d/haresources"].strip().endswith("MFSMaster")  # the other templates stay the formula's
    berlin = formula.use("berlin-mfs2", "example").managed_files()["/etc/ha.d/ha.cf"]
    assert "deadtime 10" in berlin and "paris's own" not in berlin


def test_a_minions_template_beats_its_sites(formula, site):
    site("mfsha/files/paris/mfshdd.cfg.jinja", "/srv/site-disk\n")
    site("mfsha/files/paris-cs2/mfshdd.cfg.jinja", "/srv/cs2-only-disk\n")
    assert formula.use("paris-cs1", "example").managed_files()["/etc/mfs/mfshdd.cfg"] == "/srv/site-disk\n"
    assert formula.use("paris-cs2", "example").managed_files()["/etc/mfs/mfshdd.cfg"] == "/srv/cs2-only-disk\n"


def test_a_file_on_the_storage_is_overridable_too(formula, site):
    """mfsmaster.cfg goes through mfsha.storage_file, which takes the same source list."""
    site("mfsha/files/paris/mfsmaster.cfg.jinja", "DATA_PATH = {{ mfsha.master.config.DATA_PATH }}\nSITE = paris\n")
    files = formula.use("paris-mfs1", "example").managed_files()
    assert files["/mfsconf/mfsmaster.cfg"] == "DATA_PATH = /mfsconf\nSITE = paris\n"
    assert "SITE = paris" not in files["/mfsconf/mfsexports.cfg"]


def test_source_files_and_files_switch_from_the_pillar(formula, site):
    site("mfsha/files/ha.cf.v2.jinja", "# v2 for everyone\n")
    site("mfsha/files/berlin/ha.cf.v2.jinja", "# v2 for berlin\n")
    site("mfsha/files/paris/ha.cf.jinja", "# paris: not looked at, cluster is not a switch here\n")
    tofs = {"files_switch": ["id"], "source_files": {"mfsha-heartbeat-ha.cf": ["ha.cf.v2.jinja"]}}
    for minion, want in (("paris-mfs1", "# v2 for everyone\n"), ("berlin-mfs2", "# v2 for everyone\n")):
        f = formula.use(minion, example_with(tofs))
        assert f.managed_files()["/etc/ha.d/ha.cf"] == want, minion
        assert f.ids()["mfsha-heartbeat-ha.cf"]["source"] == [
            f"salt://mfsha/files/{minion}/ha.cf.v2.jinja", f"salt://mfsha/files/{minion}/ha.cf.jinja",
            "salt://mfsha/files/ha.cf.v2.jinja", "salt://mfsha/files/ha.cf.jinja"]
    tofs["files_switch"] = ["cluster"]
    assert formula.use("berlin-mfs2", example_with(tofs)).managed_files()["/etc/ha.d/ha.cf"] == "# v2 for berlin\n"


def test_every_template_state_has_its_lookup(formula):
    """Each file state's lookup is one of mfsha_tofs.LOOKUPS (the validator's list) and every one is used: a state
    renamed without its lookup, or a new template outside files_switch, fails here."""
    tofs = {"files_switch": [], "source_files": {lookup: [f"x-{lookup}"] for lookup in mfsha_tofs.LOOKUPS}}
    seen = set()
    for minion in ("paris-mfs1", "paris-cs1"):  # DRBD master that bootstraps; chunkserver + metalogger
        for c in file_chunks(formula.use(minion, example_with(tofs))):
            first = c["source"][0]
            assert first.startswith("salt://mfsha/files/x-mfsha-"), c
            lookup = first[len("salt://mfsha/files/x-"):]
            assert c["__id__"].startswith(lookup), (c["__id__"], lookup)
            seen.add(lookup)
    assert seen == set(mfsha_tofs.LOOKUPS)
