"""``dele``: Dynamic Ensemble of Low-fidelity Experts (DELE, AAAI 2023,
github.com/A-LinCui/DELE) on the flow-aware FlowerFormer encoder.

One shared encoder embeds an architecture; one *expert* head per
low-fidelity signal (12-epoch accuracy, params, NASWOT, zero-cost proxies...)
scores it, and an architecture-conditioned *gate* (a linear layer and a
softmax over the experts) mixes the expert scores into the prediction. The
experts are linear by default; ``expert_hidden=H`` makes each an MLP with one
hidden layer of H (the official code's experts are MLPs): NB201, N = 156,
tuning seeds, 8 signals: 0.919 with H = 64 against 0.916 linear.

Training has two steps, as in the paper:

1. **pre-training** (``pretrain``): every expert learns to rank a large
   unlabeled pool by its own signal (pairwise hinge on that signal's order,
   pairs with a missing value left out; the expert losses are summed);
2. **fine-tuning** (``fit``): the whole predictor (or, with ``finetune``,
   only the heads or only the gate) learns the ranking of the few labelled
   architectures from the pre-trained state (pairwise hinge on the ensemble
   score), with model selection on a validation split when one is given.

By default (``encoders="shared"``) the experts and the gate share one
encoder: the experts become the multi-task pre-training of that encoder.
``encoders="separate"`` is the official code's layout: every expert has its
own encoder, pre-trained on its signal alone, and the gate its own, not
pre-trained; it costs about (experts + 1) times as much per step and ranked
no better (NB201, N = 156, tuning seeds, 8 signals: 0.913 vs 0.916).

Where the signals come from, in this order: ``fit(pool=(archs, signals))``; an
earlier ``pretrain``; ``fit(low_fidelity=...)`` (the training architectures
themselves are the pool); else ``signal_source="table"``: the low-fidelity
table of the space (``flownas.evaluators.lowfidelity``), of which
``pool_size`` cells are drawn when set. Its experts are ``signals``, by
default every low-fidelity column of the table (``every_signal``; NB201: all
15,625 cells with the validation and test accuracy of their 12-epoch runs on
all three datasets, params and NASWOT). More experts help: NB201 cifar10,
N = 156, tuning seeds: 0.904 with the 12-epoch accuracy, params and NASWOT,
0.916 with all eight (BENCHMARKS.md).

Pre-training depends on the pool, its signals, the encoder and pre-training
hyper-parameters and ``pretrain_seed``, not on ``seed`` (which seeds the
fine-tuning): its result is kept per process for those inputs, so a search
that refits its predictor every round with new seeds pre-trains once, and on
disk (``flownas.cache``, keyed also by the predictor code and torch version),
so later processes load it instead of pre-training again.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections import OrderedDict
from typing import Sequence

import numpy as np

from .. import cache
from ..arch import Architecture
from ..errors import ConfigError
from ..registry import PREDICTORS
from ..seeding import keeping_torch_rng
from .base import check_archs, check_training_data
from .features import GraphFeaturizer
from .neural import NeuralPredictor

FINETUNE = ("all", "heads", "gate")
GATES = ("arch", "uniform")
ENCODERS = ("shared", "separate")
# the hyper-parameters that shape pre-training (with the pool and its signals)
PRETRAIN_PARAMS = ("dim", "layers", "heads", "dropout", "attn_dropout", "norm", "depth_embedding", "gate", "encoders",
                   "expert_hidden", "signals", "pretrain_epochs", "pretrain_batch_size", "pretrain_lr", "pretrain_seed",
                   "weight_decay", "warmup", "grad_clip", "margin", "prune_ops", "contract_ops")
# pre-trained states by what decides them: refits (a search refits its
# predictor after every round, with new seeds) reuse the pre-training
_PRETRAINED: "OrderedDict[str, tuple]" = OrderedDict()
_PRETRAINED_KEPT = 4
CACHE_KIND = "dele-pretrained"   # and on disk, across processes (flownas.cache)


@PREDICTORS.register("dele")
class DELEPredictor(NeuralPredictor):
    name = "dele"
    # the fine-tuning step: FlowerFormer's own training hyper-parameters but a
    # twentieth of its learning rate, which keeps what pre-training taught the
    # encoder (NB201 protocol A, tuning seeds 10-12, Kendall tau at N = 78 /
    # 156 / 781: lr 2e-3 0.866 / 0.894 / 0.920 (one seed), lr 1e-4 0.885 /
    # 0.904 / 0.927; FlowerFormer alone is best at 2e-3: 0.861 at 156, 0.845
    # with 5e-4). A pre-training on a small pool (about a thousand cells) has
    # less worth keeping: there lr 2e-3 does better (BENCHMARKS.md, DELE (b))
    defaults = {"epochs": "auto", "batch_size": 64, "lr": 1e-4, "weight_decay": 6e-5, "loss": "hinge",
                "margin": 0.1}
    quick_params = {"epochs": 15, "batch_size": 64, "dim": 16, "layers": 1, "heads": 2, "lr": 3e-3,
                    "pool_size": 400, "pretrain_epochs": 4}
    permutation_invariant = True

    def __init__(self, dim: int = 64, layers: int = 4, heads: int = 8, dropout: float = 0.0,
                 attn_dropout: float = 0.0, norm: str = "batch", depth_embedding: bool = False,
                 signals: Sequence[str] | None = None, signal_source: str | None = "table",
                 dataset: str = "cifar10", pool_size: int | None = None, pretrain_epochs: int = 20,
                 pretrain_batch_size: int = 128, pretrain_lr: float = 1e-3, pretrain_seed: int = 0,
                 gate: str = "arch", finetune: str = "all", encoders: str = "shared", expert_hidden: int = 0,
                 **common):
        self.dim, self.layers, self.heads = dim, layers, heads
        self.dropout, self.attn_dropout, self.norm, self.depth_embedding = dropout, attn_dropout, norm, depth_embedding
        # signals: one expert each; None = every signal of the pool (fit records the names here,
        # so that a saved predictor rebuilds the same experts)
        if isinstance(signals, str):   # tuple("acc_12") would be its letters
            raise ConfigError(f"signals is a list of signal names, e.g. [{signals!r}], got the string {signals!r}")
        self.signals = None if signals is None else tuple(signals)
        self.signal_source, self.dataset, self.pool_size = signal_source, dataset, pool_size
        self.pretrain_epochs, self.pretrain_batch_size, self.pretrain_lr = pretrain_epochs, pretrain_batch_size, pretrain_lr
        self.pretrain_seed = pretrain_seed
        self.gate, self.finetune, self.encoders = gate, finetune, encoders
        # 0: linear experts; > 0: each expert is an MLP with one hidden layer that wide
        # (the official code's experts are MLPs on their encoders)
        self.expert_hidden = expert_hidden
        if not isinstance(expert_hidden, int) or isinstance(expert_hidden, bool) or expert_hidden < 0:
            raise ConfigError(f"expert_hidden must be an integer >= 0, got {expert_hidden!r}")
        if encoders not in ENCODERS:
            raise ConfigError(f"encoders must be one of {', '.join(ENCODERS)}, got {encoders!r}")
        if gate not in GATES:
            raise ConfigError(f"gate must be one of {', '.join(GATES)}, got {gate!r}")
        if finetune not in FINETUNE:
            raise ConfigError(f"finetune must be one of {', '.join(FINETUNE)}, got {finetune!r}")
        if signal_source not in (None, "table"):
            raise ConfigError(f"signal_source must be 'table' or None, got {signal_source!r}")
        super().__init__(**common)

    # -- the network -----------------------------------------------------------
    def _check_network(self) -> None:
        if self.signals:
            return super()._check_network()
        # the experts are named at pre-training: check the network with one
        self.signals = ("stand-in",)
        try:
            super()._check_network()
        finally:
            self.signals = None

    def build_network(self, featurizer: GraphFeaturizer):
        from .nn.flowerformer import FlowerFormerEncoder
        if not self.signals:
            raise ConfigError("DELE has no experts yet: pre-train it on low-fidelity signals first")

        def encoder():
            return FlowerFormerEncoder(featurizer.num_ops + featurizer.num_attrs, self.dim, self.layers, self.heads,
                                       self.dropout, self.attn_dropout, self.norm, self.depth_embedding)
        own = [encoder() for _ in self.signals] if self.encoders == "separate" else None
        return _network_class()(encoder(), len(self.signals), self.gate, own, self.expert_hidden)

    # -- step 1 ------------------------------------------------------------------
    @keeping_torch_rng
    def pretrain(self, archs: Sequence[Architecture], signals: dict[str, Sequence[float | None]]) -> "DELEPredictor":
        """Pre-train the encoder and one expert per signal on the pool ``archs``
        (``signals``: name -> one value per architecture, None where missing)."""
        import torch

        from .nn.train import TrainConfig, TrainResult, pairwise_hinge, train_network

        archs = check_archs(archs)
        names = self._signal_names(signals)
        values = np.full((len(archs), len(names)), np.nan)
        for k, name in enumerate(names):
            column = list(signals[name])
            if len(column) != len(archs):
                raise ConfigError(f"signal {name!r}: expected {len(archs)} values, one per architecture, "
                                  f"got {len(column)}")
            values[:, k] = [np.nan if v is None else float(v) for v in column]
            if np.isinf(values[:, k]).any():
                raise ConfigError(f"signal {name!r} has infinite values")
            if np.isfinite(values[:, k]).sum() < 2:
                raise ConfigError(f"signal {name!r} has fewer than 2 known values: nothing to rank")
        self.signals = names
        margin = self.margin

        def expert_loss(net, b, y, generator):
            scores = net.expert_scores(b)
            total = scores.sum() * 0
            for k in range(y.shape[1]):
                known = ~torch.isnan(y[:, k])
                if int(known.sum()) >= 2:
                    total = total + pairwise_hinge(scores[known, k], y[known, k], margin)
            return total

        key = self._pretrain_key(archs, values)
        if key not in _PRETRAINED:
            cached = cache.load(CACHE_KIND, key)
            if cached is not None:   # another process pre-trained the same (deterministic on one machine)
                feat, state = GraphFeaturizer(**cached["featurizer"]), cached["state"]
                result = TrainResult(**cached["result"])
            else:
                feat, batch = self._training_batch(archs, archs[0].space)
                targets = torch.as_tensor(values, dtype=torch.float32)
                cfg = TrainConfig(epochs=self.pretrain_epochs, batch_size=self.pretrain_batch_size,
                                  lr=self.pretrain_lr, weight_decay=self.weight_decay, warmup=self.warmup,
                                  grad_clip=self.grad_clip)
                seed = int(np.random.SeedSequence([self.pretrain_seed, 1]).generate_state(1)[0])
                torch.manual_seed(seed)
                net = self.build_network(feat)
                result = train_network(net, batch, targets, cfg, seed=seed, step_loss=expert_loss)
                state = {k: v.clone() for k, v in net.state_dict().items()}
                cache.store(CACHE_KIND, key,
                            {"featurizer": feat.config(), "state": state, "result": dataclasses.asdict(result)})
            _PRETRAINED[key] = (feat, state, result)
            while len(_PRETRAINED) > _PRETRAINED_KEPT:
                _PRETRAINED.popitem(last=False)
        feat, self.pretrained_state_, self.pretrain_result_ = _PRETRAINED[key]
        self.pretrain_space_, self.pretrain_featurizer_ = archs[0].space, feat
        self.pretrain_size_ = len(archs)
        return self

    def _pretrain_key(self, archs: list[Architecture], values: np.ndarray) -> str:
        """What decides the pre-trained state: the pool, its signals, the
        pre-training hyper-parameters (not the fine-tuning ones, not ``seed``)
        and the code (the key of the on-disk cache too)."""
        h = hashlib.sha256(json.dumps({k: getattr(self, k) for k in PRETRAIN_PARAMS},
                                      sort_keys=True, default=list).encode())
        h.update(cache.code_fingerprint("flownas.predictors", "flownas.arch").encode())
        for arch in archs:
            h.update(arch.key.encode())
        h.update(np.ascontiguousarray(values).tobytes())
        return h.hexdigest()

    def _signal_names(self, signals: dict[str, Sequence]) -> tuple[str, ...]:
        if not signals:
            raise ConfigError("DELE needs at least one low-fidelity signal to pre-train its experts")
        if self.signals is None:
            return tuple(sorted(signals))
        missing = [s for s in self.signals if s not in signals]
        if missing:
            raise ConfigError(f"DELE's experts need the signals {', '.join(missing)}, which were not given "
                              f"(given: {', '.join(sorted(signals))})")
        return self.signals

    def table_pool(self, space: str):
        """The pool and signals ``fit`` pre-trains on with ``signal_source="table"``:
        the space's table, its ``signals`` (default every low-fidelity column)."""
        from ..errors import FlownasError
        from ..evaluators.lowfidelity import every_signal, table_pool
        try:
            names = self.signals if self.signals is not None else every_signal(space, self.dataset)
            archs, signals = table_pool(space, self.dataset, names)
        except FlownasError as exc:   # no signals for the space, or its table is not installed
            raise ConfigError(f"DELE found no low-fidelity signals for space {space!r} ({exc}); pass "
                              "fit(..., pool=(archs, signals)) or low_fidelity=...") from None
        if self.pool_size is not None and self.pool_size < len(archs):
            pick = np.sort(np.random.default_rng(self.pretrain_seed).choice(len(archs), self.pool_size, replace=False))
            archs = [archs[i] for i in pick]
            signals = {k: [v[i] for i in pick] for k, v in signals.items()}
        return archs, signals

    # -- step 2 --------------------------------------------------------------------
    @keeping_torch_rng
    def fit(self, archs: Sequence[Architecture], y: Sequence[float], *,
            low_fidelity: dict[str, Sequence[float]] | None = None,
            validation: tuple[Sequence[Architecture], Sequence[float]] | None = None,
            pool: tuple[Sequence[Architecture], dict[str, Sequence[float | None]]] | None = None,
            ) -> "DELEPredictor":
        """Fine-tune on ``archs``/``y`` from the pre-trained state (pre-training
        first where needed; see the module doc for where signals come from).
        ``validation`` = (archs, targets) selects the epoch by Kendall tau."""
        import torch

        from .nn.batch import GraphBatch
        from .nn.train import train_networks

        archs, y, space, val = check_training_data(archs, y, validation)
        if pool is not None:
            self.pretrain(*pool)
        elif not hasattr(self, "pretrained_state_"):
            if low_fidelity is not None:
                self.pretrain(archs, low_fidelity)
            elif self.signal_source == "table":
                self.pretrain(*self.table_pool(space))
            else:
                raise ConfigError("DELE needs low-fidelity signals: pass pool=(archs, signals) or "
                                  "low_fidelity=..., or set signal_source='table'")
        if self.pretrain_space_ != space:
            raise ConfigError(f"DELE was pre-trained on space {self.pretrain_space_!r}, not {space!r}")
        feat = self.pretrain_featurizer_
        batch = GraphBatch.encode(archs, feat)
        if not self.fixed_size:
            batch = batch.trimmed()
        mean, std = float(y.mean()), float(y.std()) or 1.0
        yt = torch.as_tensor((y - mean) / std, dtype=torch.float32)
        val_batch = None if val is None else (GraphBatch.encode(val[0], feat), val[1])
        nets = []
        for seed in self.member_seeds():
            torch.manual_seed(seed)
            net = self.build_network(feat)
            net.load_state_dict(self.pretrained_state_)
            net.reset_gate()   # pre-training never trains the gate: each member draws its own from its seed
            net.set_trainable(self.finetune)
            nets.append(net)
        # members that train every weight train at once, as one vmapped network
        results = train_networks(nets, batch, yt, self.train_config(len(archs)), seed=self.seed, val=val_batch,
                                 stacked=self.finetune == "all")
        return self._keep_fit(space, feat, nets, batch, yt, (mean, std), results)

    # -- inspection ------------------------------------------------------------------
    def expert_weights(self, archs: Sequence[Architecture]) -> np.ndarray:
        """The gate's weights (n, experts) for ``archs``, averaged over the
        ensemble members; columns in the order of ``signals``."""
        import torch

        from .nn.batch import GraphBatch
        self._check_fitted()
        archs = check_archs(archs, self.space_)
        batch = GraphBatch.encode(archs, self.featurizer_)
        with torch.no_grad():
            weights = []
            for net in self.networks_:
                net.eval()
                w = net.weights(None if net.gate is None else net.encoder.embed(batch))   # the gate's encoder
                weights.append(np.broadcast_to(w.double().numpy(), (len(archs), len(self.signals))))
        return np.mean(weights, axis=0)


