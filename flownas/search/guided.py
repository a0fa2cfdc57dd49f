"""Predictor-guided strategies: ``predictor`` (BANANAS / NPENAS style) and
``predictor-evolution`` (regularized evolution whose children are screened).

Both rank candidates with a predictor ensemble through an acquisition
function (``mean``; ``ucb`` = mean + beta * std; ``ts`` = independent
Thompson sampling, one draw from N(mean, std) per candidate) and refit the
ensemble on everything evaluated so far.
"""
from __future__ import annotations

from collections import deque
from typing import Any, Mapping, Sequence

import numpy as np

from ..arch import Architecture
from ..errors import ConfigError
from ..predictors.base import Predictor
from ..registry import PREDICTORS, STRATEGIES
from ..spaces.base import SearchSpace
from .base import Strategy
from .simple import RegularizedEvolution

ACQUISITIONS = ("mean", "ucb", "ts")
# "auto" picks the first of these that is registered
PREFERRED_PREDICTORS = ("flowerformer", "gcn", "mlp")


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
            self._cls, self._params = PREDICTORS.get(resolve_predictor_name(spec.pop("name", "auto"))), spec
        hyper = self._cls(**self._params).get_params()
        if "ensemble" in hyper and "ensemble" in self._params and not isinstance(spec, Predictor):
            raise ConfigError("predictor.ensemble: set the ensemble size with the strategy's ensemble")
        self._native = "ensemble" in hyper
        self._seeded = "seed" in hyper
        self.size = size
        self.seed = seed
        self.members: list[Predictor] = []
        self.num_fits = 0

    def _seed(self, member: int) -> int:
        return int(np.random.default_rng([self.seed, self.num_fits, member]).integers(2**31))

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

    def rank(self, archs: Sequence[Architecture], origins: Sequence[str], keep: int) -> list[Architecture]:
        """The ``keep`` best of ``archs`` by the acquisition, best first; notes
        what was predicted about them for ``describe``."""
        mean, std = self.surrogate.predict(archs, need_std=self.acquisition != "mean")
        if self.acquisition == "mean":
            score = mean
        elif self.acquisition == "ucb":
            score = mean + self.beta * std
        else:
            score = self.rng.normal(mean, std)
        order = np.argsort(-score, kind="stable")[:keep]
        fit = self.surrogate.num_fits
        for i in order:
            self._notes[archs[i].key] = {"origin": origins[i], "predicted": float(mean[i]),
                                         "predicted_std": float(std[i]), "acquisition": float(score[i]),
                                         "fit": fit}
        return [archs[i] for i in order]

    def describe(self, arch: Architecture) -> dict[str, Any]:
        return self._notes.pop(arch.key, {"origin": "random"})


@STRATEGIES.register("predictor")
class PredictorSearch(_Guided, Strategy):
    """BANANAS / NPENAS-style predictor-guided search.

    ``num_init`` random architectures first; then rounds: refit the ensemble
    on everything evaluated, build a pool of ``num_mutations`` mutants (1 to
    ``max_mutation_steps`` steps) of the ``num_parents`` best architectures
    plus ``num_random`` random ones, and queue the ``top_k`` best by the
    acquisition. A new round starts when the queue is empty, so the predictor
    is refit every ``top_k`` evaluations (sooner with several workers).
    """

    def __init__(self, space: SearchSpace, *, seed: int = 0, predictor: Any = "auto", ensemble: int = 5,
                 acquisition: str = "ucb", beta: float = 1.0, num_init: int = 10, top_k: int = 10,
                 num_parents: int = 10, num_mutations: int = 200, max_mutation_steps: int = 2,
                 num_random: int = 50):
        Strategy.__init__(self, space, seed=seed)
        for name, v in (("num_init", num_init), ("top_k", top_k), ("num_parents", num_parents),
                        ("max_mutation_steps", max_mutation_steps)):
            if v < 1:
                raise ValueError(f"{name} must be at least 1, got {v}")
        self.num_init = num_init
        self.top_k = top_k
        self.num_parents = num_parents
        self.num_mutations = num_mutations
        self.max_mutation_steps = max_mutation_steps
        self.num_random = num_random
        self._init_guide(predictor, ensemble, acquisition, beta)
        self._queue: deque[Architecture] = deque()

    def _propose(self) -> Architecture | None:
        if self.num_known < self.num_init or len(self.successes()) < 2:
            return self.sample_new()
        while self._queue:
            arch = self._queue.popleft()
            if self.is_new(arch):
                return arch
        if len(self.successes()) > self._fitted_on:
            self.refit()
        pool, origins = self.pool()
        if not pool:
            return self.sample_new()
        self._queue.extend(self.rank(pool, origins, self.top_k))
        return self._queue.popleft()

    def pool(self) -> tuple[list[Architecture], list[str]]:
        """New candidates: mutants of the best, then random samples (no duplicates)."""
        parents = [t.arch for t in self.best(self.num_parents)]
        out: dict[str, tuple[Architecture, str]] = {}
        for i in range(self.num_mutations):
            arch = parents[i % len(parents)]
            for _ in range(1 + int(self.rng.integers(self.max_mutation_steps))):
                arch = self.space.mutate(arch, self.rng)
            arch = self.space.normalize(arch)
            if self.is_new(arch):
                out.setdefault(arch.key, (arch, "mutation"))
        for _ in range(self.num_random):
            arch = self.space.normalize(self.space.sample(self.rng))
            if self.is_new(arch):
                out.setdefault(arch.key, (arch, "random"))
        return [a for a, _ in out.values()], [o for _, o in out.values()]


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
        return self.rank(kids, ["mutation"] * len(kids), 1)[0]
