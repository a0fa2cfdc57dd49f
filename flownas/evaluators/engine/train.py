"""The training loop of ``TrainingEvaluator``: seeded, checkpointed each epoch.

Determinism: the model is initialised under the run's seed, and epoch ``e``
draws its shuffling and augmentation from its own generator seeded by
``(seed, e)``, so an epoch does not depend on how the run got there. A
checkpoint (written atomically after every epoch) holds the model, optimizer,
AMP scaler and global RNG states plus the history, so a killed run resumes at
the next epoch and ends exactly where the uninterrupted run ends (on CPU).
"""
from __future__ import annotations

import math
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .data import DeviceData

CHECKPOINT_VERSION = 1


def base_lr(cfg) -> float:
    if cfg.lr is not None:
        return cfg.lr
    return 0.1 if cfg.optimizer == "sgd" else 1e-3


def lr_at(cfg, progress: float, epochs: int) -> float:
    """Learning rate at ``progress`` epochs into a run of ``epochs`` epochs."""
    lr = base_lr(cfg)
    if cfg.schedule == "cosine":
        return 0.5 * lr * (1.0 + math.cos(math.pi * min(progress / epochs, 1.0)))
    if cfg.schedule == "step":
        step = cfg.step_size or max(1, epochs // 3)
        return lr * cfg.gamma ** int(progress // step)
    return lr


def make_optimizer(cfg, model: nn.Module) -> torch.optim.Optimizer:
    # no weight decay on BN and bias parameters (1-d), as is usual
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=base_lr(cfg), momentum=cfg.momentum,
                               nesterov=cfg.nesterov and cfg.momentum > 0)
    return torch.optim.AdamW(groups, lr=base_lr(cfg))


def amp_dtype(device: torch.device) -> torch.dtype:
    """Mixed precision in bfloat16 where the GPU has it: float16's range ends at
    65,504, which NB201 cells such as x + avg_pool(x), stacked 15 deep, exceed
    (the loss turns NaN at once); bfloat16 has float32's range and needs no
    loss scaling. Older GPUs fall back to float16 with a GradScaler."""
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite: the candidate has no score."""


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    state = np.random.SeedSequence([seed, epoch]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def train(model: nn.Module, data: DeviceData, cfg, epochs: int, *, run_id: str,
          checkpoint: Path | None = None,
          on_epoch_end: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Train ``model`` for ``epochs`` epochs (resuming from ``checkpoint`` when
    it holds this ``run_id``); returns the history."""
    device = data.device
    cuda = device.type == "cuda"
    amp = cuda if cfg.amp is None else (cfg.amp and cuda)
    channels_last = cuda if cfg.channels_last is None else cfg.channels_last
    dtype = amp_dtype(device)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(cfg, model)
    scaler = torch.amp.GradScaler(device.type, enabled=amp and dtype == torch.float16)
    # train_time_s: training and per-epoch validation; step_time_s: the optimisation steps alone
    history: dict[str, Any] = {"epoch": 0, "train_loss": [], "val_loss": [], "val_acc": [],
                               "train_time_s": 0.0, "step_time_s": 0.0, "images_seen": 0, "resumed_from": 0}
    if checkpoint is not None:
        state = _load(checkpoint, run_id)
        if state is not None:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scaler.load_state_dict(state["scaler"])
            torch.set_rng_state(state["rng_cpu"])
            if cuda and state.get("rng_cuda") is not None:
                torch.cuda.set_rng_state(state["rng_cuda"], device)
            history = dict(state["history"], resumed_from=state["history"]["epoch"])

    n = len(data.x_train)
    steps = max(1, n // cfg.batch_size + (1 if n % cfg.batch_size > 1 else 0))
    for epoch in range(history["epoch"], epochs):
        start = time.perf_counter()
        model.train()
        generator = epoch_generator(cfg.seed, epoch)
        loss_sum = torch.zeros((), device=device)
        seen = 0
        for step, (x, y) in enumerate(data.train_batches(cfg.batch_size, generator, cfg.augment)):
            for group in optimizer.param_groups:
                group["lr"] = lr_at(cfg, epoch + step / steps, epochs)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=dtype, enabled=amp):
                loss = F.cross_entropy(model(x), y, label_smoothing=cfg.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.grad_clip:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            loss_sum += loss.detach().float() * len(y)
            seen += len(y)
        if cuda:
            torch.cuda.synchronize(device)
        history["step_time_s"] += time.perf_counter() - start
        history["images_seen"] += seen
        if not torch.isfinite(loss_sum):   # a NaN network would "score" chance accuracy: say it diverged
            raise TrainingDiverged(f"training diverged: the training loss of epoch {epoch + 1} is not finite "
                                   f"(lr {base_lr(cfg):g}{', mixed precision ' + str(dtype) if amp else ''})")
        val_loss, val_acc = evaluate(model, data, cfg.eval_batch_size, amp, channels_last)
        history["train_loss"].append(float(loss_sum) / max(seen, 1))
        history["val_loss"].append(val_loss)
        history["val_acc"].append(val_acc)
        history["epoch"] = epoch + 1
        history["train_time_s"] += time.perf_counter() - start
        if checkpoint is not None:
            save_atomic({"version": CHECKPOINT_VERSION, "run_id": run_id, "model": model.state_dict(),
                         "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                         "rng_cpu": torch.get_rng_state(),
                         "rng_cuda": torch.cuda.get_rng_state(device) if cuda else None,
                         "history": {k: v for k, v in history.items() if k != "resumed_from"}},
                        checkpoint)
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1)
    return history


@torch.no_grad()
def evaluate(model: nn.Module, data: DeviceData, batch_size: int, amp: bool = False,
             channels_last: bool = False) -> tuple[float, float]:
    """(mean cross-entropy, top-1 accuracy in %) on the validation split."""
    model.eval()
    loss_sum = torch.zeros((), device=data.device, dtype=torch.float64)
    correct = torch.zeros((), device=data.device, dtype=torch.int64)
    for x, y in data.val_batches(batch_size):
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(data.device.type, dtype=amp_dtype(data.device), enabled=amp):
            logits = model(x)
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").double()
        correct += (logits.argmax(1) == y).sum()
    n = len(data.x_val)
    return float(loss_sum) / n, 100.0 * float(correct) / n


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename: a crash
    leaves the previous checkpoint intact, never a half-written one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _load(path: Path, run_id: str) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - an unreadable checkpoint means: start over
        warnings.warn(f"ignoring unreadable checkpoint {path} ({type(exc).__name__}: {exc}); training from scratch")
        return None
    if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION or state.get("run_id") != run_id:
        warnings.warn(f"ignoring checkpoint {path}: it belongs to another run or format; training from scratch")
        return None
    return state
