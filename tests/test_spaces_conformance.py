"""One suite that every registered search space must pass (Optuna's idea of
conformance tests): a new space is checked the day it is registered."""
import functools

import numpy as np
import pytest
import torch

from flownas.arch import Architecture
from flownas.errors import ArchitectureError, NotInSpaceError
from flownas.registry import SPACES, get_space

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


def _samples(space, n=8, seed=0):
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)]


def test_samples_belong_to_the_space_and_are_seeded(space):
    a, b = _samples(space), _samples(space)
    assert [x.to_json() for x in a] == [x.to_json() for x in b]
    for arch in a:
        assert isinstance(arch, Architecture) and arch.space == space.name
        space.validate(arch)
        assert space.contains(arch)
        assert space.normalize(arch) == arch


def test_mutation_gives_a_different_member(space):
    rng = np.random.default_rng(1)
    for arch in _samples(space):
        child = space.mutate(arch, rng)
        assert child != arch
        space.validate(child)


def test_relabeled_members_stay_members(space):
    rng = np.random.default_rng(2)
    for arch in _samples(space, 4):
        other = arch.relabel(list(rng.permutation(arch.num_nodes)))
        assert space.contains(other)
        assert space.to_string(other) == space.to_string(arch)


def test_params_round_trip(space):
    choices = space.param_space()
    for arch in _samples(space):
        params = space.to_params(arch)
        for k, v in params.items():
            assert v in choices[k], (k, v)
        assert space.from_params(params) == arch


def test_neighbours_are_distinct_members_one_parameter_away(space):
    for arch in _samples(space, 3):
        near = space.neighbours(arch)
        assert near and len({n.key for n in near}) == len(near) and arch not in near
        params = space.to_params(arch)
        for other in near:
            space.validate(other)
            changed = [k for k, v in space.to_params(other).items() if v != params[k]]
            assert len(changed) >= 1   # several assignments may name one member: at least one differs


def test_text_forms_round_trip(space):
    for arch in _samples(space):
        assert space.parse(space.to_string(arch)) == arch
        assert space.parse(arch.to_json()) == arch


def test_foreign_architecture_is_rejected_naming_the_space(space):
    foreign = Architecture(["input", "output"], [[0, 1], [0, 0]], space="elsewhere")
    with pytest.raises(NotInSpaceError, match=space.name):
        space.validate(foreign)
    assert not space.contains(foreign)
    unknown = _samples(space, 1)[0]
    bad = unknown.with_ops(["bogus_op"] * unknown.num_nodes)
    with pytest.raises(ArchitectureError):
        space.validate(bad)


def test_network_builds_and_runs_forward(space):
    arch = _samples(space, 1)[0]
    model = space.to_model(arch)
    assert isinstance(model, torch.nn.Module)
    assert sum(p.numel() for p in model.parameters()) > 0
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, *space.input_shape))
    assert out.shape[0] == 2 and torch.isfinite(out).all()


def test_enumeration_matches_size_when_finite(space):
    size = space.size()
    if size is None or size > 20000:
        pytest.skip("infinite or large space: its own test checks enumeration")
    archs = list(space.enumerate())
    assert len(archs) == size == len({a.key for a in archs})
