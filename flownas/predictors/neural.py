"""``NeuralPredictor``: everything the torch predictors share.

A subclass says only which network to build (``build_network``) and its own
hyper-parameters; this class does the rest: checks the input, encodes the
graphs (``GraphFeaturizer`` -> ``GraphBatch``), standardizes the targets,
trains ``ensemble`` members with different seeds through the one training loop
(``nn/train.py``), maps each member's scores back to target units by a least
squares line on the training set (ranking losses give scores of any scale),
and averages the members (``predict(return_std=True)`` gives their spread).
``save``/``load`` keep everything needed to predict exactly as before.
Bad hyper-parameters fail at construction: ``__init__`` checks the training
ones and builds the network once on a stand-in vocabulary.

Writing a new one: a subclass sets its own hyper-parameters and builds its
network in ``build_network(featurizer)``; docs/predictors.md ("Reusing the
machinery") has a complete example that ``flownas.conformance.check_predictor``
passes, and ``flowerformer.py`` a real one.

Importing this module does not import torch.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from ..arch import Architecture
from ..errors import ConfigError, DataError, FlownasError, NotFittedError
from ..seeding import keeping_torch_rng
from .base import (Predictor, UnknownParameterError, check_archs, check_sizes, check_training_data, saved_file,
                   short_reason)
from .features import GraphFeaturizer, resolve_ops

FORMAT = "flownas.predictor"
FORMAT_VERSION = 1
TARGET_TRANSFORMS = ("none", "log")
#: ``epochs="auto"``: about this many training-sample passes, within these
#: bounds (300 epochs at N = 78, 100 at 781, 30 from N = 2,600 up): the recipe
#: of BENCHMARKS.md ("Predictors"), where twice the passes gained nothing at
#: N = 781 and fewer left large N under-trained
AUTO_PASSES, AUTO_EPOCHS = 78_000, (30, 300)


def auto_epochs(n_train: int) -> int:
    return int(min(AUTO_EPOCHS[1], max(AUTO_EPOCHS[0], round(AUTO_PASSES / max(1, n_train)))))

#: hyper-parameters every neural predictor takes (training loop, ensemble,
#: encoding, seed); a subclass changes their defaults through ``defaults``
COMMON_DEFAULTS: dict[str, Any] = {
    "epochs": 200,           # or "auto": AUTO_PASSES training-sample passes, within AUTO_EPOCHS
    "batch_size": 64, "lr": 1e-3, "weight_decay": 1e-4,
    "warmup": 0.05,          # share of the steps spent warming up
    "loss": "hinge",         # mse | hinge | logistic | mse+hinge | mse+logistic
    "margin": 0.1,           # ranking margin (temperature), standardized target units
    "rank_weight": 1.0,      # weight of the ranking term of "mse+..."
    "grad_clip": 1.0, "eval_every": 1,
    "patience": None,        # early stopping (epochs) on the validation tau
    "selection": "best",     # with a validation split: keep the "best" epoch's weights or the "last"
    "ensemble": 1,           # members trained with different seeds
    "target_transform": "none",  # none | log: fit log(y), errors relative (latency); predictions in y's units
    "prune_ops": "auto",     # zero ops: their nodes go, with the dead paths they leave ("auto": the space's)
    "contract_ops": "auto",  # identity ops: their nodes go, predecessors joined to successors
    "seed": 0,
}


class NeuralPredictor(Predictor):
    """Shared machinery of the torch predictors (module doc)."""

    #: subclass overrides of the shared hyper-parameters' defaults
    defaults: ClassVar[dict[str, Any]] = {}
    #: pad every graph to the largest training graph (networks with a fixed input size)
    fixed_size: ClassVar[bool] = False
    #: train the ensemble members at once as one vmapped network (nn/train.py);
    #: needs a network that ``torch.func.vmap`` can batch
    stacked_ensemble: ClassVar[bool] = False

    def __init__(self, **params):
        unknown = sorted(set(params) - set(COMMON_DEFAULTS))
        if unknown:
            raise UnknownParameterError(f"{type(self).__name__} got unknown hyper-parameters: {', '.join(unknown)} "
                                        f"(known: {', '.join(sorted(self._param_names()))})")
        for k, v in {**COMMON_DEFAULTS, **self.defaults, **params}.items():
            setattr(self, k, tuple(v) if k in ("prune_ops", "contract_ops") and not isinstance(v, str) else v)
        if self.target_transform not in TARGET_TRANSFORMS:
            raise ConfigError(f"unknown target_transform {self.target_transform!r} "
                              f"(known: {', '.join(TARGET_TRANSFORMS)})")
        if self.epochs != "auto" and (isinstance(self.epochs, bool) or not isinstance(self.epochs, int)):
            raise ConfigError(f"epochs must be a whole number or 'auto', got {self.epochs!r}")
        check_sizes(self.get_params())   # sizes (ensemble, dim, heads, ...): before torch sees them
        self.train_config(1)  # validates the training hyper-parameters now, not at fit
        self._check_network()

    @keeping_torch_rng   # building draws initial weights from torch's generator: not the caller's to lose
    def _check_network(self) -> None:
        """Build the network once on a stand-in vocabulary, so that a bad
        architecture hyper-parameter (heads not dividing dim, an unknown norm)
        fails at construction, not at a search's first refit. A subclass sets
        its own attributes before calling ``super().__init__``."""
        stand_in = GraphFeaturizer(ops=("input", "op", "output"), max_nodes=3 if self.fixed_size else None)
        try:
            self.build_network(stand_in)
        except FlownasError:
            raise
        except ValueError as exc:   # the networks' own checks (heads dividing dim, an unknown norm)
            raise ConfigError(str(exc)) from None

    # -- what a subclass provides ------------------------------------------
    def build_network(self, featurizer: GraphFeaturizer):
        """A fresh ``nn.Module``: ``GraphBatch`` -> scores (B,)."""
        raise NotImplementedError

    def augment(self, batch, generator):
        """Training-time augmentation of a minibatch (default: none)."""
        return batch

    def step_loss(self, cfg):
        """The loss of one training step, ``(net, batch, y, generator) ->
        scalar`` (e.g. NAR-Former's, which runs the network on augmented
        copies too), or None for the configured ``loss`` (default)."""
        return None

    # -- hyper-parameters ------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        own = [p for p, v in inspect.signature(cls.__init__).parameters.items()
               if p != "self" and v.kind not in (v.VAR_KEYWORD, v.VAR_POSITIONAL)]
        return own + [p for p in COMMON_DEFAULTS if p not in own]

    def get_params(self) -> dict[str, Any]:
        return {p: getattr(self, p) for p in self._param_names()}

    def train_config(self, n_train: int):
        """The training loop's settings for ``n_train`` training architectures."""
        from .nn.train import TrainConfig
        epochs = auto_epochs(n_train) if self.epochs == "auto" else self.epochs
        return TrainConfig(epochs=epochs, batch_size=self.batch_size, lr=self.lr,
                           weight_decay=self.weight_decay, warmup=self.warmup, loss=self.loss,
                           margin=self.margin, rank_weight=self.rank_weight, grad_clip=self.grad_clip,
                           eval_every=self.eval_every, patience=self.patience, selection=self.selection)

    def member_seeds(self) -> list[int]:
        return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(self.seed).spawn(self.ensemble)]

    # -- fit / predict -----------------------------------------------------------
    def _training_batch(self, archs: Sequence[Architecture], space: str):
        """The featurizer fitted to ``archs`` (this predictor's prune/contract
        ops resolved for ``space``) and their encoded batch."""
        from .nn.batch import GraphBatch
        feat = GraphFeaturizer.for_archs(archs, prune_ops=resolve_ops(self.prune_ops, space, "zero"),
                                         contract_ops=resolve_ops(self.contract_ops, space, "identity"),
                                         fixed_size=self.fixed_size)
        batch = GraphBatch.encode(archs, feat)
        return feat, batch if self.fixed_size else batch.trimmed()

    @keeping_torch_rng
    def fit(self, archs: Sequence[Architecture], y: Sequence[float], *,
            low_fidelity: dict[str, Sequence[float]] | None = None,
            validation: tuple[Sequence[Architecture], Sequence[float]] | None = None) -> "NeuralPredictor":
        """Train on ``archs``/``y``. ``validation`` = (archs, targets) selects
        the epoch by Kendall tau (model selection); without it the last epoch
        is kept. ``low_fidelity`` is not used by these predictors."""
        import torch
        from .nn.batch import GraphBatch
        from .nn.train import train_networks

        archs, y, space, val = check_training_data(archs, y, validation)
        y = self._forward_targets(y, "targets")
        if val is not None:
            val = (val[0], self._forward_targets(val[1], "validation targets"))
        feat, batch = self._training_batch(archs, space)
        mean, std = float(y.mean()), float(y.std()) or 1.0
        yt = torch.as_tensor((y - mean) / std, dtype=torch.float32)
        val_batch = None if val is None else (GraphBatch.encode(val[0], feat), val[1])
        nets = []
        for seed in self.member_seeds():   # each member its own initialization
            torch.manual_seed(seed)
            nets.append(self.build_network(feat))
        cfg = self.train_config(len(archs))
        results = train_networks(nets, batch, yt, cfg, seed=self.seed, val=val_batch,
                                 augment=self._augment_hook(), step_loss=self.step_loss(cfg),
                                 stacked=self.stacked_ensemble)
        return self._keep_fit(space, feat, nets, batch, yt, (mean, std), results)

    def _keep_fit(self, space, feat, nets, batch, yt, scale, results):
        """Record a finished fit: each member's calibration line on its
        training batch, and what ``predict`` needs (shared with DELE)."""
        self.calibration_ = [_calibration(self._scores(net, batch), yt.numpy()) for net in nets]
        self.space_, self.featurizer_, self.networks_ = space, feat, nets
        self.y_mean_, self.y_std_ = scale
        self.train_results_ = results
        return self

    def _augment_hook(self):
        return None if type(self).augment is NeuralPredictor.augment else self.augment

    def _scores(self, net, batch) -> np.ndarray:
        from .nn.train import predict_scores
        return predict_scores(net, batch, compact=self.permutation_invariant).double().numpy()

    def predict(self, archs: Sequence[Architecture], *, return_std: bool = False):
        from .nn.batch import GraphBatch
        self._check_fitted()
        archs = check_archs(archs, self.space_)
        distinct, inverse = self.featurizer_(archs).unique()   # equal encodings, one forward pass
        batch = GraphBatch.from_arrays(distinct, self.featurizer_)
        preds = np.stack([(a * self._scores(net, batch) + b) * self.y_std_ + self.y_mean_
                          for net, (a, b) in zip(self.networks_, self.calibration_)])[:, inverse]
        mean, std = preds.mean(0), preds.std(0)
        if self.target_transform == "log":
            # the members' geometric mean, and its spread to first order (delta method)
            mean = np.exp(mean)
            std = mean * std
        return (mean, std) if return_std else mean

    def _forward_targets(self, y: np.ndarray, what: str) -> np.ndarray:
        if self.target_transform == "none":
            return y
        if (y <= 0).any():
            raise ConfigError(f"{what}: target_transform='log' needs positive values, "
                              f"got {int((y <= 0).sum())} <= 0 (first {y[y <= 0][0]})")
        return np.log(y)

    def _check_fitted(self) -> None:
        if not hasattr(self, "networks_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit() first")

    # -- persistence ---------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        import torch
        self._check_fitted()
        state = {
            "format": FORMAT, "version": FORMAT_VERSION, "predictor": self.name,
            "params": {k: list(v) if isinstance(v, tuple) else v for k, v in self.get_params().items()},
            "space": self.space_, "featurizer": self.featurizer_.config(),
            "y_mean": self.y_mean_, "y_std": self.y_std_,
            "calibration": [list(c) for c in self.calibration_],
            "networks": [net.state_dict() for net in self.networks_],
        }
        torch.save(state, Path(path))

    @classmethod
    def load(cls, path: str | Path) -> "NeuralPredictor":
        import zipfile

        import torch
        file = saved_file(path)
        if not zipfile.is_zipfile(file):
            raise DataError(f"{path}: not a saved flownas predictor (not a file torch.save wrote)")
        try:
            state = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as exc:   # torch's weights_only text runs to many lines: one is enough
            raise DataError(f"{path}: not a saved flownas predictor ({short_reason(exc)})") from None
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise DataError(f"{path}: not a saved flownas predictor (no {FORMAT!r} record)")
        if state.get("version") != FORMAT_VERSION:
            raise DataError(f"{path}: predictor file version {state.get('version')!r} is not supported "
                            f"(this flownas reads {FORMAT_VERSION})")
        try:
            if state["predictor"] != cls.name:
                from ..registry import PREDICTORS
                cls = PREDICTORS.get(state["predictor"])
            obj = cls(**state["params"])
            feat = GraphFeaturizer(**state["featurizer"])
            nets = []
            for sd in state["networks"]:
                net = obj.build_network(feat)
                net.load_state_dict(sd)
                net.eval()
                nets.append(net)
            obj.space_, obj.featurizer_, obj.networks_ = state["space"], feat, nets
            obj.calibration_ = [tuple(c) for c in state["calibration"]]
            obj.y_mean_, obj.y_std_ = state["y_mean"], state["y_std"]
        except FlownasError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise DataError(f"{path}: a damaged flownas predictor file ({short_reason(exc)})") from None
        return obj


def _calibration(scores: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least squares ``y ~ a * score + b`` (a = 0 when the scores are constant)."""
    s = scores - scores.mean()
    var = float((s * s).sum())
    a = float((s * (y - y.mean())).sum() / var) if var > 1e-12 else 0.0
    return a, float(y.mean() - a * scores.mean())

