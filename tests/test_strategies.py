"""One suite that every registered strategy must pass (on a small space), plus
checks of what each strategy promises."""
import inspect
import json

import numpy as np
import pytest

from flownas.registry import STRATEGIES
from search_toys import RidgePredictor, ToyEvaluator, ToySpace, optimum, score

NAMES = STRATEGIES.names()


def make(name, seed=0, space=None, **params):
    cls = STRATEGIES.get(name)
    accepted = inspect.signature(cls.__init__).parameters
    if "predictor" in accepted:   # small pools: the toy space has 80 members
        params.setdefault("predictor", RidgePredictor())
        for key, value in (("num_mutations", 30), ("num_random", 10), ("num_children", 8)):
            if key in accepted:
                params.setdefault(key, value)
    return cls(space or ToySpace(), seed=seed, **params)


def drive(strategy, steps, evaluator=ToyEvaluator(), batch=1, until=None):
    """ask/tell until ``steps`` outcomes, the value ``until``, or the strategy has nothing left."""
    told = []
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


@pytest.fixture(params=NAMES)
def name(request):
    return request.param


def test_proposals_are_new_members_until_the_space_runs_out(name):
    strategy = make(name)
    told = drive(strategy, 500)
    keys = [a.key for a, _ in told]
    assert len(keys) == len(set(keys)) == ToySpace().size()      # every member once, then nothing
    for arch, _ in told:
        ToySpace().validate(arch)
    assert strategy.ask(3) == []


def test_under_constraints_every_proposal_is_feasible_until_none_is_left(name):
    from flownas.search.constraints import ConstrainedSpace, Constraint
    space = ConstrainedSpace(ToySpace(), [Constraint("size", ToyEvaluator(), min=1, max=2)])  # 1 or 2 ops 'c'
    told = drive(make(name, space=space), 500)
    counts = [ToySpace().chain(a).count("c") for a, _ in told]
    assert len(told) == space.size() == 4 * 2 ** 3 + 6 * 2 ** 2 and set(counts) == {1, 2}


def test_same_seed_same_search_other_seed_other_search(name):
    runs = [[a.key for a, _ in drive(make(name, seed=s), 30)] for s in (7, 7, 8)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_batches_are_distinct(name):
    strategy = make(name)
    drive(strategy, 12)
    batch = strategy.ask(5)
    assert len(batch) == 5 and len({a.key for a in batch}) == 5
    assert not (set(a.key for a in batch) & {t.arch.key for t in strategy.history})


def test_failures_and_foreign_results_are_taken(name):
    space = ToySpace()
    strategy = make(name)
    rng = np.random.default_rng(3)
    foreign = []
    while len(foreign) < 12:
        arch = space.sample(rng)
        if arch not in foreign:
            foreign.append(arch)
    for i, arch in enumerate(foreign):   # a warm start: results the strategy did not ask for
        strategy.tell(arch, None if i % 5 == 0 else score(space.chain(arch)), {"val": 1.0, "size": 1.0})
    proposed = drive(strategy, 20, evaluator=ToyEvaluator(fail="abab"))
    assert not {a.key for a, _ in proposed} & {a.key for a in foreign}
    assert len(strategy.history) == 12 + len(proposed)


def test_fresh_copy_has_the_parameters_and_nothing_told(name):
    strategy = make(name, seed=5)
    drive(strategy, 15)
    fresh = strategy.fresh()
    assert type(fresh) is type(strategy) and fresh.get_params().keys() == strategy.get_params().keys()
    assert fresh.seed == 5 and fresh.history == []
    assert [a.key for a, _ in drive(fresh, 15)] == [t.arch.key for t in strategy.history]


def test_descriptions_are_json(name):
    strategy = make(name)
    for _ in range(25):
        (arch,) = strategy.ask(1)
        json.dumps(strategy.describe(arch))
        strategy.tell(arch, score(ToySpace().chain(arch)))


def test_reserved_architectures_are_not_proposed(name):
    space = ToySpace()
    strategy = make(name)
    reserved = list(space.enumerate())[:40]
    strategy.reserve(reserved)
    told = drive(strategy, 200)
    assert len(told) == space.size() - 40
    assert not {a.key for a, _ in told} & {a.key for a in reserved}


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
])
def test_optuna_bad_parameters(params, message):
    from flownas.errors import ConfigError
    with pytest.raises(ConfigError, match=message):
        make("optuna", **params)


def test_unknown_acquisition_is_named():
    from flownas.errors import ConfigError
    with pytest.raises(ConfigError, match="unknown acquisition 'pi'"):
        make("predictor", acquisition="pi")
