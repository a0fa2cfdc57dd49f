"""Every registered search space follows the rules of ``flownas.conformance``
(Optuna's idea of conformance tests): a new space is checked the day it is
registered. The rules ship in the package, so a plug-in's author runs the
same ones (``flownas spaces --check NAME``); the last tests check that they
catch a broken space."""
import functools

import pytest

from flownas.cli import main
from flownas.conformance import SPACE_RULES, ConformanceError, check_space, space_outcomes
from flownas.registry import SPACES, get_space
from flownas.toys import ToySpace

NAMES = SPACES.names()
# a wrapper space passes the same suite: NB201 cells within 5 ms on a Pixel 3 (HELP latency table)
CONSTRAINED = "nb201-within-5ms-pixel3"


@pytest.fixture(params=NAMES + [CONSTRAINED])
def space(request):
    if request.param == CONSTRAINED:
        return _constrained_nb201()
    return get_space(request.param)


@functools.cache
def _constrained_nb201():
    from conftest import require_data
    from flownas.evaluators.latency import TableLatencyEvaluator
    from flownas.search.constraints import ConstrainedSpace, Constraint
    require_data("nasbench201/nb201_all.jsonl.gz")
    return ConstrainedSpace(get_space("nb201"), [Constraint("latency_ms", TableLatencyEvaluator("pixel3"), max=5.0)])


@pytest.mark.parametrize("rule", list(SPACE_RULES))
def test_the_space_follows_the_rule(space, rule):
    note = SPACE_RULES[rule](space)
    if note:
        pytest.skip(f"{rule}: {note} (its own tests check it)")


# -- the rules catch what they are about ------------------------------------------
class NetToy(ToySpace):
    """The toy space with a network: a linear layer per op."""

    input_shape = (3,)

    def to_model(self, arch, **options):
        import torch
        return torch.nn.Sequential(*[torch.nn.Linear(3, 3) for _ in self.chain(arch)])


class UnseededToy(NetToy):
    """Samples from numpy's global generator, not from the rng it is given."""

    def sample(self, rng):
        import numpy as np
        return super().sample(np.random.default_rng())


class NumberingToy(NetToy):
    """Its text form reads the nodes in numbering order, not in graph order."""

    def to_string(self, arch):
        return "".join(arch.ops[1:-1]) if arch.ops[0] == "input" else "?"


class LeakyParamsToy(NetToy):
    """to_params gives one decision that param_space does not list."""

    def to_params(self, arch):
        return {**super().to_params(arch), "p0": "z"}


@pytest.mark.parametrize("broken, rule, reason", [
    (UnseededToy, "samples are seeded members", "take randomness from the rng argument only"),
    (NumberingToy, "relabelled members stay members", "to_string depends on the node numbering"),
    (LeakyParamsToy, "params round trip", "to_params gives p0='z', not one of ['a', 'b', 'c']"),
])
def test_a_broken_space_is_refused_naming_the_rule(broken, rule, reason):
    outcomes = {o.rule: o for o in space_outcomes(broken())}
    assert not outcomes[rule].ok and reason in outcomes[rule].failure
    with pytest.raises(ConformanceError, match=f"space 'toy' breaks .* rules: .*{rule}: "):
        check_space(broken())
    check_space(NetToy())


def test_check_spaces_from_the_command_line(capsys, monkeypatch):
    monkeypatch.setitem(SPACES._entries, "toy-leaky", LeakyParamsToy)
    assert main(["spaces", "--check", "toy-leaky"]) == 1
    out, err = capsys.readouterr()
    assert "FAIL  params round trip: to_params gives p0='z'" in out and "ok    text forms round trip" in out
    assert err.strip() == "flownas: error: space 'toy-leaky' breaks 2 of 9 rules (above)"
    assert main(["spaces", "--check", "nb1*"]) == 0
    out = capsys.readouterr().out
    assert out.count("ok    ") == len(SPACE_RULES) - 1 and "skip  enumeration matches size: 423,624 members" in out
