"""The ``Predictor`` interface (scikit-learn shaped).

Hyper-parameters go in ``__init__``; ``fit`` learns and returns ``self``;
``predict`` never trains. Scores are "higher is better" in the units of the
training targets. ``save``/``load`` restore predictions exactly:
``Predictor.load(path)`` loads whichever predictor was saved, ``GCNPredictor.load(path)``
only a saved GCN.
"""
from __future__ import annotations

import abc
import functools
import inspect
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..arch import Architecture
from ..errors import (ArchitectureError, ConfigError, DataError, NotAnArchitectureError,
                      UnknownParameterError, check_whole, is_whole)


#: hyper-parameters that are sizes or counts, by name: the least value allowed
#: (for a sequence such as ``depths``: of each item). ``check_sizes`` refuses
#: anything else (negative, zero, 2.5, "3", True) with a ConfigError naming
#: the parameter, at construction, before torch sees it. None stays allowed
#: (``patience``, ``pool_size``: off), and so does ``epochs="auto"``.
SIZES: dict[str, int] = {
    "epochs": 1, "batch_size": 1, "eval_every": 1, "patience": 1, "ensemble": 1,
    "dim": 1, "hidden": 1, "layers": 1, "heads": 1, "head_hidden": 0, "expert_hidden": 0,
    "op_dim": 1, "node_dim": 1, "time_steps": 1, "freqs": 1, "groups": 1, "ffn_ratio": 1,
    "dims": 1, "fb_dims": 1, "update_dims": 1, "depths": 1,
    "pool_size": 1, "pretrain_epochs": 1, "pretrain_batch_size": 1,
    "max_iter": 1, "max_leaf_nodes": 2, "min_samples_leaf": 1,
}


def check_sizes(params: dict[str, Any]) -> None:
    """Raise ``ConfigError`` for the first size hyper-parameter (``SIZES``) in
    ``params`` that is not a whole number at least its minimum."""
    for name, value in params.items():
        low = SIZES.get(name)
        if low is None or value is None or (name == "epochs" and value == "auto"):
            continue
        if isinstance(value, (list, tuple)):
            if not all(is_whole(v) and v >= low for v in value):
                raise ConfigError(f"{name} must be positive whole numbers (each at least {low}), got {value!r}")
        else:
            check_whole(name, value, low)


def saved_file(path: str | Path) -> Path:
    """``path`` of a saved predictor, as a ``Path``, if it names a file;
    else a ``DataError`` (a ``FileNotFoundError``) saying what it is."""
    if not isinstance(path, (str, Path)) and not hasattr(path, "__fspath__"):
        raise DataError(f"a saved predictor's path must be a str or Path, got {type(path).__name__} {path!r}")
    p = Path(path)
    if p.is_dir():
        raise DataError(f"{path}: a directory, not a saved flownas predictor")
    if not p.is_file():
        raise DataError(f"{path}: no such file (a saved flownas predictor was expected)")
    return p


def saved_name(path: str | Path) -> str | None:
    """The registered name of the predictor saved at ``path`` (the ``"predictor"``
    every ``save`` records), or None where the file does not say. Nothing in the
    file runs: a blend's manifest is JSON, a neural predictor's file is read with
    ``torch.load(weights_only=True)``, and a pickle (gbt) is only scanned for the
    name, never unpickled."""
    import zipfile
    file = saved_file(path)
    try:
        if zipfile.is_zipfile(file):
            from .blend import MANIFEST
            with zipfile.ZipFile(file) as zf:
                if MANIFEST in zf.namelist():
                    import json
                    name = json.loads(zf.read(MANIFEST)).get("predictor")
                    return name if isinstance(name, str) else None
            import torch
            state = torch.load(file, map_location="cpu", weights_only=True)
            name = state.get("predictor") if isinstance(state, dict) else None
            return name if isinstance(name, str) else None
        return _pickled_name(file)
    except Exception:   # not a saved predictor: the class's own load says what it is
        return None


def _pickled_name(file: Path, max_ops: int = 64) -> str | None:
    """The string after the key "predictor" among the first opcodes of a
    pickle (``pickletools.genops`` parses, it does not execute)."""
    import pickletools
    strings = []
    with open(file, "rb") as fh:
        for i, (op, arg, _) in enumerate(pickletools.genops(fh)):
            if i >= max_ops:
                break
            if isinstance(arg, str) and "UNICODE" in op.name:
                if strings and strings[-1] == "predictor":
                    return arg
                strings.append(arg)
    return None


