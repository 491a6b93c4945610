"""Render tier fixtures (helpers in render_support.py)."""
import pytest

from render_support import Formula, load_pillar


@pytest.fixture(scope="session")
def formula(tmp_path_factory):
    """One Formula for the session; tests pick the minion and pillar with formula.use(id, pillar)."""
    return Formula(tmp_path_factory.mktemp("formula"), "nobody", load_pillar("example"))
