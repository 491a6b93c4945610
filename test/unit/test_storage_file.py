"""_states/mfsha.py storage_file: mfsmaster.cfg and mfsexports.cfg on the storage (the mfs user's directory), never
written or read through what mfs planted there. The template is the formula's own, rendered by jinja2 (as Salt's
jinja renderer does for this template: no Salt-specific syntax in it); the lab test (test_symlinks.py) runs the state
through the real Salt."""
import os
import stat

import jinja2
import pytest

from unit_support import REPO, load_salt_module

SOURCE = "salt://mfsha/files/mfsmaster.cfg.jinja"
CONTEXT = {"mfsha": {"cluster": "lab", "master": {"config": {"DATA_PATH": "/srv/mfsconf", "WORKING_USER": "mfs"}}}}
WANT = "# Managed by Salt (mfsha, cluster lab): defaults.yaml under the pillar's master:config.\n" \
       "DATA_PATH = /srv/mfsconf\nWORKING_USER = mfs"


def state(test=False):
    def get_file_str(source, saltenv="base"):
        assert saltenv == "base"
        path = REPO / source.replace("salt://", "")
        return path.read_text() if path.exists() else False

    def render(text, template, context, defaults, saltenv):
        assert template == "jinja"
        return jinja2.Template(text).render(**context)
    mod = load_salt_module("_states/mfsha.py", salt={"cp.get_file_str": get_file_str,
                                                     "file.apply_template_on_contents": render},
                           opts={"test": test})
    mod.__env__ = "base"
    return mod


@pytest.fixture
def bait(tmp_path):
    path = tmp_path / "passwd"
    path.write_text("root:x:0:0\n")
    return path


def test_writes_then_is_in_the_correct_state(tmp_path):
    cfg = tmp_path / "mfsmaster.cfg"
    ret = state().storage_file(str(cfg), SOURCE, CONTEXT)
    assert ret["result"] is True and ret["changes"] == {"written": str(cfg), "because": "it is missing"}
    assert cfg.read_text() == WANT and stat.S_IMODE(cfg.stat().st_mode) == 0o644
    assert state().storage_file(str(cfg), SOURCE, CONTEXT) == {
        "name": str(cfg), "changes": {}, "result": True, "comment": f"{cfg} is in the correct state"}
    os.chmod(cfg, 0o666)
    assert state().storage_file(str(cfg), SOURCE, CONTEXT)["changes"]["because"] == "its mode differs from 0644"


@pytest.mark.parametrize("plant, why", [("link", "is a symlink (not followed)"),
                                        ("fifo", "is not a regular file (not followed)"),
                                        ("foreign", "belongs to uid 4242, not to uid 0 (not followed)")])
def test_what_mfs_planted_is_replaced_never_followed(tmp_path, bait, plant, why):
    cfg = tmp_path / "mfsmaster.cfg"
    if plant == "link":
        cfg.symlink_to(bait)
    elif plant == "fifo":
        os.mkfifo(cfg)  # a read for the diff would block
    else:
        cfg.write_text(WANT)  # the right text, but mfs's file: mfs could change it at any time
        os.chown(cfg, 4242, 4242)
    (tmp_path / ".mfsmaster.cfg.mfsha-tmp").symlink_to(bait)
    assert state(test=True).storage_file(str(cfg), SOURCE, CONTEXT)["result"] is None
    assert bait.read_text() == "root:x:0:0\n"
    ret = state().storage_file(str(cfg), SOURCE, CONTEXT)
    assert ret["result"] is True and ret["changes"]["because"] == why.replace("uid 0", f"uid {os.geteuid()}")
    assert cfg.read_text() == WANT and not cfg.is_symlink() and cfg.stat().st_uid == os.geteuid()
    assert bait.read_text() == "root:x:0:0\n" and sorted(os.listdir(tmp_path)) == ["mfsmaster.cfg", "passwd"]


def test_a_directory_there_or_a_missing_source_fails_clearly(tmp_path):
    (tmp_path / "mfsmaster.cfg").mkdir()
    ret = state().storage_file(str(tmp_path / "mfsmaster.cfg"), SOURCE, CONTEXT)
    assert ret["result"] is False and "mfsmaster.cfg: is a directory; refused" in ret["comment"]
    ret = state().storage_file(str(tmp_path / "x.cfg"), "salt://mfsha/files/nope.jinja", CONTEXT)
    assert ret == {"name": str(tmp_path / "x.cfg"), "changes": {}, "result": False,
                   "comment": "salt://mfsha/files/nope.jinja not found on the fileserver"}


def test_a_source_list_takes_the_first_that_exists(tmp_path):
    """mfsha/libtofs.jinja hands a list (the site's override first): the first the fileserver has is rendered."""
    cfg = tmp_path / "mfsmaster.cfg"
    sources = ["salt://mfsha/files/lab/mfsmaster.cfg.jinja", "salt://mfsha/files/nonesuch.jinja", SOURCE]
    assert state().storage_file(str(cfg), sources, CONTEXT)["result"] is True
    assert cfg.read_text() == WANT
    ret = state().storage_file(str(tmp_path / "other.cfg"), sources[:2], CONTEXT)
    assert ret["result"] is False and "not found on the fileserver" in ret["comment"], ret
