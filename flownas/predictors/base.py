"""The ``Predictor`` interface (scikit-learn shaped).

Hyper-parameters go in ``__init__``; ``fit`` learns and returns ``self``;
``predict`` never trains. Scores are "higher is better" in the units of the
training targets. ``save``/``load`` restore predictions exactly.
"""
from __future__ import annotations

import abc
import inspect
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..arch import Architecture
from ..errors import ArchitectureError


class Predictor(abc.ABC):
    name: str = ""
    #: hyper-parameters for a fast smoke run (tests, examples): seconds, not quality
    quick_params: dict[str, Any] = {}
    #: the same prediction for every numbering of an architecture (graph models)
    permutation_invariant: bool = False

    @abc.abstractmethod
    def fit(self, archs: Sequence[Architecture], y: Sequence[float], *,
            low_fidelity: dict[str, Sequence[float]] | None = None) -> "Predictor":
        """Learn from ``archs`` and their targets ``y``; ``low_fidelity`` maps a
        signal name (e.g. ``"val_acc_12"``, ``"synflow"``) to one value per arch."""

    @abc.abstractmethod
    def predict(self, archs: Sequence[Architecture], *, return_std: bool = False):
        """Scores, shape (n,); with ``return_std`` a (mean, std) pair."""

    @abc.abstractmethod
    def save(self, path: str | Path) -> None:
        """Write everything ``load`` needs to predict exactly as now."""

    @classmethod
    @abc.abstractmethod
    def load(cls, path: str | Path) -> "Predictor":
        ...

    def get_params(self) -> dict[str, Any]:
        """The ``__init__`` hyper-parameters, as scikit-learn does."""
        sig = inspect.signature(type(self).__init__)
        return {p: getattr(self, p) for p in sig.parameters
                if p != "self" and sig.parameters[p].kind is not inspect.Parameter.VAR_KEYWORD}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"


def accepts_validation(predictor: Predictor) -> bool:
    """Whether ``predictor.fit`` takes a ``validation`` split (model selection)."""
    return "validation" in inspect.signature(predictor.fit).parameters


def check_archs(archs: Sequence[Architecture], space: str | None = None) -> list[Architecture]:
    """Non-empty, all ``Architecture``, all of one space (``space`` if given)."""
    archs = list(archs)
    if not archs:
        raise ValueError("no architectures given (an empty list)")
    for i, a in enumerate(archs):
        if not isinstance(a, Architecture):
            raise TypeError(f"item {i} is a {type(a).__name__}, not an Architecture")
    spaces = {a.space for a in archs}
    if space is not None and spaces != {space}:
        other = sorted(spaces - {space})
        raise ArchitectureError(f"this predictor was fitted on space {space!r}; got architectures of {other}")
    if len(spaces) > 1:
        raise ArchitectureError(f"architectures of several spaces in one batch: {sorted(spaces)}")
    return archs


def check_targets(y: Sequence[float], n: int, what: str = "targets") -> np.ndarray:
    """Finite float targets, one per architecture."""
    if not isinstance(y, np.ndarray):
        y = list(y)
        missing = [i for i, v in enumerate(y) if v is None]
        if missing:
            raise ValueError(f"{what} must be numbers: {len(missing)} are missing (None; first at index {missing[0]})")
    try:
        arr = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be numbers (missing values are not allowed)") from None
    if arr.ndim != 1 or len(arr) != n:
        raise ValueError(f"{what}: expected {n} values, one per architecture, got shape {arr.shape}")
    bad = np.flatnonzero(~np.isfinite(arr))
    if len(bad):
        raise ValueError(f"{what} must be finite: {len(bad)} are NaN/inf (first at index {bad[0]})")
    return arr


def check_training_data(archs: Sequence[Architecture], y: Sequence[float],
                        validation: tuple[Sequence[Architecture], Sequence[float]] | None = None):
    """What every ``fit`` checks first: at least two architectures of one space
    with one finite target each, and a validation pair of the same space.
    Returns ``(archs, y, space, validation)``; validation is None or
    ``(archs, targets)``."""
    archs = check_archs(archs)
    y = check_targets(y, len(archs))
    if len(archs) < 2:
        raise ValueError(f"need at least 2 architectures to learn from, got {len(archs)}")
    space = archs[0].space
    if validation is not None:
        v_archs = check_archs(validation[0], space)
        validation = (v_archs, check_targets(validation[1], len(v_archs), "validation targets"))
    return archs, y, space, validation
