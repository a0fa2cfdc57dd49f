"""The rules every search space, predictor and strategy must follow, shipped
with flownas so that one of your own is checked where flownas is installed,
not only in this repository's tests (Optuna and scikit-learn ship their
conformance suites the same way):

    flownas spaces --check resnet          # each rule: ok, FAIL with the reason, or not checked

    from flownas.conformance import check_predictor, check_space, check_strategy
    check_space(MySpace())                 # in your tests: raises ConformanceError naming each broken rule
    check_predictor(MyPredictor)           # fits it on 200 NB201 cells (needs the table), with its quick_params
    check_strategy(MyStrategy)             # searches the 80-member toy space of flownas.toys

``tests/test_spaces_conformance.py``, ``tests/test_predictors_conformance.py``
and ``tests/test_strategies.py`` run the same rules on everything registered.
Each rule is a function that raises ``ConformanceError`` when it is broken,
or returns a note when it does not apply.
"""
from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .arch import Architecture
from .errors import ArchitectureError, NotInSpaceError
from .spaces.base import SearchSpace

# enumerating a finite space larger than this is left to the space's own tests
ENUMERATE_UP_TO = 20_000


class ConformanceError(AssertionError):
    """A rule of ``flownas.conformance`` that a space, predictor or strategy breaks."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConformanceError(message)


@dataclass(frozen=True)
class Outcome:
    """One rule checked on one space, predictor or strategy."""

    rule: str
    failure: str | None = None   # why it is broken
    note: str | None = None      # why it was not checked

    @property
    def ok(self) -> bool:
        return self.failure is None


def _outcomes(rules: dict, *args) -> list[Outcome]:
    """Each rule's outcome; an exception the checked object raises while a
    rule runs breaks that rule."""
    outcomes = []
    for rule, check in rules.items():
        try:
            outcomes.append(Outcome(rule, note=check(*args)))
        except ConformanceError as exc:
            outcomes.append(Outcome(rule, failure=str(exc)))
        except Exception as exc:   # noqa: BLE001 - a broken method is a broken rule
            outcomes.append(Outcome(rule, failure=f"{type(exc).__name__}: {exc}"))
    return outcomes


def _raise_broken(what: str, outcomes: list[Outcome], total: int) -> None:
    broken = [o for o in outcomes if not o.ok]
    if broken:
        raise ConformanceError(f"{what} breaks {len(broken)} of {total} rules: "
                               + "; ".join(f"{o.rule}: {o.failure}" for o in broken))


# -- search spaces ----------------------------------------------------------------
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


def space_outcomes(space: SearchSpace) -> list[Outcome]:
    """Each rule's outcome for ``space``."""
    return _outcomes(SPACE_RULES, space)


def check_space(space: SearchSpace) -> None:
    """Raise ``ConformanceError`` listing every rule ``space`` breaks."""
    _raise_broken(f"space {space.name!r}", space_outcomes(space), len(SPACE_RULES))


# -- predictors -------------------------------------------------------------------
@dataclass(frozen=True)
class Split:
    """Architectures and targets to fit a predictor on, and to test it on."""

    train: Sequence[Architecture]
    train_y: np.ndarray
    test: Sequence[Architecture]
    test_y: np.ndarray


def nb201_split(train: int = 200, test: int = 1000, seed: int = 0) -> Split:
    """``train`` and ``test`` NB201 cells of a seeded permutation, with their
    cifar10-valid validation accuracy (needs the table, ``FLOWNAS_DATA``)."""
    from .benchmarks.base import load_benchmark
    table = load_benchmark("nb201")
    archs = table.archs()
    y = np.array([table.row(a)["c10_valid_val_acc_200"] for a in archs])
    perm = np.random.default_rng(seed).permutation(len(archs))
    tr, te = perm[:train], perm[train:train + test]
    return Split([archs[i] for i in tr], y[tr], [archs[i] for i in te], y[te])


def _quick(cls, **params):
    return cls(**{**cls.quick_params, **params})


def _raises(what: str, errors, pattern: str, call) -> None:
    """``call()`` must raise one of ``errors`` whose message matches ``pattern``."""
    try:
        call()
    except errors as exc:
        _require(re.search(pattern, str(exc)) is not None, f"{what}: the error does not say {pattern!r}: {exc}")
        return
    except Exception as exc:   # noqa: BLE001 - the wrong kind of error is the rule broken
        raise ConformanceError(f"{what}: expected {errors}, got {type(exc).__name__}: {exc}") from None
    raise ConformanceError(f"{what}: no error")


