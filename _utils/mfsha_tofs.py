"""The `mfsha:tofs` pillar: where a site's own templates are looked for before the formula's (TOFS, the template
override and files switch of saltstack-formulas/template-formula; the lookup itself is mfsha/libtofs.jinja).
Pure Python: no Salt import. mfsha_pillar turns `Invalid` into its PillarError.

    tofs:
      files_switch: [id, cluster, os_family]    # salt://mfsha/files/<value of each>/<file>, in this order
      source_files:                             # per state: file names tried before the formula's own name
        mfsha-heartbeat-ha.cf: [ha.cf.paris.jinja]
"""
import re

# A switch is a grain or config key as config.get takes it (`os_family`, `id`, `roles`, `mygrains:site`), or
# `cluster`, the minion's mfsha cluster (its site).
SWITCH = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$")
# A file name under salt://mfsha/files/<switch value>/: relative, no `..`, nothing a shell or YAML would bend.
FILE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}(/[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}){0,7}$")
# The lookups: the state ids whose source goes through files_switch (test/render checks every one is wired).
# The DRBD resource file's id ends in the resource name; its lookup does not.
LOOKUPS = (
    "mfsha-chunkserver-mfschunkserver.cfg", "mfsha-chunkserver-mfshdd.cfg", "mfsha-metalogger-mfsmetalogger.cfg",
    "mfsha-heartbeat-ha.cf", "mfsha-heartbeat-authkeys", "mfsha-heartbeat-haresources",
    "mfsha-heartbeat-witness-helper", "mfsha-heartbeat-selffence-helper", "mfsha-heartbeat-guard-resource-agent",
    "mfsha-heartbeat-mfsmaster-resource-agent", "mfsha-heartbeat-tickle-helper",
    "mfsha-storage-drbd-split-brain-handler", "mfsha-storage-drbd-fence-peer-handler", "mfsha-storage-drbd-resource",
    "mfsha-master-config-file", "mfsha-master-exports-file",
)


class Invalid(ValueError):
    """(path, value, problem) of a bad `tofs` value, for mfsha_pillar.PillarError; value HIDE: not shown."""


HIDE = object()  # an unknown key's value is never shown (a typo'd key may hold anything)


def _names(path, value, pattern, what):
    if not isinstance(value, list):
        raise Invalid(path, value, "must be a list")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not pattern.match(item) or ".." in item:
            raise Invalid(f"{path}:{i}", item, f"must be {what}")
    return list(value)


def validate(path, tofs, defaults):
    """`tofs` (the pillar's, may be None) over `defaults` (defaults.yaml's `tofs`), checked. Returns the settings."""
    if tofs is None:
        tofs = {}
    if not isinstance(tofs, dict):
        raise Invalid(path, tofs, "must be a mapping with files_switch and/or source_files")
    for key in tofs:
        if key not in defaults:
            raise Invalid(f"{path}:{key}", HIDE, f"is not a known key (known: {', '.join(sorted(defaults))})")
    switch = _names(f"{path}:files_switch", tofs.get("files_switch", defaults["files_switch"]), SWITCH,
                    "a grain or config key (e.g. id, os_family) or cluster")
    files = tofs.get("source_files", defaults["source_files"]) or {}
    if not isinstance(files, dict):
        raise Invalid(f"{path}:source_files", files, "must map a state id to a list of file names")
    out = {}
    for lookup, names in files.items():
        if lookup not in LOOKUPS:
            raise Invalid(f"{path}:source_files:{lookup}", HIDE,
                          f"is not a state id with a template (known: {', '.join(LOOKUPS)})")
        out[lookup] = _names(f"{path}:source_files:{lookup}", names, FILE,
                             "a relative file name under mfsha/files/<switch>/ (no .., no spaces)")
    return {"files_switch": switch, "source_files": out}
