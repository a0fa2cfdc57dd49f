"""NAR-Former (Yi et al., CVPR 2023) on padded dense tensors, and the pieces
NAR-Former V2 and TA-GATES share with it.

**Tokenizer.** Every node becomes one token, the concatenation of three
NeRF-style sinusoidal codes (``sinusoid``): of its op index, of its own
position in a topological order, and the *sum* of the codes of its
predecessors' positions (a source gets the code of -1). An end token (all
codes of 1e5) follows the nodes, and a depth token (the code of the node
count, through a linear map and ReLU) precedes them.

**Positions.** A node's position is its rank among the real nodes of its row
(``node_positions``), i.e. the column order of the batch. The predictors feed
every architecture in its canonical numbering (a topological order that
depends only on the labelled graph), so predictions do not depend on how an
architecture's nodes are numbered; training relabels minibatches with other
topological orders (``flow_consistent_relabel``: the information-flow
consistency augmentation).

**Multi-stage fusion transformer.** Pre-LN transformer blocks over the tokens
(``depths[0]`` of them), then stages that fuse the token sequence into
4, 2 and finally 1 token: learned queries cross-attend to the sequence (no
residual, the shape changes), each later stage first lets the previous
stage's tokens query the encoder memory again. The last token, layer-normed,
is the architecture's embedding.

**Loss** (``narformer_step_loss``): MSE + ``sr_weight`` x sequence ranking
(L1 between predicted and true differences of each sample to a randomly
paired one) + ``ac_weight`` x architecture consistency (L1 between the
predictions for a minibatch and for its relabeled copy; both copies also
enter the MSE and SR terms, as in the official code).

Departures from the official code (all deliberate): a key padding mask so
graphs of several sizes share a batch; a linear input map when the model
width differs from the token width (the paper's 192 = 3 x 64); no sigmoid on
the output (targets are standardized); augmentation by a fresh random
topological order every step instead of one precomputed relabeling per
architecture; no EMA copy of the weights.
"""
from __future__ import annotations

import math
from dataclasses import fields

import torch
import torch.nn.functional as F
from torch import nn

from .batch import GraphBatch

END_CODE = 1e5       # the official tokenizer's code of the end token
SOURCE_CODE = -1.0   # ... and of a source's (missing) predecessors


# -- tokens ------------------------------------------------------------------
def sinusoid(x: torch.Tensor, freqs: int) -> torch.Tensor:
    """NeRF encoding of scalars ``x`` (any shape) -> ``x.shape + (2 * freqs,)``:
    [sin(b_1 pi x), cos(b_1 pi x), ..., sin(b_L pi x), cos(b_L pi x)] with the
    b linearly spaced from 1 to 2**(L-1) (NAR-Former's tokenizer). Computed in
    float64 so that it is the same on every batch layout."""
    bands = torch.linspace(1.0, 2.0 ** (freqs - 1), freqs, dtype=torch.float64)
    angle = x.to(torch.float64).unsqueeze(-1) * math.pi * bands
    return torch.stack([torch.sin(angle), torch.cos(angle)], dim=-1).flatten(-2).float()


def node_positions(mask: torch.Tensor) -> torch.Tensor:
    """Rank of every real node among the real nodes of its row (0 on padding)."""
    return (mask.long().cumsum(1) - 1).clamp_min(0) * mask


def flow_consistent_relabel(batch: GraphBatch, generator: torch.Generator) -> GraphBatch:
    """Every graph renumbered by a random topological order (an isomorphic
    copy in which information still flows from lower to higher positions).

    Each node draws u ~ U(0, 1) and is keyed by the largest u among itself
    and its ancestors; sorting by (key, depth) puts every node after its
    ancestors. Padding goes last."""
    B, n = batch.mask.shape
    u = torch.rand(B, n, generator=generator)
    ancestors = batch.reach.transpose(1, 2) | torch.eye(n, dtype=torch.bool)
    key = torch.where(ancestors, u.unsqueeze(1), torch.zeros(())).amax(-1)
    key = torch.where(batch.mask, key, torch.full((), 2.0))
    by_depth = torch.argsort(batch.depth, dim=1, stable=True)
    perm = torch.gather(by_depth, 1, torch.argsort(torch.gather(key, 1, by_depth), dim=1, stable=True))
    return batch.relabeled(perm)


