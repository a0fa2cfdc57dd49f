"""``TrainingEvaluator``: the real score of a candidate, by training it.

It builds ``space.to_model(arch, num_classes=...)``, trains it with torch on
an image dataset (see ``flownas.datasets``) and returns the validation top-1
accuracy in percent (``val_acc``), the loss curves, the training time, params
and FLOPs. The evaluator holds configuration only (it is pickled to workers);
the dataset is loaded lazily, once per worker process, from its path.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from ..arch import Architecture
from ..errors import ConfigError, DataError, key_error
from ..registry import EVALUATORS
from ..seeding import keeping_torch_rng
from .base import Evaluator, Result

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "step", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """How a candidate is trained. Defaults follow NAS-Bench-201 (SGD with
    Nesterov momentum 0.9, lr 0.1, weight decay 5e-4, cosine per step, crop +
    flip, gradient clipping at 5) with a batch of 128 for small datasets."""

    epochs: int = 1
    batch_size: int = 128
    optimizer: str = "sgd"              # sgd (momentum) | adamw
    lr: float | None = None             # default 0.1 for sgd, 1e-3 for adamw
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "cosine"            # cosine | step | constant
    step_size: int | None = None        # step schedule: epochs per decay (default a third of the run)
    gamma: float = 0.1                  # step schedule: decay factor
    augment: bool = True                # random crop (padding 4) + horizontal flip
    label_smoothing: float = 0.0
    grad_clip: float | None = 5.0
    eval_batch_size: int = 512
    seed: int = 0
    device: str = "auto"                # auto | cpu | cuda | cuda:N
    amp: bool | None = None             # mixed precision; default on for CUDA
    channels_last: bool | None = None   # default on for CUDA
    max_train_images: int | None = None  # train on a fixed random subset
    num_threads: int | None = None      # torch CPU threads of the worker (default: leave as is)

    def __post_init__(self):
        def bad(field: str, why: str):
            raise ConfigError(f"training option {field}={getattr(self, field)!r}: {why}")
        if not isinstance(self.epochs, int) or self.epochs < 1:
            bad("epochs", "must be a positive integer")
        if self.batch_size < 2:
            bad("batch_size", "must be at least 2 (batch norm)")
        if self.optimizer not in OPTIMIZERS:
            bad("optimizer", f"must be one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            bad("schedule", f"must be one of {', '.join(SCHEDULES)}")
        if self.lr is not None and not self.lr > 0:
            bad("lr", "must be positive")
        if self.step_size is not None and self.step_size < 1:
            bad("step_size", "must be a positive number of epochs")
        if not 0 <= self.label_smoothing < 1:
            bad("label_smoothing", "must lie in [0, 1)")
        if self.max_train_images is not None and self.max_train_images < 2:
            bad("max_train_images", "must be at least 2")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            bad("device", "must be auto, cpu, cuda or cuda:N")

    def identity(self) -> dict[str, Any]:
        """The options that change the result (not where or how fast it runs)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in ("device", "num_threads")}


def torch_device(name: str):
    import torch
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but torch sees no CUDA device")
    return torch.device(name)


def check_device(name: str, key: str = "device") -> None:
    """A CUDA device that this machine does not have fails every evaluation:
    say so when the evaluator is made (``auto`` and ``cpu`` always work)."""
    if not isinstance(name, str) or not (name in ("auto", "cpu", "cuda") or name.startswith("cuda:")):
        raise ConfigError(f"{key}={name!r}: must be auto, cpu, cuda or cuda:N")
    if name in ("auto", "cpu"):
        return
    index = name.partition(":")[2]
    if index and not (index.isdigit()):
        raise ConfigError(f"{key}={name!r}: must be auto, cpu, cuda or cuda:N")
    import torch
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    where = "device: auto takes a GPU where there is one, as on Ray workers given --num-gpus"
    if count == 0:
        raise ConfigError(f"{key}={name!r}: torch sees no CUDA device on this machine ({where})")
    if index and int(index) >= count:
        raise ConfigError(f"{key}={name!r}: torch sees {count} CUDA device(s) on this machine, "
                          f"cuda:0..cuda:{count - 1} ({where})")