@functools.lru_cache(maxsize=None)
def _network_class():
    """The torch module, defined on first use (importing this file stays torch-free)."""
    import torch
    from torch import nn

    class ExpertMLPs(nn.Module):
        """``experts`` one-hidden-layer MLPs on one embedding, computed as one
        wide layer and a per-expert output: (n, dim) -> (n, experts)."""

        def __init__(self, dim: int, experts: int, hidden: int):
            super().__init__()
            self.experts, self.hidden = experts, hidden
            self.inner = nn.Linear(dim, experts * hidden)
            bound = hidden ** -0.5   # nn.Linear's initialization for the outputs
            self.out_weight = nn.Parameter(torch.empty(experts, hidden).uniform_(-bound, bound))
            self.out_bias = nn.Parameter(torch.empty(experts).uniform_(-bound, bound))

        def forward(self, e: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.inner(e)).unflatten(-1, (self.experts, self.hidden))
            return (h * self.out_weight).sum(-1) + self.out_bias

    class DELENetwork(nn.Module):
        """One expert per signal (linear, or ``hidden`` > 0: an MLP) and a softmax gate, on one shared
        ``encoder`` or (``expert_encoders``) one encoder per expert, ``encoder``
        then being the gate's own."""

        def __init__(self, encoder: nn.Module, experts: int, gate: str = "arch",
                     expert_encoders: "list[nn.Module] | None" = None, hidden: int = 0):
            super().__init__()
            self.encoder = encoder
            self.expert_encoders = None if expert_encoders is None else nn.ModuleList(expert_encoders)
            def heads(dim: int, n: int) -> nn.Module:   # n experts on one embedding
                return ExpertMLPs(dim, n, hidden) if hidden else nn.Linear(dim, n)
            if self.expert_encoders is None:
                self.experts = heads(encoder.out_dim, experts)
            else:   # head k reads encoder k only
                self.expert_heads = nn.ModuleList(heads(e.out_dim, 1) for e in self.expert_encoders)
            if gate == "arch":
                self.gate = nn.Linear(encoder.out_dim, experts)
            else:   # one learned mixture for every architecture (the paper's ablation)
                self.register_parameter("gate_logits", nn.Parameter(torch.zeros(experts)))
                self.gate = None
            self.frozen_encoder = False

        def expert_scores(self, batch, embedding: "torch.Tensor | None" = None) -> torch.Tensor:
            """(n, experts); ``embedding``: the shared encoder's, when already computed."""
            if self.expert_encoders is None:
                return self.experts(self.encoder.embed(batch) if embedding is None else embedding)
            return torch.cat([head(enc.embed(batch)) for enc, head in zip(self.expert_encoders, self.expert_heads)],
                             dim=-1)

        def weights(self, embedding: "torch.Tensor | None") -> torch.Tensor:
            """(n, experts) from the gate's embedding; the uniform gate reads
            none and gives (experts,), one mix for every architecture."""
            if self.gate is None:
                return torch.softmax(self.gate_logits, dim=-1)
            return torch.softmax(self.gate(embedding), dim=-1)

        def forward(self, batch) -> torch.Tensor:
            # ``encoder`` embeds for the shared experts and the arch gate: with
            # experts on their own encoders, a uniform gate leaves it unused
            unused = self.gate is None and self.expert_encoders is not None
            e = None if unused else self.encoder.embed(batch)
            return (self.weights(e) * self.expert_scores(batch, e)).sum(-1)

        def reset_gate(self) -> None:
            """A fresh architecture-conditioned gate (from torch's current
            random state), with a fresh encoder where the gate has its own;
            the uniform gate starts as an even mix anyway."""
            if self.gate is not None:
                self.gate.reset_parameters()
            if self.expert_encoders is not None:
                for m in self.encoder.modules():
                    if m is not self.encoder and hasattr(m, "reset_parameters"):
                        m.reset_parameters()

        def pretrained_encoders(self) -> "list[nn.Module]":
            return [self.encoder] if self.expert_encoders is None else list(self.expert_encoders)

        def set_trainable(self, part: str) -> None:
            """Fine-tune "all", only the "heads" (experts + gate) or only the
            "gate" (a gate's own encoder is never pre-trained: it always trains)."""
            for enc in self.pretrained_encoders():
                for p in enc.parameters():
                    p.requires_grad_(part == "all")
            heads = self.experts if self.expert_encoders is None else self.expert_heads
            for p in heads.parameters():
                p.requires_grad_(part in ("all", "heads"))
            self.frozen_encoder = part != "all"

        def train(self, mode: bool = True):
            super().train(mode)
            if self.frozen_encoder:   # a frozen encoder keeps its batch-norm statistics too
                for enc in self.pretrained_encoders():
                    enc.eval()
            return self

    return DELENetwork
