"""A saved predictor's estimate as a metric: the cheap stand-in for a
measurement, e.g. latency on a device in a space whose latency table covers
only a sample of it (FBNet, OFA MobileNetV3). As a search constraint it
keeps the search within a latency bound it cannot look up
(docs/search.md, "Constraints")."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..arch import Architecture
from ..errors import ArchitectureError, ConfigError, FlownasError
from ..registry import EVALUATORS
from .base import Evaluator, Result

# narformer_v2 for latency, as benchmarked (BENCHMARKS.md, "Universal latency
# prediction"): log-latency MSE, no flow augmentation (a chain has one order)
LATENCY_SETTINGS = dict(dim=64, layers=3, freqs=16, head_hidden=64, readout="sum", flow_augment=False,
                        ac_weight=0.0, target_transform="log", loss="mse", epochs=30, batch_size=64, lr=2e-3)


@EVALUATORS.register("predicted")
class PredictedEvaluator(Evaluator):
    """``metric`` = the prediction of the ``predictor`` saved at ``path``
    (``Predictor.save``); the objective is that metric, so a search on it
    searches the surrogate. The file is read on first use, or by ``check``
    (a search does it before its first candidate)."""

    def __init__(self, path: str, *, predictor: str = "narformer_v2", metric: str = "predicted"):
        from ..registry import PREDICTORS
        PREDICTORS.get(predictor)   # an unknown name fails now
        self.path = str(path)
        self.predictor = predictor
        self.metric = metric
        self.objective = metric
        self._model = None

    def __repr__(self) -> str:
        return f"PredictedEvaluator({self.path!r}, predictor={self.predictor!r}, metric={self.metric!r})"

    def __getstate__(self) -> dict[str, Any]:   # workers read the file themselves
        return {**self.__dict__, "_model": None}

    @property
    def model(self):
        if self._model is None:
            from ..registry import PREDICTORS
            if not Path(self.path).is_file():
                raise ConfigError(f"predicted: no saved predictor at {self.path} (save one with Predictor.save)")
            try:
                self._model = PREDICTORS.get(self.predictor).load(self.path)
            except FlownasError as exc:   # a configuration problem: it fails every candidate alike
                raise ConfigError(f"predicted: {exc}") from None
        return self._model

    def check(self, space) -> None:
        """The file holds a saved predictor (loaded now, in the search's own
        process), fitted on the architectures of ``space``."""
        model = self.model
        try:
            model.predict([space.sample(np.random.default_rng(0))])
        except ArchitectureError as exc:
            raise ConfigError(f"predicted: the predictor at {self.path} cannot score space {space.name!r}: {exc}") from None

    def evaluate(self, arch: Architecture, fidelity: Any = None) -> Result:
        return self.evaluate_many([arch], fidelity)[0]

    def evaluate_many(self, archs, fidelity: Any = None) -> list[Result]:
        """One batched prediction: about 4× faster per architecture than one at
        a time (BENCHMARKS.md, "Constrained search"). The values may differ from
        one-at-a-time ones in the last bits of a float (another GEMM blocking)."""
        if not archs:
            return []
        values = np.asarray(self.model.predict(list(archs)), dtype=float)
        return [Result({self.metric: float(v)}, cost_s=0.0, info={"source": self.path}) for v in values]


@dataclass
class LatencyFit:
    """A latency predictor fitted on part of a table, and its predictions on the rest."""

    model: Any
    held_out: list            # the table's networks it was not fitted on
    held_out_ms: np.ndarray   # their latencies in the table
    predicted: np.ndarray     # and as predicted
    train_size: int
    fit_s: float
    median_ms: float          # of the whole table

    @property
    def mape(self) -> float:
        from ..predictors import metrics
        return metrics.mape(self.held_out_ms, self.predicted)

    @property
    def acc10(self) -> float:
        from ..predictors import metrics
        return metrics.acc_within(self.held_out_ms, self.predicted, 0.1)


def fit_latency_predictor(table: str, device: str, *, train_size: int = 1000, seed: int = 0,
                          **settings: Any) -> LatencyFit:
    """``narformer_v2`` (``LATENCY_SETTINGS``, updated by ``settings``) fitted on
    the first ``train_size`` networks of a seeded permutation of a latency
    table's ``device``, and predicting the rest of the table."""
    from ..benchmarks.base import load_benchmark
    from ..registry import PREDICTORS
    archs, ms = load_benchmark(table).latencies(device)
    ms = np.asarray(ms, dtype=float)
    if not 2 <= train_size < len(archs):
        raise ConfigError(f"--train-size must be between 2 and {len(archs) - 1} (the {table} table holds "
                          f"{len(archs)} networks), got {train_size}")
    order = np.random.default_rng(seed).permutation(len(archs))
    train, test = order[:train_size], order[train_size:]
    start = time.perf_counter()
    model = PREDICTORS.create("narformer_v2", **{**LATENCY_SETTINGS, **settings, "seed": seed})
    model.fit([archs[i] for i in train], ms[train])
    fit_s = time.perf_counter() - start
    held_out = [archs[i] for i in test]
    return LatencyFit(model, held_out, ms[test], np.asarray(model.predict(held_out), dtype=float), len(train),
                      fit_s, float(np.median(ms)))