def learns(cls, split: Split, fitted) -> None:
    from .predictors.metrics import kendall_tau
    pred = np.asarray(fitted.predict(split.test))
    _require(pred.shape == (len(split.test),), f"predict gave shape {pred.shape} for {len(split.test)} architectures")
    _require(bool(np.isfinite(pred).all()), "predict gave values that are not finite")
    tau = kendall_tau(split.test_y, pred)
    _require(tau > 0.5, f"Kendall tau {tau:.3f} on the test cells, not above 0.5")


def predictions_are_in_target_units(cls, split: Split, fitted) -> None:
    gap = abs(float(np.mean(fitted.predict(split.train))) - float(np.mean(split.train_y)))
    _require(gap < 0.25 * float(np.std(split.train_y)),
             f"the mean prediction on the training cells is {gap:.3g} away from the mean target")


def save_load_round_trips_exactly(cls, split: Split, fitted) -> None:
    from .predictors.base import Predictor
    with tempfile.TemporaryDirectory() as tmp:
        fitted.save(Path(tmp) / "p.bin")
        loaded = type(fitted).load(Path(tmp) / "p.bin")
    _require(isinstance(loaded, Predictor), f"load returned {type(loaded).__name__}, not a Predictor")
    _require(loaded.get_params() == fitted.get_params(), "get_params differs after save and load")
    _require(np.array_equal(loaded.predict(split.test), fitted.predict(split.test)),
             "predictions differ after save and load")


def deterministic_under_a_seed(cls, split: Split, fitted) -> None:
    archs, y, test = split.train[:60], split.train_y[:60], split.test[:50]
    first = _quick(cls, seed=3).fit(archs, y).predict(test)
    _require(np.array_equal(first, _quick(cls, seed=3).fit(archs, y).predict(test)),
             "two fits with seed 3 predict differently")


def return_std_gives_the_spread(cls, split: Split, fitted) -> None:
    p = _quick(cls, seed=0, ensemble=2).fit(split.train[:60], split.train_y[:60])
    mean, std = p.predict(split.test[:30], return_std=True)
    _require(np.shape(mean) == np.shape(std) == (30,), "return_std=True gives no (mean, std) of one per architecture")
    _require(bool((np.asarray(std) >= 0).all()) and float(np.max(std)) > 0, "an ensemble of 2 has no spread")
    _require(np.allclose(mean, p.predict(split.test[:30])), "the mean differs from predict() without return_std")


def relabellings_score_the_same(cls, split: Split, fitted) -> str | None:
    if not getattr(cls, "permutation_invariant", False):
        return "permutation_invariant is False"
    rng = np.random.default_rng(1)
    archs = list(split.test[:40])
    relabelled = [a.relabel(rng.permutation(a.num_nodes).tolist()) for a in archs]
    _require(np.allclose(fitted.predict(relabelled), fitted.predict(archs), rtol=1e-5, atol=1e-5),
             "an architecture with its nodes renumbered scores differently")
    return None


def bad_input_is_refused_clearly(cls, split: Split, fitted) -> None:
    from .errors import ArchitectureError
    archs, y = list(split.train[:20]), np.asarray(split.train_y[:20], dtype=float)
    _raises("fit on no architectures", ValueError, "empty", lambda: _quick(cls).fit([], []))
    _raises("a NaN target", ValueError, "NaN", lambda: _quick(cls).fit(archs, np.r_[y[:-1], np.nan]))
    _raises("a missing target", ValueError, "missing|numbers", lambda: _quick(cls).fit(archs, list(y[:-1]) + [None]))
    _raises("19 targets for 20 architectures", ValueError, "expected 20", lambda: _quick(cls).fit(archs, y[:-1]))
    foreign = Architecture(["input", "output"], [[0, 1], [0, 0]], space="elsewhere")
    _raises("an architecture of another space", ArchitectureError, "elsewhere", lambda: fitted.predict([foreign]))
    _raises("predict on no architectures", ValueError, "empty", lambda: fitted.predict([]))
    _raises("a string, not an Architecture", TypeError, "not an Architecture",
            lambda: fitted.predict([split.train[0].to_json()]))
    _raises("predict before fit", Exception, "not fitted", lambda: _quick(cls).predict(split.test[:2]))
    _raises("an unknown hyper-parameter", TypeError, "unknown hyper-parameters|unexpected keyword",
            lambda: cls(no_such_parameter=1))


