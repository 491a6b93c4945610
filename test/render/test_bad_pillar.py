"""An invalid pillar stops the render in real Salt, with the validator's message, before any state runs."""
import copy

from render_support import load_pillar


def broken_example():
    pillar = copy.deepcopy(load_pillar("example"))
    pillar["mfsha"]["clusters"]["paris"]["vip"]["address"] = "10.21.0.10"
    return pillar


MESSAGE = ("mfsha: invalid pillar mfsha:clusters:paris:vip:address: '10.21.0.10/24' is outside the subnet of node "
           "paris-mfs1 (10.20.0.11)")


def test_render_fails_naming_the_key_path(formula):
    errors = formula.use("paris-mfs1", broken_example()).render_errors()
    assert errors and all(MESSAGE in e for e in errors), errors


def test_every_minion_of_the_tree_refuses_not_only_the_broken_site(formula):
    """One bad site stops the others too: the pillar tree is one contract."""
    errors = formula.use("berlin-cs1", broken_example()).render_errors()
    assert any(MESSAGE in e for e in errors), errors


def test_apply_changes_nothing(formula):
    """state.apply (not test=True) returns the render error instead of any state result: nothing ran."""
    ret = formula.use("paris-cs1", broken_example()).mod.state.apply("mfsha")
    assert isinstance(ret.raw, list) and ret.raw and all(isinstance(e, str) for e in ret.raw), ret  # no state ran
    assert any(MESSAGE in e for e in ret.raw)
