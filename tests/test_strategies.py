"""Every registered strategy follows the rules of ``flownas.conformance``
(on the toy space of ``flownas.toys``), so a new one is checked the day it is
registered; a strategy of your own runs the same ones (``check_strategy``).
Then checks of what each strategy promises."""

import numpy as np
import pytest

from flownas.conformance import (STRATEGY_RULES, ConformanceError, check_strategy, drive, make_strategy,
                                 strategy_outcomes)
from flownas.registry import STRATEGIES
from flownas.search.simple import RandomSearch
from flownas.toys import ToySpace, optimum, score

NAMES = STRATEGIES.names()


def make(name, seed=0, space=None, **params):
    return make_strategy(STRATEGIES.get(name), seed=seed, space=space, **params)


@pytest.mark.parametrize("rule", list(STRATEGY_RULES))
@pytest.mark.parametrize("name", NAMES)
def test_the_strategy_follows_the_rule(name, rule):
    note = STRATEGY_RULES[rule](STRATEGIES.get(name))
    if note:
        pytest.skip(f"{rule}: {note}")


# -- the rules catch what they are about ------------------------------------------
class Unseeded(RandomSearch):
    """Draws from a generator of its own, not from its seed."""

    def _propose(self):
        for _ in range(1000):
            arch = self.space.sample(np.random.default_rng())
            if self.is_new(arch):
                return arch
        return None


class PositionalParameters(RandomSearch):
    """Parameters that are not keyword-only (get_params took only those: fresh() lost them)."""

    def __init__(self, space, seed=0, num_init=3):
        super().__init__(space, seed=seed)
        self.num_init = num_init


def test_a_strategy_that_follows_the_rules_passes():
    check_strategy(RandomSearch)
    check_strategy(PositionalParameters)
    copy = PositionalParameters(ToySpace(), 5, 7).fresh()
    assert (copy.seed, copy.num_init) == (5, 7)


@pytest.mark.parametrize("broken, rule, reason", [
    (Unseeded, "a seed repeats a search", "two searches with seed 7 proposed differently"),
])
def test_a_broken_strategy_is_refused_naming_the_rule(broken, rule, reason):
    outcomes = {o.rule: o for o in strategy_outcomes(broken)}
    assert not outcomes[rule].ok and reason in outcomes[rule].failure
    with pytest.raises(ConformanceError, match=f"strategy 'Unseeded' breaks .* rules: .*{rule}: "):
        check_strategy(broken)


# -- what single strategies promise -------------------------------------------------
def test_evolution_keeps_the_youngest_population():
    strategy = make("evolution", population_size=6, sample_size=2)
    drive(strategy, 20)
    assert [t.arch.key for t in strategy.population] == [t.arch.key for t in strategy.history[-6:]]


def test_predictor_search_refits_every_k_results_and_explains_its_choices():
    strategy = make("predictor", num_init=8, refit_every=5, ensemble=3, acquisition="ucb")
    infos = []
    for _ in range(28):
        (arch,) = strategy.ask(1)
        infos.append(strategy.describe(arch))
        strategy.tell(arch, score(ToySpace().chain(arch)))
    assert all(i == {"origin": "random"} for i in infos[:8])
    fits = [i["fit"] for i in infos[8:]]
    assert fits == sorted(fits) and fits[0] == 1 and fits[-1] == 4 and fits.count(1) == 5
    assert all({"predicted", "predicted_std", "acquisition", "origin"} <= i.keys() for i in infos[8:])
    assert strategy.surrogate.num_fits == 4


def test_predictor_search_with_neighbours_pools_each_parents_whole_neighbourhood():
    strategy = make("predictor", num_init=6, refit_every=50, num_parents=2, num_mutations=2, num_random=0,
                    neighbours=True)
    drive(strategy, 6)
    strategy.ask(1)   # the first guided proposal: refit, then the parents' neighbourhoods join the pool
    parents = [t.arch for t in strategy.best(2)]
    expected = {n.key for p in parents for n in ToySpace().neighbours(p) if strategy.is_new(n)}
    assert expected and expected <= set(strategy._pool)
    assert any(origin == "neighbour" for _, origin in strategy._pool.values())
    plain = make("predictor", num_init=6, refit_every=50, num_parents=2, num_mutations=2, num_random=0,
                 neighbours=False)
    drive(plain, 6)
    plain.ask(1)
    assert len(plain._pool) < len(expected)


@pytest.mark.parametrize("acquisition", ["mean", "ucb", "ts"])
def test_predictor_search_finds_the_toy_optimum_faster_than_random(acquisition):
    def evals_to_optimum(name, seed, **kw):
        return len(drive(make(name, seed=seed, **kw), 80, until=optimum()))
    guided = [evals_to_optimum("predictor", s, num_init=5, refit_every=3, acquisition=acquisition) for s in range(6)]
    rand = [evals_to_optimum("random", s) for s in range(6)]
    assert np.median(guided) < np.median(rand)


