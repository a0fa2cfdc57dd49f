"""Predictor-guided strategies: ``predictor`` (BANANAS / NPENAS style) and
``predictor-evolution`` (regularized evolution whose children are screened).

Both rank candidates with a predictor ensemble through an acquisition
function (``mean``; ``ucb`` = mean + beta * std; ``ts`` = independent
Thompson sampling, one draw from N(mean, std) per candidate) and refit the
ensemble on everything evaluated so far.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..arch import Architecture
from ..errors import ConfigError, construct, key_error
from ..predictors.base import Predictor
from ..registry import PREDICTORS, STRATEGIES
from ..spaces.base import SearchSpace
from .base import Strategy
from .simple import RegularizedEvolution

ACQUISITIONS = ("mean", "ucb", "ts")
# "auto" picks the first of these that is registered
PREFERRED_PREDICTORS = ("flowerformer", "gcn", "mlp")
# ... with these settings: the experiments' (BENCHMARKS.md, "Search"), a fraction of the predictor's own
# defaults' cost, which are sized for a predictor trained once on many architectures
AUTO_SETTINGS = {"flowerformer": {"epochs": 50, "dim": 32, "layers": 2, "batch_size": 32, "lr": 8e-4}}


def resolve_predictor_name(name: str) -> str:
    if name != "auto":
        return name
    for candidate in PREFERRED_PREDICTORS:
        if candidate in PREDICTORS:
            return candidate
    raise ConfigError(f"no predictor is registered for predictor: auto (looked for {', '.join(PREFERRED_PREDICTORS)})")


class Surrogate:
    """An ensemble of ``size`` predictors of one kind.

    A predictor with its own ``ensemble`` hyper-parameter (the neural ones)
    trains the members itself; otherwise members differ by ``seed`` when the
    predictor takes one, else by a bootstrap resample of the data. Every fit
    gets fresh seeds derived from the strategy's seed and the fit number.
    """

    def __init__(self, spec: str | Mapping[str, Any] | Predictor, size: int, seed: int):
        if size < 1:
            raise ValueError(f"ensemble must be at least 1, got {size}")
        if isinstance(spec, Predictor):
            self._cls, self._params = type(spec), spec.get_params()
        else:
            spec = {"name": spec} if isinstance(spec, str) else dict(spec)
            given = spec.pop("name", "auto")
            name = resolve_predictor_name(given)
            if given == "auto":
                spec = {**AUTO_SETTINGS.get(name, {}), **spec}
            self._cls, self._params = PREDICTORS.get(name), spec
        hyper = construct("predictor", self._cls, **self._params).get_params()
        if "ensemble" in hyper and "ensemble" in self._params and not isinstance(spec, Predictor):
            raise ConfigError("predictor.ensemble: set the ensemble size with the strategy's ensemble")
        self._native = "ensemble" in hyper
        self._seeded = "seed" in hyper
        self.size = size
        self.seed = seed
        self.members: list[Predictor] = []
        self.num_fits = 0

    def _seed(self, member: int) -> int:
        # below 2**22: predictors derive their members' seeds from it by
        # arithmetic (gbt: seed * 1009 + k), which must stay within 32 bits
        return int(np.random.default_rng([self.seed, self.num_fits, member]).integers(2**22))

    def fit(self, archs: Sequence[Architecture], y: Sequence[float]) -> None:
        y = np.asarray(y, dtype=float)
        if self._native:
            params = {**self._params, "ensemble": self.size, "seed": self._seed(0)}
            self.members = [self._cls(**params).fit(archs, y)]
        else:
            rng = np.random.default_rng([self.seed, self.num_fits])
            self.members = []
            for i in range(self.size):
                params, rows = dict(self._params), np.arange(len(archs))
                if self._seeded:
                    params["seed"] = self._seed(i)
                elif self.size > 1:
                    rows = rng.integers(0, len(archs), len(archs))
                self.members.append(self._cls(**params).fit([archs[r] for r in rows], y[rows]))
        self.num_fits += 1

    def predict(self, archs: Sequence[Architecture], need_std: bool) -> tuple[np.ndarray, np.ndarray]:
        """Mean and spread of the members' predictions."""
        if len(self.members) == 1:
            if need_std:
                mean, std = self.members[0].predict(archs, return_std=True)
                return np.asarray(mean, float), np.asarray(std, float)
            mean = np.asarray(self.members[0].predict(archs), float)
            return mean, np.zeros_like(mean)
        preds = np.stack([np.asarray(m.predict(archs), float) for m in self.members])
        return preds.mean(0), preds.std(0)


