"""``gbt``: gradient-boosted trees (scikit-learn's HistGradientBoostingRegressor)
on the path encoding (one column per input-to-output op sequence, as BANANAS).

With a validation split, the number of boosting rounds is chosen by the
validation Kendall tau; ensemble members differ by their feature subsampling
seed. Saved with pickle (load only files you trust).
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..arch import Architecture
from ..errors import ConfigError, DataError, NotFittedError
from ..registry import PREDICTORS
from .base import Predictor, check_archs, check_sizes, check_training_data, saved_file, short_reason
from .features import path_encoding, resolve_ops
from .metrics import kendall_tau
from .neural import FORMAT, FORMAT_VERSION


@PREDICTORS.register("gbt")
class GBTPredictor(Predictor):
    name = "gbt"
    quick_params = {"max_iter": 100}

    def __init__(self, max_iter: int = 500, learning_rate: float = 0.05, max_leaf_nodes: int = 15,
                 min_samples_leaf: int = 5, l2_regularization: float = 0.0, max_features: float = 0.7,
                 ensemble: int = 1, prune_ops: str | Sequence[str] = "auto",
                 contract_ops: str | Sequence[str] = "auto", seed: int = 0):
        self.max_iter, self.learning_rate, self.max_leaf_nodes = max_iter, learning_rate, max_leaf_nodes
        self.min_samples_leaf, self.l2_regularization = min_samples_leaf, l2_regularization
        self.max_features, self.ensemble, self.seed = max_features, ensemble, seed
        self.prune_ops = prune_ops if isinstance(prune_ops, str) else tuple(prune_ops)
        self.contract_ops = contract_ops if isinstance(contract_ops, str) else tuple(contract_ops)
        # scikit-learn would check these only at fit: a search's first refit
        check_sizes(self.get_params())   # max_iter, max_leaf_nodes, min_samples_leaf, ensemble
        for name, ok, rule in (("learning_rate", lambda v: v > 0, "> 0"),
                               ("l2_regularization", lambda v: v >= 0, ">= 0"),
                               ("max_features", lambda v: 0 < v <= 1, "in (0, 1]")):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(value):
                raise ConfigError(f"{name} must be a number {rule}, got {value!r}")

    def _model(self, seed: int, max_iter: int):
        from sklearn.ensemble import HistGradientBoostingRegressor
        return HistGradientBoostingRegressor(
            max_iter=max_iter, learning_rate=self.learning_rate, max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf, l2_regularization=self.l2_regularization,
            max_features=self.max_features, early_stopping=False, random_state=seed)

    def fit(self, archs: Sequence[Architecture], y: Sequence[float], *,
            low_fidelity: dict[str, Sequence[float]] | None = None,
            validation: tuple[Sequence[Architecture], Sequence[float]] | None = None) -> "GBTPredictor":
        archs, y, space, validation = check_training_data(archs, y, validation)
        skip = resolve_ops(self.prune_ops, space, "zero")
        ident = resolve_ops(self.contract_ops, space, "identity")
        # a path in fewer architectures than a leaf's minimum can never be split on
        X, paths = path_encoding(archs, skip_ops=skip, identity_ops=ident, max_paths=1024,
                                 min_archs=min(self.min_samples_leaf, max(1, len(archs) // 2)))
        if not paths:   # no path frequent enough (few, diverse archs): keep them all
            X, paths = path_encoding(archs, skip_ops=skip, identity_ops=ident, max_paths=1024)
        val = None
        if validation is not None:
            val = (path_encoding(validation[0], paths, skip_ops=skip, identity_ops=ident)[0], validation[1])
        models, rounds = [], []
        for k in range(self.ensemble):
            seed = (self.seed * 1009 + k) % 2**32   # scikit-learn takes 32-bit seeds
            model = self._model(seed, self.max_iter).fit(X, y)
            if val is not None:   # rounds by validation tau; the first k trees do not depend on max_iter
                taus = [kendall_tau(val[1], p) for p in model.staged_predict(val[0])]
                best = int(np.argmax(taus)) + 1
                if best < self.max_iter:
                    model = self._model(seed, best).fit(X, y)
                rounds.append(best)
            models.append(model)
        self.space_, self.skip_ops_, self.identity_ops_ = space, skip, ident
        self.paths_, self.models_, self.rounds_ = paths, models, rounds
        return self

    def predict(self, archs: Sequence[Architecture], *, return_std: bool = False):
        if not hasattr(self, "models_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit() first")
        archs = check_archs(archs, self.space_)
        X, _ = path_encoding(archs, self.paths_, skip_ops=self.skip_ops_, identity_ops=self.identity_ops_)
        preds = np.stack([m.predict(X) for m in self.models_])
        mean = preds.mean(0)
        return (mean, preds.std(0)) if return_std else mean

    def save(self, path: str | Path) -> None:
        if not hasattr(self, "models_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit() first")
        with open(path, "wb") as fh:
            pickle.dump({"format": FORMAT, "version": FORMAT_VERSION, "predictor": self.name,
                         "object": self}, fh)

    @classmethod
    def load(cls, path: str | Path) -> "GBTPredictor":
        with open(saved_file(path), "rb") as fh:
            try:
                state: Any = pickle.load(fh)
            except Exception as exc:
                raise DataError(f"{path}: not a saved flownas predictor ({short_reason(exc)})") from None
        if not isinstance(state, dict) or state.get("format") != FORMAT or state.get("version") != FORMAT_VERSION \
                or not isinstance(state.get("object"), GBTPredictor):
            raise DataError(f"{path}: not a saved flownas gbt predictor of version {FORMAT_VERSION}")
        return state["object"]