#: every predictor rule by name, in order: each takes (class, split, a fitted instance)
PREDICTOR_RULES: dict[str, Callable[[Any, Split, Any], str | None]] = {
    f.__name__.replace("_", " "): f for f in (
        learns, predictions_are_in_target_units, save_load_round_trips_exactly, deterministic_under_a_seed,
        return_std_gives_the_spread, relabellings_score_the_same, bad_input_is_refused_clearly)}


def fit_quick(cls, split: Split):
    """``cls`` with its ``quick_params`` and seed 0, fitted on the split's training cells."""
    return _quick(cls, seed=0).fit(split.train, split.train_y)


def predictor_outcomes(cls, split: Split | None = None) -> list[Outcome]:
    """Each rule's outcome for the predictor class ``cls`` on ``split``
    (default: ``nb201_split()``), fitted once with its ``quick_params``."""
    split = split or nb201_split()
    try:
        fitted = fit_quick(cls, split)
    except Exception as exc:   # noqa: BLE001
        return [Outcome(rule, failure=f"the fit failed: {type(exc).__name__}: {exc}") for rule in PREDICTOR_RULES]
    return _outcomes(PREDICTOR_RULES, cls, split, fitted)


def check_predictor(cls, split: Split | None = None) -> None:
    """Raise ``ConformanceError`` listing every rule the predictor class breaks."""
    _raise_broken(f"predictor {getattr(cls, 'name', cls.__name__)!r}", predictor_outcomes(cls, split),
                  len(PREDICTOR_RULES))


# -- strategies -------------------------------------------------------------------
def make_strategy(cls, seed: int = 0, space: SearchSpace | None = None, **params):
    """``cls`` on the 80-member toy space (``flownas.toys``); a strategy that
    takes a predictor gets the toy ridge and pools sized for so small a space."""
    import inspect
    from .toys import RidgePredictor, ToySpace
    accepted = inspect.signature(cls.__init__).parameters
    if "predictor" in accepted:
        params.setdefault("predictor", RidgePredictor())
        for key, value in (("num_mutations", 30), ("num_random", 10), ("num_children", 8)):
            if key in accepted:
                params.setdefault(key, value)
    return cls(space or ToySpace(), seed=seed, **params)


def drive(strategy, steps: int, evaluator=None, batch: int = 1, until: float | None = None) -> list:
    """ask/tell until ``steps`` outcomes, the value ``until``, or the strategy
    proposes nothing more; a failed evaluation is told as None. Returns (arch, value) pairs."""
    from .toys import ToyEvaluator
    evaluator = evaluator or ToyEvaluator()
    told: list = []
    while len(told) < steps and not (until is not None and told and told[-1][1] == until):
        archs = strategy.ask(batch)
        if not archs:
            break
        for arch in archs:
            try:
                value = evaluator.evaluate(arch).metrics["val"]
            except RuntimeError:
                value = None
            strategy.tell(arch, value, {"val": value, "size": 1.0})
            told.append((arch, value))
    return told


def proposes_each_member_once_until_none_is_left(cls) -> None:
    from .toys import ToySpace
    strategy = make_strategy(cls)
    told = drive(strategy, 500)
    keys = [a.key for a, _ in told]
    _require(len(keys) == len(set(keys)), "a member was proposed twice")
    _require(len(keys) == ToySpace().size(), f"{len(keys)} of the space's {ToySpace().size()} members proposed "
                                             "before it stopped proposing")
    for arch, _ in told:
        ToySpace().validate(arch)
    _require(strategy.ask(3) == [], "ask() proposes more after every member was told")


def proposes_only_feasible_members(cls) -> None:
    from .search.constraints import ConstrainedSpace, Constraint
    from .toys import ToyEvaluator, ToySpace
    space = ConstrainedSpace(ToySpace(), [Constraint("size", ToyEvaluator(), min=1, max=2)])   # 1 or 2 ops 'c'
    told = drive(make_strategy(cls, space=space), 500)
    counts = {ToySpace().chain(a).count("c") for a, _ in told}
    _require(counts <= {1, 2}, "a member outside the constraints was proposed")
    _require(len(told) == space.size(), f"{len(told)} of the {space.size()} feasible members proposed")