def concat_batches(a: GraphBatch, b: GraphBatch) -> GraphBatch:
    """Two batches of the same padded width as one."""
    return GraphBatch(**{f.name: torch.cat([getattr(a, f.name), getattr(b, f.name)]) for f in fields(a)})


def narformer_step_loss(sr_weight: float, ac_weight: float, augment: bool):
    """NAR-Former's training loss (module doc) as a ``train_network`` step
    loss. With ``augment`` every minibatch is joined by a relabeled copy."""
    def step(net, batch, y, generator):
        if augment:
            batch = concat_batches(batch, flow_consistent_relabel(batch, generator))
            y = torch.cat([y, y])
        pred = net(batch)
        loss = F.mse_loss(pred, y)
        if sr_weight:
            perm = torch.randperm(len(y), generator=generator)
            loss = loss + sr_weight * F.l1_loss(pred - pred[perm], y - y[perm])
        if augment and ac_weight:
            first, second = pred.chunk(2)
            loss = loss + ac_weight * F.l1_loss(first, second)
        return loss
    return step


class Tokenizer(nn.Module):
    """Graph batch -> node tokens (B, n, ``out_dim``): sinusoidal codes of the
    op, the node's position and (``sources``) the sum of its predecessors'
    position codes, then the numeric node attributes; 0 on padding."""

    def __init__(self, freqs: int = 32, num_attrs: int = 0, sources: bool = True,
                 op_code: str = "sinusoid", num_ops: int = 0):
        super().__init__()
        if op_code not in ("sinusoid", "onehot"):
            raise ValueError(f"unknown op code {op_code!r} (sinusoid, onehot)")
        self.freqs, self.num_attrs, self.sources, self.op_code = freqs, num_attrs, sources, op_code
        self.num_ops = num_ops
        op_dim = 2 * freqs if op_code == "sinusoid" else num_ops
        self.out_dim = op_dim + 2 * freqs * (2 if sources else 1) + num_attrs

    def forward(self, batch: GraphBatch) -> torch.Tensor:
        pos = sinusoid(node_positions(batch.mask), self.freqs)
        if self.op_code == "sinusoid":
            parts = [sinusoid(batch.ops, self.freqs), pos]
        else:
            parts = [batch.x[..., :self.num_ops], pos]
        if self.sources:
            src = torch.bmm(batch.adj.transpose(1, 2), pos)
            has_pred = batch.adj.sum(1, keepdim=True).transpose(1, 2) > 0
            parts.append(torch.where(has_pred, src, sinusoid(torch.tensor(SOURCE_CODE), self.freqs)))
        if self.num_attrs:
            parts.append(batch.x[..., -self.num_attrs:])
        return torch.cat(parts, dim=-1) * batch.mask.unsqueeze(-1)


# -- transformer ---------------------------------------------------------------
class Attention(nn.Module):
    """Multi-head attention; ``project_query=False`` takes the queries as they
    are (NAR-Former's learned fusion queries)."""

    def __init__(self, dim: int, heads: int, dropout: float, project_query: bool = True):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be divisible by heads ({heads})")
        self.heads, self.dropout = heads, dropout
        self.q = nn.Linear(dim, dim) if project_query else nn.Identity()
        self.k, self.v, self.out = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(self, query, memory, key_mask=None):
        B, lq, d = query.shape
        split = lambda t: t.view(B, -1, self.heads, d // self.heads).transpose(1, 2)  # noqa: E731
        mask = None if key_mask is None else key_mask[:, None, None, :]
        o = F.scaled_dot_product_attention(split(self.q(query)), split(self.k(memory)), split(self.v(memory)),
                                           attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.out(o.transpose(1, 2).reshape(B, lq, d))


class FeedForward(nn.Module):
    """Pre-LN position-wise FFN with its residual."""

    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, dim))

    def forward(self, x):
        return x + self.net(self.norm(x))


