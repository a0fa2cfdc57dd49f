"""The one training loop of the neural predictors, and their losses.

``train_network`` runs AdamW with linear warm-up and cosine decay (per step),
optional gradient clipping, and model selection on a validation split
(Kendall tau, checked every ``eval_every`` epochs; the best weights are kept as
a real copy, and ``patience`` stops early). Without a validation split the last
weights are kept. It is deterministic on CPU for a given seed: the network's
initialization is the caller's (seed before building it), the data order and
any augmentation draw from a ``torch.Generator`` seeded here.

A network is any ``nn.Module`` mapping a ``GraphBatch`` to scores of shape
(B,). Losses take (scores, targets) of that shape; ``loss_fn`` replaces the
default one entirely (e.g. NAR-Former's MSE + ranking + consistency, which
needs the network: then pass ``step_loss(net, batch, y, generator)``).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..metrics import kendall_tau
from .batch import GraphBatch

LOSSES = ("mse", "hinge", "logistic", "mse+hinge", "mse+logistic")


@dataclass
class TrainConfig:
    epochs: int = 200
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup: float = 0.05            # share of the steps spent warming up
    loss: str = "hinge"             # one of LOSSES
    margin: float = 0.1             # hinge margin / logistic temperature, in standardized target units
    rank_weight: float = 1.0        # weight of the ranking term in "mse+..."
    grad_clip: float | None = 1.0
    eval_every: int = 1
    patience: int | None = None     # epochs without a better validation tau before stopping

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r} (known: {', '.join(LOSSES)})")
        for name in ("epochs", "batch_size", "eval_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")


@dataclass
class TrainResult:
    best_epoch: int
    val_tau: float | None
    epochs_run: int
    history: list[dict] = field(default_factory=list)


# -- losses ----------------------------------------------------------------
def _pairs(scores: torch.Tensor, y: torch.Tensor):
    """Score differences and target signs of all pairs i < j with y_i != y_j."""
    ds = scores[:, None] - scores[None, :]
    sign = torch.sign(y[:, None] - y[None, :])
    keep = torch.triu(sign != 0, diagonal=1)
    return ds[keep], sign[keep]


def pairwise_hinge(scores: torch.Tensor, y: torch.Tensor, margin: float = 0.1) -> torch.Tensor:
    """mean over ordered pairs of max(0, margin - sign(y_i - y_j) (s_i - s_j))."""
    ds, sign = _pairs(scores, y)
    if ds.numel() == 0:
        return scores.sum() * 0
    return F.relu(margin - sign * ds).mean()


def pairwise_logistic(scores: torch.Tensor, y: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """RankNet: mean of log(1 + exp(-sign(y_i - y_j) (s_i - s_j) / temperature)) * temperature."""
    ds, sign = _pairs(scores, y)
    if ds.numel() == 0:
        return scores.sum() * 0
    return F.softplus(-sign * ds / temperature).mean() * temperature


def make_loss(cfg: TrainConfig) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    rank = {"hinge": pairwise_hinge, "logistic": pairwise_logistic}

    def loss(scores, y):
        total = 0
        for part in cfg.loss.split("+"):
            if part == "mse":
                total = total + F.mse_loss(scores, y)
            else:
                w = cfg.rank_weight if "mse" in cfg.loss else 1.0
                total = total + w * rank[part](scores, y, cfg.margin)
        return total
    return loss


def warmup_cosine(step: int, total: int, warmup_steps: int) -> float:
    """LR factor: linear warm-up to 1, then a half cosine down to 0."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


# -- the loop ----------------------------------------------------------------
@torch.no_grad()
def predict_scores(net: torch.nn.Module, batch: GraphBatch, chunk: int = 4096) -> torch.Tensor:
    """Scores of a whole batch in eval mode, ``chunk`` graphs at a time."""
    was_training = net.training
    net.eval()
    out = torch.cat([net(batch[i:i + chunk]) for i in range(0, len(batch), chunk)])
    net.train(was_training)
    return out


def train_network(net: torch.nn.Module, train: GraphBatch, y: torch.Tensor, cfg: TrainConfig, *,
                  seed: int = 0, val: tuple[GraphBatch, np.ndarray] | None = None,
                  augment: Callable[[GraphBatch, torch.Generator], GraphBatch] | None = None,
                  step_loss: Callable | None = None) -> TrainResult:
    """Train ``net`` in place (see the module doc); returns what happened."""
    if len(train) != len(y):
        raise ValueError(f"{len(train)} graphs but {len(y)} targets")
    gen = torch.Generator().manual_seed(seed)
    n = len(train)
    bs = min(cfg.batch_size, n)
    steps_per_epoch = math.ceil(n / bs)
    total = cfg.epochs * steps_per_epoch
    warm = max(1, int(round(cfg.warmup * total)))
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, total, warm))
    loss_fn = make_loss(cfg)
    if step_loss is None:
        def step_loss(net_, batch_, y_, gen_):
            return loss_fn(net_(batch_), y_)

    best_tau, best_state, best_epoch, since_best = -math.inf, None, cfg.epochs, 0
    history = []
    net.train()
    epoch = 0
    for epoch in range(1, cfg.epochs + 1):
        order = torch.randperm(n, generator=gen)
        running = 0.0
        for start in range(0, n, bs):
            idx = order[start:start + bs]
            if len(idx) < 2:  # a ranking loss needs a pair; fold a lone leftover into the next epoch
                continue
            batch = train[idx]
            if augment is not None:
                batch = augment(batch, gen)
            loss = step_loss(net, batch, y[idx], gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            running += float(loss.detach()) * len(idx)
        record = {"epoch": epoch, "loss": running / n}
        if val is not None and (epoch % cfg.eval_every == 0 or epoch == cfg.epochs):
            tau = kendall_tau(val[1], predict_scores(net, val[0]).numpy())
            record["val_tau"] = tau
            if tau > best_tau:
                best_tau, best_epoch, since_best = tau, epoch, 0
                best_state = copy.deepcopy(net.state_dict())  # a real copy, not references
            else:
                since_best += cfg.eval_every
                if cfg.patience is not None and since_best >= cfg.patience:
                    history.append(record)
                    break
        history.append(record)
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    return TrainResult(best_epoch=best_epoch if val is not None else epoch,
                       val_tau=None if val is None else best_tau, epochs_run=epoch, history=history)
