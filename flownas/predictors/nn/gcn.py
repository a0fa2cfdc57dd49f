"""The neural predictor's GCN (Wen et al., "Neural Predictor for Neural
Architecture Search", ECCV 2020): graph convolutions over the normalized
adjacency with self-loops, run along the edges and against them and averaged
(the graph is directed), then mean pooling."""
from __future__ import annotations

import torch
from torch import nn

from .batch import GraphBatch
from .heads import masked_mean


def _normalized(adj: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Row-normalized (A + I) over the real nodes: a node averages itself and its neighbours."""
    eye = torch.diag_embed(mask.to(adj.dtype))
    a = adj + eye
    return a / a.sum(-1, keepdim=True).clamp_min(1.0)


class GCNLayer(nn.Module):
    def __init__(self, dim_in: int, dim_out: int, dropout: float = 0.0):
        super().__init__()
        self.along = nn.Linear(dim_in, dim_out)
        self.against = nn.Linear(dim_in, dim_out)
        self.norm = nn.LayerNorm(dim_out)
        self.dropout = nn.Dropout(dropout)

    def forward(self, h, a_in, a_out, mask):
        out = 0.5 * (torch.bmm(a_in, self.along(h)) + torch.bmm(a_out, self.against(h)))
        return self.dropout(torch.relu(self.norm(out))) * mask.unsqueeze(-1)


class GCNEncoder(nn.Module):
    def __init__(self, num_features: int, dim: int = 144, layers: int = 3, dropout: float = 0.1):
        super().__init__()
        dims = [num_features] + [dim] * layers
        self.layers = nn.ModuleList(GCNLayer(a, b, dropout) for a, b in zip(dims[:-1], dims[1:]))
        self.out_dim = dim

    def embed(self, batch: GraphBatch) -> torch.Tensor:
        a_in = _normalized(batch.adj.transpose(1, 2), batch.mask)   # a node hears its predecessors
        a_out = _normalized(batch.adj, batch.mask)                  # ... and its successors
        h = batch.x
        for layer in self.layers:
            h = layer(h, a_in, a_out, batch.mask)
        return masked_mean(h, batch.mask)
