"""Render tier helpers: the formula rendered by real Salt (salt-factories Loaders) from test pillars."""
import copy
import pathlib

import yaml

from salt_support import salt_loaders

REPO = pathlib.Path(__file__).resolve().parents[2]
PILLARS = pathlib.Path(__file__).parent / "pillars"


def load_pillar(name):
    """A test pillar: pillar.example or test/render/pillars/<name>.yaml."""
    path = REPO / "pillar.example" if name == "example" else PILLARS / f"{name}.yaml"
    return yaml.safe_load(path.read_text())


class Formula:
    """Real Salt loaders (one set per session: building them costs ~20 s) that render the formula for a chosen
    minion id and pillar without applying anything."""

    def __init__(self, root, minion_id, pillar):
        root.mkdir(parents=True, exist_ok=True)
        self.pdir = root / "pillar"
        self.pdir.mkdir(exist_ok=True)
        (self.pdir / "top.sls").write_text("base:\n  '*': [mfsha]\n")
        (self.pdir / "mfsha.sls").write_text(yaml.safe_dump(pillar))
        # a site's own file tree before the repo (an operator's TOFS overrides, test_tofs.py; empty otherwise)
        self.site = root / "site"
        self.site.mkdir(exist_ok=True)
        # file_roots = the repo: _modules, _states and _utils are synced from salt:// as on a real minion
        self.loaders = salt_loaders(root, minion_id, file_roots={"base": [str(self.site), str(REPO)]},
                                    pillar_roots={"base": [str(self.pdir)]}, module_dirs=[], states_dirs=[],
                                    utils_dirs=[], state_verbose=True, saltenv="base")
        self.loaders.refresh_pillar()

    def use(self, minion_id, pillar):
        """Render from now on as `minion_id` with `pillar` (a dict, or a name for load_pillar)."""
        if isinstance(pillar, str):
            pillar = load_pillar(pillar)
        (self.pdir / "mfsha.sls").write_text(yaml.safe_dump(pillar))
        self.loaders.reload_all()  # loaded modules keep the __pillar__ and opts they were loaded with
        self.loaders.opts["id"] = self.loaders.grains["id"] = minion_id
        self.loaders.refresh_pillar()
        return self

    @property
    def mod(self):
        return self.loaders.modules

    def settings(self):
        return self.mod.mfsha.settings()

    def lowstate(self, sls="mfsha"):
        """The rendered low chunks of `sls`; a render error fails the test with Salt's message."""
        low = self.mod.state.show_low_sls(sls)
        assert low and isinstance(low[0], dict), f"render of {sls} failed: {low}"
        return low

    def render_errors(self, sls="mfsha"):
        """Salt's render errors for `sls` (a list of strings); [] when it renders."""
        low = self.mod.state.show_low_sls(sls)
        return [] if not low or isinstance(low[0], dict) else low

    def ids(self, sls="mfsha"):
        return {c["__id__"]: c for c in self.lowstate(sls)}

    def managed_files(self, sls="mfsha"):
        """{path: rendered content} of every file.managed and mfsha.storage_file (the files on the storage) in `sls`,
        rendered by Salt's own template engine."""
        out = {}
        for chunk in self.lowstate(sls):
            if (chunk["state"], chunk["fun"]) in (("file", "managed"), ("mfsha", "storage_file")):
                ctx = copy.deepcopy(chunk.get("context") or {})
                out[chunk["name"]] = self._render(chunk["source"], ctx)
        return out

    def chosen_source(self, source):
        """The url a file state takes from `source`: itself, or the first of a list (mfsha/libtofs.jinja) that the
        fileserver has, and its cached copy."""
        for url in [source] if isinstance(source, str) else source:
            cached = self.mod.cp.cache_file(url)
            if cached:
                return url, cached
        raise AssertionError(f"{source} not found on the fileserver")

    def _render(self, source, ctx):
        cached = self.chosen_source(source)[1]
        return self.mod.file.apply_template_on_contents(
            pathlib.Path(cached).read_text(), template="jinja", context=ctx, defaults=None, saltenv="base")
