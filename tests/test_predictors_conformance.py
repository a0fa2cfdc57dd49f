"""Every registered predictor follows the rules of ``flownas.conformance``
(parametrized over the PREDICTORS registry), so a new one is checked the day
it is registered. Each runs with its ``quick_params`` on a small NB201 split.
The rules ship in the package (``check_predictor``), so a plug-in's author
runs the same ones; the last tests check that they catch a broken predictor."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from flownas.conformance import (PREDICTOR_RULES, ConformanceError, Split, check_predictor, fit_quick,
                                 predictor_outcomes)
from flownas.registry import PREDICTORS
from flownas.predictors.base import check_archs, check_targets
from flownas.toys import RidgePredictor, ToySpace

NAMES = PREDICTORS.names()
# one xdist worker per predictor (make test: --dist loadgroup), so the module's
# fitted predictor is fitted once per predictor, not once per worker
GROUPED = [pytest.param(n, marks=pytest.mark.xdist_group(f"predictor-{n}")) for n in NAMES]


@pytest.fixture(scope="module")
def split(nb201_table):
    from flownas.conformance import nb201_split
    return nb201_split()


@pytest.fixture(scope="module")
def fitted(split):
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = fit_quick(PREDICTORS.get(name), split)
        return cache[name]
    return get


def test_the_registry_has_the_zoo():
    assert {"mlp", "gcn", "gbt", "flowerformer"} <= set(NAMES)


@pytest.mark.parametrize("rule", list(PREDICTOR_RULES))
@pytest.mark.parametrize("name", GROUPED)
def test_the_predictor_follows_the_rule(name, rule, split, fitted):
    note = PREDICTOR_RULES[rule](PREDICTORS.get(name), split, fitted(name))
    if note:
        pytest.skip(f"{rule}: {note}")


# -- the rules catch what they are about ------------------------------------------
def toy_split(n_train=40, n_test=39) -> Split:
    """The toy space's 79 cells, scored by the toy evaluator's objective."""
    from flownas.toys import ToyEvaluator
    archs = list(ToySpace().enumerate())
    y = np.array([ToyEvaluator().evaluate(a).metrics["val"] for a in archs])
    perm = np.random.default_rng(0).permutation(len(archs))[:n_train + n_test]
    return Split([archs[i] for i in perm[:n_train]], y[perm[:n_train]],
                 [archs[i] for i in perm[n_train:]], y[perm[n_train:]])


class Ridge(RidgePredictor):
    """The smallest predictor that follows every rule: the toy one-hot (position
    x op) ridge regression (its encoding), with a seed, an ensemble of bootstrap
    resamples drawn with it, its space checked and a clear error before fit."""

    permutation_invariant = True   # it reads the ops in topological order

    def __init__(self, alpha: float = 1.0, ensemble: int = 1, seed: int | None = None):
        self.alpha, self.ensemble, self.seed = alpha, ensemble, seed

    def fit(self, archs, y, *, low_fidelity=None):
        archs = check_archs(archs)
        y = check_targets(y, len(archs))
        self.space_, self.vocab_ = archs[0].space, sorted({op for a in archs for op in a.ops})
        x, rng = self._x(archs), np.random.default_rng(self.seed)
        rows = [np.arange(len(y))] + [rng.integers(0, len(y), len(y)) for _ in range(self.ensemble - 1)]
        self.coef_ = np.array([np.linalg.solve(x[r].T @ x[r] + self.alpha * np.eye(x.shape[1]), x[r].T @ y[r])
                               for r in rows])
        return self

    def predict(self, archs, *, return_std=False):
        if not hasattr(self, "coef_"):
            raise RuntimeError("this Ridge is not fitted yet: call fit() first")
        scores = self._x(check_archs(archs, self.space_)) @ self.coef_.T
        return (scores.mean(1), scores.std(1)) if return_std else scores.mean(1)

    def save(self, path):
        Path(path).write_text(json.dumps({**self.get_params(), "space": self.space_, "vocab": self.vocab_,
                                          "coef": self.coef_.tolist()}))

    @classmethod
    def load(cls, path):
        d = json.loads(Path(path).read_text())
        p = cls(d["alpha"], d["ensemble"], d["seed"])
        p.space_, p.vocab_, p.coef_ = d["space"], d["vocab"], np.array(d["coef"])
        return p


class ForgetfulRidge(Ridge):
    """Loses its weights on the way to disk."""

    def save(self, path):
        coef, self.coef_ = self.coef_, np.zeros_like(self.coef_)
        super().save(path)
        self.coef_ = coef


class OffsetRidge(Ridge):
    """Predicts in other units than it was given (a forgotten de-standardization)."""

    def predict(self, archs, *, return_std=False):
        out = super().predict(archs, return_std=return_std)
        return (out[0] - 100, out[1]) if return_std else out - 100


def test_a_predictor_that_follows_the_rules_passes():
    outcomes = {o.rule: o for o in predictor_outcomes(Ridge, toy_split())}
    assert all(o.ok for o in outcomes.values()), outcomes
    check_predictor(Ridge, toy_split())


@pytest.mark.parametrize("broken, rule, reason", [
    (ForgetfulRidge, "save load round trips exactly", "predictions differ after save and load"),
    (OffsetRidge, "predictions are in target units", "away from the mean target"),
])
def test_a_broken_predictor_is_refused_naming_the_rule(broken, rule, reason):
    outcomes = {o.rule: o for o in predictor_outcomes(broken, toy_split())}
    assert not outcomes[rule].ok and reason in outcomes[rule].failure
    with pytest.raises(ConformanceError, match=f"predictor .* breaks .* rules: .*{rule}: "):
        check_predictor(broken, toy_split())
