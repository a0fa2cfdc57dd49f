"""The one training loop of the neural predictors, and their losses.

``train_network`` runs AdamW with linear warm-up and cosine decay (per step),
optional gradient clipping, and model selection on a validation split
(Kendall tau, checked every ``eval_every`` epochs; the best weights are kept as
a real copy, and ``patience`` stops early; ``selection="last"`` only records
the split's tau). Without a validation split the last weights are kept. It is
deterministic on CPU for a given seed: the network's initialization is the
caller's (seed before building it), the data order and any augmentation draw
from a ``torch.Generator`` seeded here.

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

from ...errors import ConfigError
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
    # which weights a validation split keeps: "best" (the epoch of the best tau) or "last"
    # (the split is only recorded: a tau on a few dozen cells is too noisy to pick an epoch by)
    selection: str = "best"

    def __post_init__(self):
        from ..base import check_sizes
        if self.loss not in LOSSES:
            raise ConfigError(f"unknown loss {self.loss!r} (known: {', '.join(LOSSES)})")
        check_sizes({"epochs": self.epochs, "batch_size": self.batch_size, "eval_every": self.eval_every,
                     "patience": self.patience})
        for name in ("lr", "weight_decay", "warmup", "margin", "rank_weight", "grad_clip"):
            value = getattr(self, name)
            if (value is not None or name != "grad_clip") and (
                    isinstance(value, bool) or not isinstance(value, (int, float, np.number))):
                raise ConfigError(f"{name} must be a number, got {type(value).__name__} {value!r}")
        if self.lr <= 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        if self.selection not in ("best", "last"):
            raise ConfigError(f"unknown selection {self.selection!r} (best or last)")
        if self.selection == "last" and self.patience is not None:
            raise ConfigError("patience stops at the best validation epoch: it needs selection='best'")


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
def predict_scores(net: torch.nn.Module, batch: GraphBatch, chunk: int = 4096,
                   compact: bool = False) -> torch.Tensor:
    """Scores of a whole batch in eval mode, ``chunk`` graphs at a time.

    ``compact`` (only for networks that ignore node numbering): chunks of
    graphs of similar size, each renumbered real-nodes-first and trimmed, so
    no work is spent on padding.
    """
    was_training = net.training
    net.eval()
    order = torch.argsort(batch.mask.sum(1), stable=True) if compact else None
    if order is not None:
        batch = batch[order]
    parts = []
    for i in range(0, len(batch), chunk):
        part = batch[i:i + chunk]
        parts.append(net(part.compacted() if compact else part))
    out = torch.cat(parts)
    if order is not None:
        out = torch.empty_like(out).index_copy_(0, order, out)
    net.train(was_training)
    return out


class _Plain:
    """One network under its own optimizer."""

    def __init__(self, net: torch.nn.Module, cfg: TrainConfig, schedule: Callable[[int], float]):
        self.net, self.cfg, self.members = net, cfg, 1
        self.opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, schedule)

    def step(self, loss_of: Callable[[torch.Tensor], torch.Tensor], batch: GraphBatch) -> list[float]:
        self.net.train()
        loss = loss_of(self.net)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.cfg.grad_clip)
        self.opt.step()
        self.sched.step()
        return [float(loss.detach())]

    def scores(self, batch: GraphBatch) -> torch.Tensor:
        return predict_scores(self.net, batch).unsqueeze(0)

    def snapshot(self, member: int) -> dict:
        return copy.deepcopy(self.net.state_dict())   # a real copy, not references

    def finish(self, states: list[dict | None]) -> None:
        if states[0] is not None:
            self.net.load_state_dict(states[0])
        self.net.eval()


class _Stacked:
    """k networks of one architecture trained as one: their weights stacked
    along a new first dimension, the forward pass ``torch.func.vmap``-ed over
    it, so every operation runs once for all members (per-op overhead
    dominates these small networks on a CPU). AdamW is elementwise, so one
    optimizer over the stacks is k optimizers; gradients are clipped per member."""

    def __init__(self, nets: list[torch.nn.Module], cfg: TrainConfig, schedule: Callable[[int], float]):
        from torch.func import stack_module_state
        self.nets, self.cfg, self.members = nets, cfg, len(nets)
        self.params, self.buffers = stack_module_state(nets)
        self.base = copy.deepcopy(nets[0]).to("meta")
        self.opt = torch.optim.AdamW(list(self.params.values()), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                     foreach=True)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, schedule)

    def _forward(self, batch: GraphBatch) -> torch.Tensor:
        from torch.func import functional_call, vmap

        def one(params, buffers):
            return functional_call(self.base, (params, buffers), (batch,))
        return vmap(one, randomness="different")(self.params, self.buffers)

    def step(self, loss_of_scores: Callable[[torch.Tensor], torch.Tensor], batch: GraphBatch) -> list[float]:
        self.base.train()
        scores = self._forward(batch)                              # (k, B)
        losses = torch.stack([loss_of_scores(s) for s in scores])
        self.opt.zero_grad(set_to_none=True)
        losses.sum().backward()
        if self.cfg.grad_clip:
            grads = [p.grad for p in self.params.values() if p.grad is not None]
            norms = torch.stack([g.flatten(1).pow(2).sum(1) for g in grads]).sum(0).sqrt()
            factor = (self.cfg.grad_clip / (norms + 1e-6)).clamp(max=1.0)
            for g in grads:
                g.mul_(factor.view((-1,) + (1,) * (g.dim() - 1)))
        self.opt.step()
        self.sched.step()
        return losses.detach().tolist()

    @torch.no_grad()
    def scores(self, batch: GraphBatch) -> torch.Tensor:
        self.base.eval()
        return torch.cat([self._forward(batch[i:i + 2048]) for i in range(0, len(batch), 2048)], dim=1)

    def snapshot(self, member: int) -> dict:
        stacks = {**self.params, **self.buffers}
        return {k: stacks[k][member].detach().clone() for k in self.nets[0].state_dict()}

    def finish(self, states: list[dict | None]) -> None:
        for m, (net, state) in enumerate(zip(self.nets, states)):
            net.load_state_dict(state if state is not None else self.snapshot(m))
            net.eval()


def train_networks(nets: list[torch.nn.Module], train: GraphBatch, y: torch.Tensor, cfg: TrainConfig, *,
                   seed: int = 0, val: tuple[GraphBatch, np.ndarray] | None = None,
                   augment: Callable[[GraphBatch, torch.Generator], GraphBatch] | None = None,
                   step_loss: Callable | None = None, stacked: bool = False) -> list[TrainResult]:
    """Train ``nets`` in place on the same minibatches (see the module doc).

    ``stacked``: train them at once as one vmapped network (they must share
    one architecture and be ``torch.func``-friendly); not with ``step_loss``,
    which needs a network. Each member keeps its own best epoch on ``val``.
    """
    if len(train) != len(y):
        raise ValueError(f"{len(train)} graphs but {len(y)} targets")
    if stacked and step_loss is not None:
        raise ValueError("a step_loss needs one network at a time: train with stacked=False")
    gen = torch.Generator().manual_seed(seed)
    n = len(train)
    bs = min(cfg.batch_size, n)
    total = cfg.epochs * math.ceil(n / bs)
    warm = max(1, int(round(cfg.warmup * total)))
    schedule = lambda s: warmup_cosine(s, total, warm)  # noqa: E731
    loss_fn = make_loss(cfg)
    if stacked and len(nets) > 1:
        runners = [_Stacked(nets, cfg, schedule)]
    else:
        runners = [_Plain(net, cfg, schedule) for net in nets]
    k = len(nets)
    best_tau, best_epoch, states = [-math.inf] * k, [cfg.epochs] * k, [None] * k
    since_best, history = [0] * k, [[] for _ in range(k)]
    epoch = 0
    for epoch in range(1, cfg.epochs + 1):
        order = torch.randperm(n, generator=gen)
        running: list[float] = []
        for start in range(0, n, bs):
            idx = order[start:start + bs]
            if len(idx) < 2:  # a ranking loss needs a pair; fold a lone leftover into the next epoch
                continue
            batch = train[idx]
            if augment is not None:
                batch = augment(batch, gen)
            y_b = y[idx]
            losses = []
            for runner in runners:
                if isinstance(runner, _Stacked):
                    losses += runner.step(lambda s: loss_fn(s, y_b), batch)
                elif step_loss is not None:
                    losses += runner.step(lambda net: step_loss(net, batch, y_b, gen), batch)
                else:
                    losses += runner.step(lambda net: loss_fn(net(batch), y_b), batch)
            running = [r + v * len(idx) for r, v in zip(running or [0.0] * k, losses)]
        records = [{"epoch": epoch, "loss": v / n} for v in running or [0.0] * k]
        if val is not None and (epoch % cfg.eval_every == 0 or epoch == cfg.epochs):
            scores = torch.cat([runner.scores(val[0]) for runner in runners])
            for m in range(k):
                tau = kendall_tau(val[1], scores[m].numpy())
                records[m]["val_tau"] = tau
                if cfg.selection == "last":
                    best_tau[m] = tau
                elif tau > best_tau[m]:
                    best_tau[m], best_epoch[m], since_best[m] = tau, epoch, 0
                    runner = runners[0] if len(runners) == 1 else runners[m]
                    states[m] = runner.snapshot(m if len(runners) == 1 else 0)
                else:
                    since_best[m] += cfg.eval_every
        for m in range(k):
            history[m].append(records[m])
        if cfg.patience is not None and val is not None and min(since_best) >= cfg.patience:
            break
    if len(runners) == 1:
        runners[0].finish(states)
    else:
        for runner, state in zip(runners, states):
            runner.finish([state])
    keep_best = val is not None and cfg.selection == "best"
    return [TrainResult(best_epoch=best_epoch[m] if keep_best else epoch,
                        val_tau=None if val is None else best_tau[m], epochs_run=epoch, history=history[m])
            for m in range(k)]


def train_network(net: torch.nn.Module, train: GraphBatch, y: torch.Tensor, cfg: TrainConfig,
                  **kwargs) -> TrainResult:
    """``train_networks`` for one network."""
    return train_networks([net], train, y, cfg, **kwargs)[0]
