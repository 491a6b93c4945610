"""Real Salt loaders (salt-factories `Loaders`) over this repo, shared by the unit and render tiers."""
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[1]


def salt_loaders(root, minion_id="mfsha-unit", **opts):
    """Loaders with a private cache under `root`. By default the repo's _modules/_states/_utils load directly;
    pass file_roots={"base": [REPO]} to have them synced from salt:// the way a minion gets them."""
    import salt.config
    from saltfactories.utils.functional import Loaders

    root.mkdir(parents=True, exist_ok=True)
    (root / "roots").mkdir(exist_ok=True)
    minion = salt.config.minion_config(None, minion_id=minion_id)  # an explicit id: no lookup cached in /etc/salt
    minion.update(
        id=minion_id, file_client="local", file_roots={"base": [str(root / "roots")]},
        module_dirs=[str(REPO / "_modules")], states_dirs=[str(REPO / "_states")], utils_dirs=[str(REPO / "_utils")],
        cachedir=str(root / "cache"), extension_modules=str(root / "extmods"), pki_dir=str(root / "pki"),
        sock_dir=str(root / "sock"), log_file=str(root / "minion.log"))
    minion.update(opts)
    return Loaders(minion)
