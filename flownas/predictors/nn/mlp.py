"""MLP encoder on the flattened one-hot ops (and node attributes) and the
upper triangle of the adjacency matrix, padded to a fixed node count."""
from __future__ import annotations

import torch
from torch import nn

from .batch import GraphBatch


class MLPEncoder(nn.Module):
    def __init__(self, num_features: int, num_nodes: int, hidden: int = 128, layers: int = 3,
                 dropout: float = 0.0):
        super().__init__()
        self.num_nodes = num_nodes
        rows, cols = torch.triu_indices(num_nodes, num_nodes, offset=1)
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)
        dims = [num_nodes * num_features + len(rows)] + [hidden] * layers
        mods = []
        for a, b in zip(dims[:-1], dims[1:]):
            mods += [nn.Linear(a, b), nn.ReLU(), nn.Dropout(dropout)]
        self.net = nn.Sequential(*mods)
        self.out_dim = hidden

    def embed(self, batch: GraphBatch) -> torch.Tensor:
        if batch.num_nodes != self.num_nodes:
            raise ValueError(f"the MLP takes graphs padded to {self.num_nodes} nodes, got {batch.num_nodes}")
        flat = torch.cat([batch.x.flatten(1), batch.adj[:, self.rows, self.cols]], dim=1)
        return self.net(flat)
