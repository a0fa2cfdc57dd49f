"""``blend``: the mean of several different predictors' scores.

Models with different inductive biases make different mistakes, so their
mean ranks better than either (an ensemble of one model mostly averages out
its seed; this averages out the model). Every member predicts in target units
(the neural ones calibrate their scores on the training set), so the blend is
a plain mean; ``predict(return_std=True)`` gives the members' spread.

``members`` lists ``name`` or ``(name, params)`` of registered predictors.
The default pairs FlowerFormer (attention along flow paths) with the GCN
(neighbourhood averaging); at NB201 protocol A, N = 3,906, the benchmark's
recipe ``blend_dele_gcn`` pairs DELE with the GCN (BENCHMARKS.md, "Targets").

Saved as a zip of each member's own file and a manifest.
"""
from __future__ import annotations

import json
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..arch import Architecture
from ..errors import ConfigError, DataError, NotFittedError, construct
from ..registry import PREDICTORS
from .base import (Predictor, accepts_validation, check_archs, check_sizes, check_training_data, saved_file,
                   short_reason)
from .gcn import GCNPredictor
from .mlp import MLPPredictor
from .neural import FORMAT, FORMAT_VERSION

MANIFEST = "blend.json"


def _member_specs(members) -> list[tuple[str, dict[str, Any]]]:
    """``members`` as (name, params) pairs, each checked against the registry now."""
    if isinstance(members, (str, bytes)) or not members:
        raise ConfigError(f"members must be a non-empty list of predictor names or (name, params) pairs, "
                          f"got {members!r}")
    specs = []
    for m in members:
        name, params = (m, {}) if isinstance(m, str) else (m[0], dict(m[1]))
        try:   # as plain JSON, so that the blend's params survive save/load unchanged
            params = json.loads(json.dumps(params))
        except TypeError as exc:
            raise ConfigError(f"member {name!r}: hyper-parameters must be JSON values ({exc})") from None
        if name == "blend":
            raise ConfigError("a blend cannot be a member of a blend")
        cls = PREDICTORS.get(name)   # unknown names fail here, listing the known ones
        if "seed" in params or "ensemble" in params:
            raise ConfigError(f"member {name!r}: set seed and ensemble on the blend, not on a member")
        construct(f"member {name!r}", cls, **params)   # so do unknown or bad hyper-parameters
        specs.append((name, params))
    return specs


@PREDICTORS.register("blend")
class BlendPredictor(Predictor):
    name = "blend"
    quick_params = {"members": [["mlp", MLPPredictor.quick_params], ["gcn", GCNPredictor.quick_params]]}

    def __init__(self, members: Sequence = ("flowerformer", "gcn"), ensemble: int = 1, seed: int = 0):
        specs = _member_specs(members)
        self.members = [[name, params] for name, params in specs]
        self.ensemble, self.seed = ensemble, seed
        check_sizes({"ensemble": ensemble})

    def _build(self) -> list[Predictor]:
        """One fresh predictor per member; ``seed`` and ``ensemble`` go to those that take them."""
        built = []
        for name, params in self.members:
            cls = PREDICTORS.get(name)
            takes = cls(**params).get_params()   # what it accepts, as the search's Surrogate asks
            shared = {k: v for k, v in (("seed", self.seed), ("ensemble", self.ensemble)) if k in takes}
            built.append(cls(**params, **shared))
        return built

    def fit(self, archs: Sequence[Architecture], y: Sequence[float], *,
            low_fidelity: dict[str, Sequence[float]] | None = None,
            validation: tuple[Sequence[Architecture], Sequence[float]] | None = None) -> "BlendPredictor":
        # checked once, and a generator read once, before any member trains
        archs, y, _, validation = check_training_data(archs, y, validation)
        fitted = []
        for member in self._build():
            kwargs: dict[str, Any] = {"low_fidelity": low_fidelity}
            if validation is not None and accepts_validation(member):
                kwargs["validation"] = validation
            fitted.append(member.fit(archs, y, **kwargs))
        self.members_ = fitted
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "members_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit() first")

    def predict(self, archs: Sequence[Architecture], *, return_std: bool = False):
        self._check_fitted()
        archs = check_archs(archs)
        preds = np.stack([np.asarray(m.predict(archs), dtype=np.float64) for m in self.members_])
        mean = preds.mean(0)
        return (mean, preds.std(0)) if return_std else mean

    def save(self, path: str | Path) -> None:
        self._check_fitted()
        manifest = {"format": FORMAT, "version": FORMAT_VERSION, "predictor": self.name,
                    "params": self.get_params()}
        with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(path, "w") as zf:
            zf.writestr(MANIFEST, json.dumps(manifest))
            for i, member in enumerate(self.members_):
                member.save(Path(tmp) / f"member-{i}")
                zf.write(Path(tmp) / f"member-{i}", f"member-{i}")

    @classmethod
    def load(cls, path: str | Path) -> "BlendPredictor":
        path = saved_file(path)
        try:
            with zipfile.ZipFile(path) as zf:
                manifest = json.loads(zf.read(MANIFEST))
                if manifest.get("format") != FORMAT or manifest.get("version") != FORMAT_VERSION:
                    raise DataError(f"{path}: not a saved flownas blend of version {FORMAT_VERSION}")
                obj = cls(**manifest["params"])
                with tempfile.TemporaryDirectory() as tmp:
                    zf.extractall(tmp, [f"member-{i}" for i in range(len(obj.members))])
                    obj.members_ = [PREDICTORS.get(name).load(Path(tmp) / f"member-{i}")
                                    for i, (name, _) in enumerate(obj.members)]
        except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, UnicodeDecodeError, AttributeError) as exc:
            raise DataError(f"{path}: not a saved flownas blend ({short_reason(exc)})") from None
        return obj