@EVALUATORS.register("training")
class TrainingEvaluator(Evaluator):
    """Train the candidate and report its validation accuracy.

    ``dataset`` is a path (npz, CIFAR-10 directory, ImageFolder) or a shared
    name such as ``cifar10-mini``; ``val_fraction`` holds out part of the
    training images instead of using the dataset's own test/val split.
    ``model_options`` go to ``space.to_model`` (e.g. ``{"C": 8, "N": 1}`` for
    a small NB201 network). ``checkpoint_dir`` turns on per-epoch checkpoints:
    a run killed part-way resumes at its last finished epoch, and a finished
    run is answered from its checkpoint. ``fidelity`` (an epoch count) overrides
    ``epochs`` for one call (the schedule spans the given epochs).
    Other keyword arguments are ``TrainConfig`` fields.
    """

    objective = "val_acc"

    def __init__(self, dataset: str | Path = "cifar10-mini", *, val_fraction: float | None = None,
                 image_size: int | None = None, model_options: Mapping[str, Any] | None = None,
                 checkpoint_dir: str | Path | None = None, **train_options: Any):
        fields = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = sorted(set(train_options) - fields)
        if unknown:
            raise ConfigError(f"unknown training options {', '.join(unknown)} (known: {', '.join(sorted(fields))})")
        self.config = TrainConfig(**train_options)
        check_device(self.config.device, "training option device")
        self.dataset = str(dataset)
        self.val_fraction = val_fraction
        self.image_size = image_size
        self.model_options = dict(model_options or {})
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None

    def __repr__(self) -> str:
        return f"TrainingEvaluator({self.dataset!r}, epochs={self.config.epochs}, seed={self.config.seed})"

    def run_id(self, arch: Architecture, epochs: int) -> str:
        """Fingerprint of one training run: what decides its result."""
        spec = {"arch": arch.key, "space": arch.space, "dataset": self.dataset,
                "val_fraction": self.val_fraction, "image_size": self.image_size,
                "model": self.model_options, "train": dict(self.config.identity(), epochs=epochs)}
        return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:24]

    def checkpoint_path(self, arch: Architecture, epochs: int | None = None) -> Path | None:
        if self.checkpoint_dir is None:
            return None
        return self.checkpoint_dir / f"{self.run_id(arch, epochs or self.config.epochs)}.pt"

    @keeping_torch_rng
    def evaluate(self, arch: Architecture, fidelity: Any = None, *,
                 on_epoch_end: Callable[[int], None] | None = None) -> Result:
        import torch

        from ..datasets import load_image_data
        from .engine.data import DeviceData
        from .engine.models import build_model, count_flops, count_params
        from .engine.train import train

        epochs = self._epochs(fidelity)
        cfg = self.config
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        wall = time.perf_counter()
        data = load_image_data(self.dataset, val_fraction=self.val_fraction, seed=0, image_size=self.image_size)
        device = torch_device(cfg.device)
        torch.manual_seed(cfg.seed)
        model = build_model(arch, data.num_classes, self.model_options)
        params, flops = count_params(model), count_flops(model, data.image_shape)
        on_device = DeviceData(data, device, max_train=cfg.max_train_images)
        run_id = self.run_id(arch, epochs)
        history = train(model, on_device, cfg, epochs, run_id=run_id,
                        checkpoint=self.checkpoint_path(arch, epochs), on_epoch_end=on_epoch_end)
        metrics = {
            "val_acc": history["val_acc"][-1],
            "val_loss": history["val_loss"][-1],
            "train_loss": history["train_loss"][-1],
            "loss_curve": list(history["train_loss"]),
            "val_acc_curve": list(history["val_acc"]),
            "val_loss_curve": list(history["val_loss"]),
            "train_time_s": history["train_time_s"],
            "params": params,
            "flops": flops,
            "epochs": epochs,
        }
        info = {"device": str(device), "run_id": run_id, "resumed_from_epoch": history["resumed_from"],
                "train_images": len(on_device.x_train), "val_images": len(on_device.x_val),
                "train_images_per_s": history["images_seen"] / max(history["step_time_s"], 1e-9),
                "wall_s": time.perf_counter() - wall}
        return Result(metrics=metrics, cost_s=history["train_time_s"], info=info)

    def check(self, space) -> None:
        """``model_options`` build a network of ``space`` (an unknown option
        would fail every candidate): one sampled member is built here."""
        import numpy as np

        from .engine.models import build_model
        arch = space.sample(np.random.default_rng(0))
        try:
            build_model(arch, 10, self.model_options)
        except (TypeError, ValueError) as exc:
            raise key_error("evaluator.model_options", f"cannot build a {space.name} network: {exc}") from None

    def check_here(self) -> None:
        from ..datasets import resolve
        try:
            resolve(self.dataset)
        except DataError as exc:
            raise key_error("evaluator.dataset", exc) from None

    def _epochs(self, fidelity: Any) -> int:
        if fidelity is None:
            return self.config.epochs
        if isinstance(fidelity, bool) or not isinstance(fidelity, (int, float)) \
                or fidelity < 1 or int(fidelity) != fidelity:
            raise ConfigError(f"TrainingEvaluator fidelity is a whole number of epochs (>= 1), got {fidelity!r}")
        return int(fidelity)