class _Guided:
    """What both guided strategies share: the surrogate, its refits, the acquisition."""

    def _init_guide(self, predictor, ensemble: int, acquisition: str, beta: float) -> None:
        if acquisition not in ACQUISITIONS:
            raise ConfigError(f"unknown acquisition {acquisition!r} (known: {', '.join(ACQUISITIONS)})")
        if not (isinstance(beta, (int, float)) and np.isfinite(beta) and beta >= 0):   # NaN: every score NaN
            raise ConfigError(f"beta must be a finite number >= 0, got {beta!r}")
        self.predictor = predictor
        self.ensemble = ensemble
        self.acquisition = acquisition
        self.beta = beta
        self.surrogate = Surrogate(predictor, ensemble, self.seed)
        self._fitted_on = 0          # successes the surrogate was last fitted on
        self._notes: dict[str, dict[str, Any]] = {}

    def refit(self) -> None:
        """Fit the surrogate on every successful outcome so far."""
        done = self.successes()
        self.surrogate.fit([t.arch for t in done], [t.value for t in done])
        self._fitted_on = len(done)

    def score(self, archs: Sequence[Architecture]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Predicted mean, spread and acquisition value of each architecture."""
        mean, std = self.surrogate.predict(archs, need_std=self.acquisition != "mean")
        if self.acquisition == "mean":
            return mean, std, mean
        if self.acquisition == "ucb":
            return mean, std, mean + self.beta * std
        return mean, std, self.rng.normal(mean, std)

    def note(self, arch: Architecture, origin: str, mean: float, std: float, acquisition: float) -> None:
        """Remember what was predicted about a proposal, for ``describe``."""
        self._notes[arch.key] = {"origin": origin, "predicted": float(mean), "predicted_std": float(std),
                                 "acquisition": float(acquisition), "fit": self.surrogate.num_fits}

    def describe(self, arch: Architecture) -> dict[str, Any]:
        return self._notes.pop(arch.key, {"origin": "random"})


@STRATEGIES.register("predictor")
class PredictorSearch(_Guided, Strategy):
    """BANANAS / NPENAS-style predictor-guided search.

    ``num_init`` random architectures first. Then each proposal is the best
    candidate of a pool by the acquisition function; the pool holds mutants
    (1 to ``max_mutation_steps`` steps) of the ``num_parents`` best
    architectures, ``num_mutations / num_parents`` per parent, added at each
    refit and as soon as an architecture becomes a parent, plus
    ``num_random`` random samples added at each refit; with ``neighbours``
    each parent also brings every member one parameter change away
    (``SearchSpace.neighbours``), so the pool holds the parents' whole
    neighbourhoods. The ensemble is refit on everything evaluated
    every ``refit_every`` results, and the pool then rescored. ``ask(k)``
    returns the top-k; one proposal at a time (with several workers) always
    takes the best candidate given everything known so far.
    """

    def __init__(self, space: SearchSpace, *, seed: int = 0, predictor: Any = "auto", ensemble: int = 5,
                 acquisition: str = "ucb", beta: float = 1.0, num_init: int = 10, refit_every: int = 10,
                 num_parents: int = 5, num_mutations: int = 200, max_mutation_steps: int = 2,
                 num_random: int = 50, neighbours: bool = True):
        Strategy.__init__(self, space, seed=seed)
        for name, v in (("num_init", num_init), ("refit_every", refit_every), ("num_parents", num_parents),
                        ("max_mutation_steps", max_mutation_steps)):
            if v < 1:
                raise ValueError(f"{name} must be at least 1, got {v}")
        for name, v in (("num_mutations", num_mutations), ("num_random", num_random)):
            if v < 0:
                raise ConfigError(f"{name} must be at least 0, got {v}")
        self.num_init = num_init
        self.refit_every = refit_every
        self.num_parents = num_parents
        self.num_mutations = num_mutations
        self.max_mutation_steps = max_mutation_steps
        self.num_random = num_random
        self.neighbours = bool(neighbours)
        self._init_guide(predictor, ensemble, acquisition, beta)
        self._pool: dict[str, tuple[Architecture, str]] = {}           # key -> (candidate, origin)
        self._scores: dict[str, tuple[float, float, float]] = {}       # key -> (mean, std, acquisition)
        self._expanded: set[str] = set()                                # parents whose mutants are in the pool

    def _propose(self) -> Architecture | None:
        if self.num_known < self.num_init or len(self.successes()) < 2:
            return self.sample_new()
        if self.surrogate.num_fits == 0 or len(self.successes()) - self._fitted_on >= self.refit_every:
            self.refit()
            self._scores = {}
            self._expanded = set()   # fresh mutants of every parent at each refit
            self._add(self.space.sample(self.rng) for _ in range(self.num_random))
        for told in self.best(self.num_parents):
            if told.arch.key not in self._expanded:
                self._expanded.add(told.arch.key)
                self._add((self._mutant(told.arch) for _ in range(-(-self.num_mutations // self.num_parents))),
                          "mutation")
                if self.neighbours:
                    self._add(self.space.neighbours(told.arch), "neighbour")
        for key in [k for k, (a, _) in self._pool.items() if not self.is_new(a)]:
            del self._pool[key]
        if not self._pool:
            return self.sample_new()
        fresh = [a for k, (a, _) in self._pool.items() if k not in self._scores]
        if fresh:
            for arch, values in zip(fresh, zip(*self.score(fresh))):
                self._scores[arch.key] = values
        key = max(self._pool, key=lambda k: self._scores[k][2])   # the first of equals: insertion order
        arch, origin = self._pool.pop(key)
        self.note(arch, origin, *self._scores[key])
        return arch

    def _mutant(self, parent: Architecture) -> Architecture:
        for _ in range(1 + int(self.rng.integers(self.max_mutation_steps))):
            parent = self.space.mutate(parent, self.rng)
        return parent

    def _add(self, archs, origin: str = "random") -> None:
        for arch in archs:
            arch = self.space.normalize(arch)
            if self.is_new(arch):
                self._pool.setdefault(arch.key, (arch, origin))


@STRATEGIES.register("dele")
class DELESearch(PredictorSearch):
    """``predictor`` ranked by DELE (``flownas/predictors/dele.py``): a
    FlowerFormer encoder with one expert per low-fidelity signal, pre-trained
    once on the space's whole table and fine-tuned on the evaluated cells at
    every refit. By default the experts are the signals that cost no training
    (``ZERO_COST``: NB201 params and NASWOT, NB101 params); ``predictor`` sets
    DELE's hyper-parameters (``signals: [acc_12, params, naswot]`` adds the
    12-epoch accuracies, which are trainings of every cell); a ready
    ``Predictor`` instance is used as given."""

    def __init__(self, space: SearchSpace, *, seed: int = 0, predictor: Any = None, ensemble: int = 3,
                 acquisition: str = "ucb", beta: float = 1.0, num_init: int = 10, refit_every: int = 10,
                 num_parents: int = 5, num_mutations: int = 200, max_mutation_steps: int = 2,
                 num_random: int = 50, neighbours: bool = True):
        self.predictor_spec = predictor     # as given, for get_params / fresh
        if not isinstance(predictor, Predictor):
            spec = {"name": "dele"} if predictor is None else (
                {"name": predictor} if isinstance(predictor, str) else dict(predictor))
            if spec.setdefault("name", "dele") != "dele":
                raise ConfigError(f"predictor: the dele strategy ranks with the dele predictor, not "
                                  f"{spec['name']!r} (use strategy: predictor for other predictors)")
            from ..evaluators.lowfidelity import check_signals, zero_cost_signals
            if "signals" not in spec:
                try:
                    spec["signals"] = list(zero_cost_signals(space.name))
                except ConfigError as exc:
                    raise ConfigError(f"strategy dele: {exc}") from None
            elif spec.get("signal_source", "table") == "table":   # a typo fails now, not at the first refit
                try:
                    check_signals(space.name, spec["signals"], spec.get("dataset", "cifar10"))
                except ConfigError as exc:
                    raise key_error("predictor.signals", exc) from None
            predictor = spec
        super().__init__(space, seed=seed, predictor=predictor, ensemble=ensemble, acquisition=acquisition,
                         beta=beta, num_init=num_init, refit_every=refit_every, num_parents=num_parents,
                         num_mutations=num_mutations, max_mutation_steps=max_mutation_steps,
                         num_random=num_random, neighbours=neighbours)

    def get_params(self) -> dict[str, Any]:
        return {**super().get_params(), "predictor": self.predictor_spec}


@STRATEGIES.register("predictor-evolution")
class PredictorEvolution(_Guided, RegularizedEvolution):
    """Regularized evolution whose children are screened by the predictor:
    each proposal is the best of ``num_children`` tournament mutants by the
    acquisition; the ensemble is refit every ``refit_every`` evaluations."""

    def __init__(self, space: SearchSpace, *, seed: int = 0, population_size: int = 20,
                 sample_size: int = 5, predictor: Any = "auto", ensemble: int = 5, acquisition: str = "ucb",
                 beta: float = 1.0, num_children: int = 20, refit_every: int = 10):
        RegularizedEvolution.__init__(self, space, seed=seed, population_size=population_size,
                                      sample_size=sample_size)
        if num_children < 1 or refit_every < 1:
            raise ValueError("num_children and refit_every must be at least 1")
        self.num_children = num_children
        self.refit_every = refit_every
        self._init_guide(predictor, ensemble, acquisition, beta)

    def _propose(self) -> Architecture | None:
        if self.num_known < self.population_size or len(self.successes()) < 2 or not self.population:
            return self.sample_new()
        if self.surrogate.num_fits == 0 or len(self.successes()) - self._fitted_on >= self.refit_every:
            self.refit()
        children: dict[str, Architecture] = {}
        for _ in range(self.num_children):
            child = self.mutate_new(self.tournament())
            if child is None:
                break   # the neighbourhood is all known
            children.setdefault(child.key, child)
        if not children:
            return self.sample_new()
        kids = list(children.values())
        mean, std, acquisition = self.score(kids)
        best = int(np.argmax(acquisition))
        self.note(kids[best], "mutation", mean[best], std[best], acquisition[best])
        return kids[best]
