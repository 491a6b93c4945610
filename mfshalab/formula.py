"""Where the formula is, seen from the lab: the repository root (the lab Salt master's file_roots), the venv whose
Salt runs the lab, and the formula's own pure code in _utils/ that the lab reuses (so it merges pillars and names
temporary files exactly as the formula does)."""
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.join(REPO, ".venv", "bin")
UTILS = os.path.join(REPO, "_utils")

# _utils/ modules import each other by their plain names (Salt's loader puts the dir on sys.path), so the dir itself
# goes on sys.path, not a package path
if UTILS not in sys.path:
    sys.path.insert(0, UTILS)

from mfsha_files import tmp_name, write_durably  # noqa: E402  (the formula's own temporary names and writer)
from mfsha_pillar import merge  # noqa: E402  (the lab pillar merges like the formula's defaults do)

__all__ = ["REPO", "UTILS", "VENV_BIN", "merge", "tmp_name", "write_durably"]