def short_reason(exc: BaseException) -> str:
    """One line of ``exc`` for "not a saved flownas predictor (...)": torch's
    multi-line weights_only text is cut to its unpickler error line."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    line = next((ln.split("Unpickler error:", 1)[1].strip() for ln in lines if "Unpickler error:" in ln),
                lines[0] if lines else type(exc).__name__)
    line = line.split("(Could this error message be improved?")[0].strip()   # torch's
    return line if len(line) <= 160 else line[:157] + "..."


class Predictor(abc.ABC):
    name: str = ""
    #: hyper-parameters for a fast smoke run (tests, examples): seconds, not quality
    quick_params: dict[str, Any] = {}
    #: the same prediction for every numbering of an architecture (graph models)
    permutation_invariant: bool = False

    def __init_subclass__(cls, **kwargs):
        """An ``__init__`` of named hyper-parameters refuses unknown ones with an
        ``UnknownParameterError`` that lists the known ones (one that takes
        ``**params``, as ``NeuralPredictor``, checks its own)."""
        super().__init_subclass__(**kwargs)
        _check_loaded_name(cls)
        init = cls.__dict__.get("__init__")
        if init is None or getattr(init, "_flownas_checked", False):
            return
        params = inspect.signature(init).parameters
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return
        known = [p for p in params if p != "self"]

        @functools.wraps(init)
        def __init__(self, *args, **kwargs):
            unknown = sorted(set(kwargs) - set(known))
            if unknown:
                raise UnknownParameterError(f"{type(self).__name__} got unknown hyper-parameters: "
                                            f"{', '.join(unknown)} (known: {', '.join(sorted(known))})")
            init(self, *args, **kwargs)
        __init__._flownas_checked = True
        cls.__init__ = __init__

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
        """Restore a saved predictor: ``Predictor.load(path)`` (this base class)
        loads whichever one was saved, by the name its file records. A
        subclass's ``load`` reads its own files (and refuses another's)."""
        return _load_saved(path)

    def get_params(self) -> dict[str, Any]:
        """The ``__init__`` hyper-parameters, as scikit-learn does."""
        sig = inspect.signature(type(self).__init__)
        return {p: getattr(self, p) for p in sig.parameters
                if p != "self" and sig.parameters[p].kind is not inspect.Parameter.VAR_KEYWORD}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"


def _load_saved(path: str | Path) -> Predictor:
    """Load the predictor saved at ``path`` with the class registered under the
    name its file records."""
    from ..registry import PREDICTORS
    name = saved_name(path)
    if name is None:
        raise DataError(f"{path}: not a saved flownas predictor (no predictor name recorded in it)")
    return PREDICTORS.get(name).load(path)


def _check_loaded_name(cls) -> None:
    """Wrap a ``load`` that ``cls`` defines: on a class with a name it refuses
    a file that holds another predictor, naming both (it used to return the
    other predictor without a word); on a base without one (``NeuralPredictor``)
    it loads whichever predictor was saved."""
    method = cls.__dict__.get("load")
    if not isinstance(method, classmethod) or getattr(method.__func__, "_flownas_checked", False):
        return
    load = method.__func__

    @functools.wraps(load)
    def checked(klass, path):
        try:
            saved = saved_name(path)
        except DataError:   # no such file, or not a path: the class's own load says so its own way
            saved = None
        if saved is not None and saved != klass.name:
            if not klass.name:   # a base without a name of its own: whichever was saved
                from ..registry import PREDICTORS
                return PREDICTORS.get(saved).load(path)
            raise DataError(f"{path} holds a {saved!r} predictor, not a {klass.name!r}; "
                            f"Predictor.load(path) loads whichever was saved")
        return load(klass, path)
    checked._flownas_checked = True
    cls.load = classmethod(checked)


def accepts_validation(predictor: Predictor) -> bool:
    """Whether ``predictor.fit`` takes a ``validation`` split (model selection)."""
    return "validation" in inspect.signature(predictor.fit).parameters


def check_archs(archs: Sequence[Architecture], space: str | None = None,
                what: str = "this predictor was fitted on space {space!r}; got architectures of {other}"
                ) -> list[Architecture]:
    """Non-empty, all ``Architecture``, all of one space (``space`` if given;
    ``what`` says what it is where the architectures are of another)."""
    if isinstance(archs, (str, bytes, Architecture)) or not hasattr(archs, "__iter__"):
        raise NotAnArchitectureError(f"expected a list of Architectures, got {type(archs).__name__}")
    archs = list(archs)
    if not archs:
        raise ArchitectureError("no architectures given (an empty list)")
    for i, a in enumerate(archs):
        if not isinstance(a, Architecture):
            raise NotAnArchitectureError(f"item {i} is a {type(a).__name__}, not an Architecture")
    spaces = {a.space for a in archs}
    if space is not None and spaces != {space}:
        other = sorted(spaces - {space})
        raise ArchitectureError(what.format(space=space, other=other))
    if len(spaces) > 1:
        raise ArchitectureError(f"architectures of several spaces in one batch: {sorted(spaces)}")
    return archs


def check_targets(y: Sequence[float], n: int, what: str = "targets") -> np.ndarray:
    """Finite float targets, one per architecture."""
    if not isinstance(y, np.ndarray):
        try:
            y = list(y)
        except TypeError:
            raise ConfigError(f"{what} must be a list of numbers, got {type(y).__name__}") from None
        missing = [i for i, v in enumerate(y) if v is None]
        if missing:
            raise ConfigError(f"{what} must be numbers: {len(missing)} are missing (None; first at index {missing[0]})")
    try:
        arr = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be numbers (missing values are not allowed)") from None
    if arr.ndim != 1 or len(arr) != n:
        raise ConfigError(f"{what}: expected {n} values, one per architecture, got shape {arr.shape}")
    bad = np.flatnonzero(~np.isfinite(arr))
    if len(bad):
        raise ConfigError(f"{what} must be finite: {len(bad)} are NaN/inf (first at index {bad[0]})")
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
        raise ArchitectureError(f"need at least 2 architectures to learn from, got {len(archs)}")
    space = archs[0].space
    if validation is not None:
        v_archs = check_archs(validation[0], space, "the training architectures are of space {space!r}; "
                                                    "the validation split has architectures of {other}")
        validation = (v_archs, check_targets(validation[1], len(v_archs), "validation targets"))
    return archs, y, space, validation
