"""Encoder + head: every graph network is an *encoder* (``embed(batch)`` ->
(B, ``out_dim``) graph embeddings) under a regression head, so an encoder can
be reused with other heads (DELE's low-fidelity heads, latency heads)."""
from __future__ import annotations

import torch
from torch import nn

from .batch import GraphBatch


def masked_mean(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of node states (B, n, d) over the real nodes (B, n)."""
    m = mask.unsqueeze(-1).to(h.dtype)
    return (h * m).sum(1) / m.sum(1).clamp_min(1.0)


class GraphRegressor(nn.Module):
    """``head(encoder.embed(batch))``: one score per graph, shape (B,)."""

    def __init__(self, encoder: nn.Module, hidden: int = 0, dropout: float = 0.0):
        super().__init__()
        self.encoder = encoder
        d = encoder.out_dim
        self.head = (nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 1))
                     if hidden else nn.Linear(d, 1))

    def forward(self, batch: GraphBatch) -> torch.Tensor:
        return self.head(self.encoder.embed(batch)).squeeze(-1)