def a_seed_repeats_a_search(cls) -> None:
    runs = [[a.key for a, _ in drive(make_strategy(cls, seed=s), 30)] for s in (7, 7, 8)]
    _require(runs[0] == runs[1], "two searches with seed 7 proposed differently")
    _require(runs[0] != runs[2], "seeds 7 and 8 proposed the same search")


def a_batch_is_distinct_and_new(cls) -> None:
    strategy = make_strategy(cls)
    drive(strategy, 12)
    batch = strategy.ask(5)
    _require(len(batch) == 5 and len({a.key for a in batch}) == 5, "ask(5) did not give 5 distinct members")
    _require(not {a.key for a in batch} & {t.arch.key for t in strategy.history},
             "ask(5) proposed a member already told")


def takes_failures_and_results_it_did_not_ask_for(cls) -> None:
    from .toys import ToyEvaluator, ToySpace, score
    space, strategy, rng = ToySpace(), make_strategy(cls), np.random.default_rng(3)
    foreign: list = []
    while len(foreign) < 12:
        arch = space.sample(rng)
        if arch not in foreign:
            foreign.append(arch)
    for i, arch in enumerate(foreign):   # a warm start: some failed (None)
        strategy.tell(arch, None if i % 5 == 0 else score(space.chain(arch)), {"val": 1.0, "size": 1.0})
    proposed = drive(strategy, 20, evaluator=ToyEvaluator(fail="abab"))
    _require(not {a.key for a, _ in proposed} & {a.key for a in foreign}, "a member told before was proposed")
    _require(len(strategy.history) == 12 + len(proposed), "the history lost an outcome")


def a_fresh_copy_has_the_parameters_and_nothing_told(cls) -> None:
    strategy = make_strategy(cls, seed=5)
    drive(strategy, 15)
    fresh = strategy.fresh()
    _require(type(fresh) is type(strategy), f"fresh() made a {type(fresh).__name__}")
    _require(fresh.get_params().keys() == strategy.get_params().keys(), "fresh() has other parameters")
    _require(fresh.seed == 5 and fresh.history == [], "fresh() kept the history or lost the seed")
    _require([a.key for a, _ in drive(fresh, 15)] == [t.arch.key for t in strategy.history],
             "fresh() searches differently from the original")


def descriptions_are_json(cls) -> None:
    import json
    from .toys import ToySpace, score
    strategy = make_strategy(cls)
    for _ in range(25):
        (arch,) = strategy.ask(1)
        try:
            json.dumps(strategy.describe(arch))
        except TypeError as exc:
            raise ConformanceError(f"describe() is not JSON: {exc}") from None
        strategy.tell(arch, score(ToySpace().chain(arch)))


def reserved_members_are_not_proposed(cls) -> None:
    from .toys import ToySpace
    space, strategy = ToySpace(), make_strategy(cls)
    reserved = list(space.enumerate())[:40]
    strategy.reserve(reserved)
    told = drive(strategy, 200)
    _require(not {a.key for a, _ in told} & {a.key for a in reserved}, "a reserved member was proposed")
    _require(len(told) == space.size() - 40, f"{len(told)} of the {space.size() - 40} unreserved members proposed")


#: every strategy rule by name, in order: each takes the strategy class
STRATEGY_RULES: dict[str, Callable[[Any], str | None]] = {
    f.__name__.replace("_", " "): f for f in (
        proposes_each_member_once_until_none_is_left, proposes_only_feasible_members, a_seed_repeats_a_search,
        a_batch_is_distinct_and_new, takes_failures_and_results_it_did_not_ask_for,
        a_fresh_copy_has_the_parameters_and_nothing_told, descriptions_are_json, reserved_members_are_not_proposed)}


def strategy_outcomes(cls) -> list[Outcome]:
    """Each rule's outcome for the strategy class ``cls``, on the toy space."""
    return _outcomes(STRATEGY_RULES, cls)


def check_strategy(cls) -> None:
    """Raise ``ConformanceError`` listing every rule the strategy class breaks."""
    _raise_broken(f"strategy {cls.__name__!r}", strategy_outcomes(cls), len(STRATEGY_RULES))