class SelfAttentionBlock(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dropout)
        self.ffn = FeedForward(dim, hidden, dropout)

    def forward(self, x, key_mask=None):
        h = self.norm(x)
        return self.ffn(x + self.attn(h, h, key_mask))


class FusionStage(nn.Module):
    """``queries`` learned tokens cross-attend to a sequence (no residual:
    the length changes), then FFN and ``extra`` self-attention blocks. With
    ``refetch`` the previous stage's tokens first query the encoder memory
    again (the official FuseFeatureBlock)."""

    def __init__(self, dim: int, heads: int, hidden: int, dropout: float, queries: int, extra: int,
                 refetch: bool):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(1, queries, dim))
        self.refetch = None
        if refetch:
            self.refetch_norm_kv, self.refetch_norm_q = nn.LayerNorm(dim), nn.LayerNorm(dim)
            self.refetch = Attention(dim, heads, dropout)
            self.refetch_ffn = FeedForward(dim, hidden, dropout)
        self.norm = nn.LayerNorm(dim)
        self.cross = Attention(dim, heads, dropout, project_query=False)
        self.ffn = FeedForward(dim, hidden, dropout)
        self.blocks = nn.ModuleList(SelfAttentionBlock(dim, heads, hidden, dropout) for _ in range(extra))

    def forward(self, tokens, memory, memory_mask):
        if self.refetch is not None:
            kv = self.refetch_ffn(self.refetch(self.refetch_norm_q(tokens), self.refetch_norm_kv(memory),
                                               memory_mask))
            kv_mask = None
        else:
            kv, kv_mask = tokens, memory_mask
        x = self.ffn(self.cross(self.queries.expand(len(kv), -1, -1), self.norm(kv), kv_mask))
        for block in self.blocks:
            x = block(x)
        return x


class NARFormerEncoder(nn.Module):
    """Tokens -> ``depths[0]`` transformer blocks -> fusion stages down to one
    token -> its embedding (B, ``dim``). See the module doc."""

    def __init__(self, num_attrs: int = 0, dim: int = 192, heads: int = 6, ffn_ratio: int = 4,
                 depths: tuple[int, ...] = (6, 1, 1, 1), freqs: int = 32, dropout: float = 0.1):
        super().__init__()
        if not depths or min(depths) < 1:
            raise ValueError(f"depths must be positive block counts, got {depths}")
        self.tokenizer = Tokenizer(freqs, num_attrs)
        tdim = self.tokenizer.out_dim
        self.input = nn.Identity() if tdim == dim else nn.Linear(tdim, dim)
        self.depth_freqs = 3 * freqs  # the official depth code is as wide as the three node codes
        self.depth_map = nn.Linear(2 * self.depth_freqs, dim)
        self.register_buffer("end_token", torch.cat([sinusoid(torch.tensor(END_CODE), freqs)] * 3
                                                    + [torch.zeros(num_attrs)]), persistent=False)
        hidden = ffn_ratio * dim
        self.blocks = nn.ModuleList(SelfAttentionBlock(dim, heads, hidden, dropout) for _ in range(depths[0]))
        stages = len(depths) - 1
        self.stages = nn.ModuleList(
            FusionStage(dim, heads, hidden, dropout, queries=2 ** (stages - s), extra=depths[s] - 1,
                        refetch=s > 1) for s in range(1, len(depths)))
        self.norm = nn.LayerNorm(dim)
        self.out_dim = dim

    def embed(self, batch: GraphBatch) -> torch.Tensor:
        tokens = self.tokenizer(batch)
        B = len(tokens)
        depth = torch.relu(self.depth_map(sinusoid(batch.mask.sum(1), self.depth_freqs)))
        seq = torch.cat([depth.unsqueeze(1), self.input(tokens),
                         self.input(self.end_token).expand(B, 1, -1)], dim=1)
        ones = torch.ones(B, 1, dtype=torch.bool)
        key_mask = torch.cat([ones, batch.mask, ones], dim=1)
        for block in self.blocks:
            seq = block(seq, key_mask)
        x = seq
        for i, stage in enumerate(self.stages):
            x = stage(x, seq, key_mask)
        return self.norm(x[:, -1])
