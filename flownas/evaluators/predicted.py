"""A saved predictor's estimate as a metric: the cheap stand-in for a
measurement, e.g. latency on a device in a space whose latency table covers
only a sample of it (FBNet, OFA MobileNetV3). As a search constraint it
keeps the search within a latency bound it cannot look up
(docs/search.md, "Constraints")."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..arch import Architecture
from ..errors import ConfigError
from ..registry import EVALUATORS
from .base import Evaluator, Result


@EVALUATORS.register("predicted")
class PredictedEvaluator(Evaluator):
    """``metric`` = the prediction of the ``predictor`` saved at ``path``
    (``Predictor.save``); the objective is that metric, so a search on it
    searches the surrogate. The file is read on first use."""

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
            self._model = PREDICTORS.get(self.predictor).load(self.path)
        return self._model

    def evaluate(self, arch: Architecture, fidelity: Any = None) -> Result:
        value = float(np.asarray(self.model.predict([arch]), dtype=float)[0])
        return Result({self.metric: value}, cost_s=0.0, info={"source": self.path})
