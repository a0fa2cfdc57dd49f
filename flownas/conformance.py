"""The rules every search space must follow, shipped with flownas so that a
space of your own is checked where flownas is installed, not only in this
repository's tests (Optuna and scikit-learn ship their conformance suites
the same way):

    flownas spaces --check resnet          # each rule: ok, FAIL with the reason, or not checked

    from flownas.conformance import check_space
    check_space(MySpace())                 # in your tests: raises ConformanceError naming each broken rule

``tests/test_spaces_conformance.py`` runs the same rules on every registered
space. Each rule is a function of the space that raises ``ConformanceError``
when the space breaks it, or returns a note when it does not apply.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .arch import Architecture
from .errors import ArchitectureError, NotInSpaceError
from .spaces.base import SearchSpace

# enumerating a finite space larger than this is left to the space's own tests
ENUMERATE_UP_TO = 20_000


class ConformanceError(AssertionError):
    """A rule of ``flownas.conformance`` that a space breaks."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConformanceError(message)


def _samples(space: SearchSpace, n: int = 8, seed: int = 0) -> list[Architecture]:
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)]


def samples_are_seeded_members(space: SearchSpace) -> None:
    first, again = _samples(space), _samples(space)
    _require([a.to_json() for a in first] == [a.to_json() for a in again],
             "two samples with the same seed differ: take randomness from the rng argument only")
    for arch in first:
        _require(isinstance(arch, Architecture), f"sample returned {type(arch).__name__}, not an Architecture")
        _require(arch.space == space.name, f"a sample's space is {arch.space!r}, not {space.name!r}")
        space.validate(arch)
        _require(space.contains(arch), f"contains() is False for a sample: {space.to_string(arch)}")
        _require(space.normalize(arch) == arch, f"normalize() changes a sample: {space.to_string(arch)}")


def mutation_gives_another_member(space: SearchSpace) -> None:
    rng = np.random.default_rng(1)
    for arch in _samples(space):
        child = space.mutate(arch, rng)
        _require(child != arch, f"mutate returned its parent: {space.to_string(arch)}")
        space.validate(child)


def relabelled_members_stay_members(space: SearchSpace) -> None:
    rng = np.random.default_rng(2)
    for arch in _samples(space, 4):
        other = arch.relabel(list(rng.permutation(arch.num_nodes)))
        _require(space.contains(other), "a member with its nodes renumbered is not a member: "
                                        "identity is the labelled graph, not its numbering")
        _require(space.to_string(other) == space.to_string(arch),
                 f"to_string depends on the node numbering: {space.to_string(other)!r} "
                 f"vs {space.to_string(arch)!r}")


def params_round_trip(space: SearchSpace) -> None:
    choices = space.param_space()
    for arch in _samples(space):
        params = space.to_params(arch)
        for name, value in params.items():
            _require(name in choices, f"to_params gives {name!r}, which param_space lacks")
            _require(value in choices[name], f"to_params gives {name}={value!r}, not one of {list(choices[name])}")
        _require(space.from_params(params) == arch, f"from_params(to_params(a)) != a for {space.to_string(arch)}")


def neighbours_are_members_one_change_away(space: SearchSpace) -> None:
    for arch in _samples(space, 3):
        near = space.neighbours(arch)
        _require(bool(near), f"no neighbours for {space.to_string(arch)}")
        _require(len({n.key for n in near}) == len(near), "neighbours lists a member twice")
        _require(arch not in near, "neighbours lists the architecture itself")
        params = space.to_params(arch)
        for other in near:
            space.validate(other)
            # several assignments may name one member: at least one parameter differs
            _require(any(v != params.get(k) for k, v in space.to_params(other).items()),
                     f"a neighbour has the same parameters: {space.to_string(other)}")


def text_forms_round_trip(space: SearchSpace) -> None:
    for arch in _samples(space):
        text = space.to_string(arch)
        _require(space.parse(text) == arch, f"parse(to_string(a)) != a for {text!r}")
        _require(space.parse(arch.to_json()) == arch, f"parse(a.to_json()) != a for {text!r}")


def foreign_architectures_are_refused(space: SearchSpace) -> None:
    foreign = Architecture(["input", "output"], [[0, 1], [0, 0]], space="elsewhere")
    try:
        space.validate(foreign)
        raise ConformanceError("validate accepts an architecture of space 'elsewhere'")
    except NotInSpaceError as exc:
        _require(space.name in str(exc), f"the refusal does not name the space: {exc}")
    _require(not space.contains(foreign), "contains() is True for an architecture of space 'elsewhere'")
    sample = _samples(space, 1)[0]
    try:
        space.validate(sample.with_ops(["bogus_op"] * sample.num_nodes))
        raise ConformanceError("validate accepts a member whose every op is 'bogus_op'")
    except ArchitectureError:
        pass


def network_builds_and_runs(space: SearchSpace) -> None:
    import torch
    model = space.to_model(_samples(space, 1)[0])
    _require(isinstance(model, torch.nn.Module), f"to_model returned {type(model).__name__}, not a torch module")
    _require(sum(p.numel() for p in model.parameters()) > 0, "the network has no parameters")
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, *space.input_shape))
    _require(out.shape[0] == 2, f"a batch of 2 gave an output of shape {tuple(out.shape)}")
    _require(bool(torch.isfinite(out).all()), "the output of a random input is not finite")


def enumeration_matches_size(space: SearchSpace) -> str | None:
    size = space.size()
    if size is None or size > ENUMERATE_UP_TO:
        return "infinite space" if size is None else f"{size:,} members: too many to enumerate here"
    keys = [a.key for a in space.enumerate()]
    _require(len(keys) == size, f"enumerate gives {len(keys)} members, size() says {size}")
    _require(len(set(keys)) == len(keys), "enumerate gives a member twice")
    return None


#: every rule by name, in the order they are checked
SPACE_RULES: dict[str, Callable[[SearchSpace], str | None]] = {
    f.__name__.replace("_", " "): f for f in (
        samples_are_seeded_members, mutation_gives_another_member, relabelled_members_stay_members,
        params_round_trip, neighbours_are_members_one_change_away, text_forms_round_trip,
        foreign_architectures_are_refused, network_builds_and_runs, enumeration_matches_size)}


@dataclass(frozen=True)
class Outcome:
    rule: str
    failure: str | None = None   # why the space breaks it
    note: str | None = None      # why it was not checked

    @property
    def ok(self) -> bool:
        return self.failure is None


def space_outcomes(space: SearchSpace) -> list[Outcome]:
    """Each rule's outcome for ``space``; an exception a method of the space
    raises while a rule runs breaks that rule."""
    outcomes = []
    for rule, check in SPACE_RULES.items():
        try:
            outcomes.append(Outcome(rule, note=check(space)))
        except ConformanceError as exc:
            outcomes.append(Outcome(rule, failure=str(exc)))
        except Exception as exc:   # noqa: BLE001 - a broken method is a broken rule
            outcomes.append(Outcome(rule, failure=f"{type(exc).__name__}: {exc}"))
    return outcomes


def check_space(space: SearchSpace) -> None:
    """Raise ``ConformanceError`` listing every rule ``space`` breaks."""
    broken = [o for o in space_outcomes(space) if not o.ok]
    if broken:
        raise ConformanceError(f"space {space.name!r} breaks {len(broken)} of {len(SPACE_RULES)} rules: "
                               + "; ".join(f"{o.rule}: {o.failure}" for o in broken))