def test_predictor_evolution_screens_children_after_the_population_fills():
    strategy = make("predictor-evolution", population_size=6, sample_size=3, refit_every=4)
    infos = []
    for _ in range(20):
        (arch,) = strategy.ask(1)
        infos.append(strategy.describe(arch))
        strategy.tell(arch, score(ToySpace().chain(arch)))
    assert all(i == {"origin": "random"} for i in infos[:6])
    assert all("predicted" in i for i in infos[6:])
    assert strategy.surrogate.num_fits == 4   # at 6, 10, 14 and 18 results


def test_optuna_tells_invalid_parameters_as_failed():
    strategy = make("optuna", sampler="bruteforce")
    drive(strategy, 200)
    from optuna.trial import TrialState
    failed = [t for t in strategy._study.trials if t.state == TrialState.FAIL]
    assert any(set(t.params.values()) == {"c"} for t in failed)


def test_optuna_several_objectives_use_nsga2():
    import optuna
    strategy = make("optuna", objectives=["val", "size:min"])
    assert isinstance(strategy._study.sampler, optuna.samplers.NSGAIISampler)
    assert len(strategy._study.directions) == 2
    told = drive(strategy, 30)
    assert len(told) == 30


@pytest.mark.parametrize("params, message", [
    ({"sampler": "nope"}, "unknown Optuna sampler"),
    ({"objectives": ["val:up"]}, "must be min or max"),
    ({"sampler": "cmaes"}, "CMA-ES samples continuous parameters, and a space's are categorical"),   # was random
    ({"sampler": "CmaEsSampler"}, "it would sample at random"),
])
def test_optuna_bad_parameters(params, message):
    from flownas.errors import ConfigError
    with pytest.raises(ConfigError, match=message):
        make("optuna", **params)


def test_unknown_acquisition_is_named():
    from flownas.errors import ConfigError
    with pytest.raises(ConfigError, match="unknown acquisition 'pi'"):
        make("predictor", acquisition="pi")


def test_plugins_are_found_in_the_plural_entry_point_groups(monkeypatch):
    """Before: strategies were looked up in the group 'flownas.strategys', so a package that
    declared 'flownas.strategies' was silently ignored."""
    import importlib.metadata

    from flownas.registry import BENCHMARKS, EVALUATORS, EXECUTORS, PREDICTORS, SPACES
    assert [r.group for r in (SPACES, PREDICTORS, STRATEGIES, EVALUATORS, BENCHMARKS, EXECUTORS)] == [
        "flownas.spaces", "flownas.predictors", "flownas.strategies", "flownas.evaluators",
        "flownas.benchmarks", "flownas.executors"]
    plugin = importlib.metadata.EntryPoint("random-plugin", "flownas.search.simple:RandomSearch",
                                           "flownas.strategies")
    real = importlib.metadata.entry_points
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group: [plugin] if group == "flownas.strategies" else real(group=group))
    monkeypatch.setattr(STRATEGIES, "_entries", dict(STRATEGIES._entries))
    monkeypatch.setattr(STRATEGIES, "_discovered", False)
    assert STRATEGIES.get("random-plugin") is RandomSearch
    with pytest.raises(Exception, match="installed as a flownas.strategies plug-in"):
        STRATEGIES.get("no-such-thing-at-all")


def test_predictor_auto_takes_the_settings_benchmarked_for_search():
    """Before: the flags-only default search refit FlowerFormer with its own defaults (dim 64, 4 layers,
    300 epochs), about ten times the cost of the benchmarked search settings."""
    from flownas.search.guided import AUTO_SETTINGS, Surrogate
    assert Surrogate("auto", 1, 0)._params == AUTO_SETTINGS["flowerformer"] == {
        "epochs": 50, "dim": 32, "layers": 2, "batch_size": 32, "lr": 8e-4}
    assert Surrogate({"name": "auto", "dim": 16}, 1, 0)._params["dim"] == 16   # what is given wins
    assert Surrogate("flowerformer", 1, 0)._params == {}                       # named: its own defaults


def test_tell_refuses_what_is_no_architecture_of_the_space():
    """Python API walkthrough P9: another space's architecture was taken, and failed at the next ask."""
    from flownas.errors import ArchitectureError
    from flownas.registry import get_space
    strategy = make("random")
    with pytest.raises(ArchitectureError, match="tell: the architecture belongs to space 'nb201', not to the "
                                                "searched space 'toy'"):
        strategy.tell(get_space("nb201").sample(np.random.default_rng(0)), 1.0)
    with pytest.raises(ArchitectureError, match="tell: expected an Architecture, got str"):
        strategy.tell("abab", 1.0)
    assert strategy.history == []
