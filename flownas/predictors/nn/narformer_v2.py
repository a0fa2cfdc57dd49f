"""NAR-Former V2 (Yi et al., NeurIPS 2023, arXiv 2306.10792) on padded dense
tensors: a transformer whose attention is restricted by the graph.

**Tokens** (``Tokenizer`` of nn/narformer.py without predecessor codes): the
sinusoidal code (or one-hot) of the op, the sinusoidal code of the node's
position in the canonical topological order, and the standardized numeric
node attributes (whole networks: kernel, channels, stride, ...).

**Block** (``GraphAidedBlock``), repeated ``layers`` times:

* *type-aware enhancement*: x <- x * sigmoid(W_d deg + b_d), deg the node's
  number of neighbours;
* *graph-aided attention*: q = k = sigmoid(W_qk x); scores q k^T / sqrt(D)
  kept only on edges of the symmetrized adjacency A + A^T, normalized by
  their row sum (linear attention, no softmax); out = W_l (attn x) + W_r x,
  L2-normalized; then ReLU and dropout;
* *grouped FFN*: x <- x + gamma * GFFN(LN(x)), two group-linear maps (8
  groups, LayerNorm per group, ratio 4) with a learned per-channel scale
  gamma (layer scale, initialized to 1e-4).

**Readout.** ``fusion`` (the official cell readout): the mean node state of
every block, weighted by a sigmoid MLP over their concatenation and summed;
``sum``: the sum of the last block's node states (the official readout of
whole networks for latency, which adds up over layers). Then two hidden
layers and a linear output (``NARFormerV2Regressor``).

Departures from the official code: every graph of a batch at once on padded
tensors (the official forward loops over samples); no -logsigmoid on the
output (targets are standardized, latency log-transformed by the predictor);
no static whole-network features (FLOPs etc.) next to the pooled nodes.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .batch import GraphBatch
from .heads import masked_mean
from .narformer import Tokenizer


def _thomas_init(module: nn.Module) -> None:
    """The official initialization of the readout and head layers (the graph
    layers keep PyTorch's): U(-1/sqrt(n), 1/sqrt(n)), n the last dimension."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            for t in (m.weight, m.bias):
                if t is not None:
                    bound = 1.0 / math.sqrt(t.shape[-1])
                    nn.init.uniform_(t, -bound, bound)


class GraphAidedAttention(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, degree: bool = True):
        super().__init__()
        self.degree = nn.Linear(1, in_dim) if degree else None
        self.qk = nn.Linear(in_dim, in_dim)
        self.lin_l = nn.Linear(in_dim, out_dim)
        self.lin_r = nn.Linear(in_dim, out_dim, bias=False)

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        if self.degree is not None:
            x = x * torch.sigmoid(self.degree(adj.sum(-1, keepdim=True)))
        qk = torch.sigmoid(self.qk(x))
        scores = torch.bmm(qk, qk.transpose(1, 2)) / math.sqrt(x.shape[-1]) * adj
        attn = scores / (scores.sum(-1, keepdim=True) + 1e-6)
        out = self.lin_l(torch.bmm(attn, x)) + self.lin_r(x)
        return F.normalize(out, p=2.0, dim=-1)


class GroupLinear(nn.Module):
    """Grouped linear map (B, n, in) -> (B, n, out), LayerNorm per group."""

    def __init__(self, in_dim: int, out_dim: int, groups: int):
        super().__init__()
        if in_dim % groups or out_dim % groups:
            raise ValueError(f"group linear {in_dim} -> {out_dim}: both must be divisible by groups ({groups})")
        self.groups = groups
        self.weight = nn.Parameter(torch.empty(groups, in_dim // groups, out_dim // groups))
        self.bias = nn.Parameter(torch.zeros(groups, 1, out_dim // groups))
        self.norm = nn.LayerNorm(out_dim // groups)
        nn.init.xavier_uniform_(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape[:-1]
        g = x.reshape(-1, self.groups, x.shape[-1] // self.groups).transpose(0, 1)   # (G, N, in/G)
        g = torch.baddbmm(self.bias, g, self.weight)                                  # (G, N, out/G)
        return self.norm(g.transpose(0, 1)).reshape(*shape, -1)


class GraphAidedBlock(nn.Module):
    def __init__(self, in_dim: int, dim: int, groups: int, ffn_ratio: int, dropout: float,
                 layer_scale: float, degree: bool):
        super().__init__()
        self.attn = GraphAidedAttention(in_dim, dim, degree)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(GroupLinear(dim, dim * ffn_ratio, groups), nn.ReLU(), nn.Dropout(dropout),
                                 GroupLinear(dim * ffn_ratio, dim, groups), nn.Dropout(dropout))
        self.gamma = nn.Parameter(torch.full((dim,), float(layer_scale)))

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        x = self.dropout(torch.relu(self.attn(x, adj)))
        return x + self.gamma * self.ffn(self.norm(x))


class NARFormerV2Encoder(nn.Module):
    """Tokens -> ``layers`` graph-aided blocks -> graph embedding (B, ``dim``)."""

    def __init__(self, num_ops: int, num_attrs: int = 0, dim: int = 512, layers: int = 6, freqs: int = 32,
                 op_code: str = "sinusoid", groups: int = 8, ffn_ratio: int = 4, dropout: float = 0.05,
                 layer_scale: float = 1e-4, degree: bool = True, readout: str = "fusion"):
        super().__init__()
        if readout not in ("fusion", "sum"):
            raise ValueError(f"unknown readout {readout!r} (fusion, sum)")
        self.tokenizer = Tokenizer(freqs, num_attrs, sources=False, op_code=op_code, num_ops=num_ops)
        dims = [self.tokenizer.out_dim] + [dim] * layers
        self.blocks = nn.ModuleList(GraphAidedBlock(a, b, groups, ffn_ratio, dropout, layer_scale, degree)
                                    for a, b in zip(dims[:-1], dims[1:]))
        self.readout = readout
        if readout == "fusion":
            total = layers * dim
            self.fusion = nn.Sequential(nn.Linear(total, total // 4), nn.ReLU(), nn.Linear(total // 4, layers),
                                        nn.Sigmoid())
            _thomas_init(self.fusion)
        self.out_dim = dim

    def embed(self, batch: GraphBatch) -> torch.Tensor:
        x = self.tokenizer(batch)
        adj = batch.adj + batch.adj.transpose(1, 2)
        means = []
        for block in self.blocks:
            x = block(x, adj)
            if self.readout == "fusion":
                means.append(masked_mean(x, batch.mask))
        if self.readout == "sum":
            return (x * batch.mask.unsqueeze(-1)).sum(1)
        stacked = torch.stack(means, dim=1)                                   # (B, layers, dim)
        weights = self.fusion(stacked.flatten(1))                             # (B, layers)
        return (stacked * weights.unsqueeze(-1)).sum(1)


class NARFormerV2Regressor(nn.Module):
    """Encoder, then the official head: two hidden layers and a linear output."""

    def __init__(self, encoder: NARFormerV2Encoder, hidden: int = 512, dropout: float = 0.05):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Sequential(nn.Linear(encoder.out_dim, hidden), nn.ReLU(), nn.Dropout(dropout),
                                  nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 1))
        _thomas_init(self.head)

    def forward(self, batch: GraphBatch) -> torch.Tensor:
        return self.head(self.encoder.embed(batch)).squeeze(-1)
