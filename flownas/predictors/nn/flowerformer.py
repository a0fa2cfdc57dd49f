"""FlowerFormer (Hwang et al., CVPR 2024, arXiv 2403.12821) on padded dense tensors.

Each layer sums two views of the graph, then applies a feed-forward block:

* the **flow encode module**: asynchronous message passing that follows the
  flow of the network. Forward: generation by generation in topological order
  (``batch.depth``), every node attends over its predecessors' *new* states and
  combines the message with its own input state in a GRU cell; backward: the
  same over successors in reverse topological order (``batch.rdepth``),
  starting from the forward states. All graphs of the batch advance one
  generation at a time together (a loop over generations, none over graphs or
  nodes).
* the **flow-aware global attention**: multi-head self-attention masked to the
  node pairs joined by a directed path (``reach | reach.T | I``).

Node states are mean-pooled into the graph embedding (``embed``), which
``GraphRegressor`` (heads.py) turns into a score; DELE puts its own heads on
the same encoder.

As in the official code, the attention score of predecessor j of node i is a
linear function of [x_i ; h_j + e]; the terms in x_i and the constant edge
embedding e are the same for all j and cancel in the softmax over j, so the
score is computed as ``w . h_j``. Unlike the official code, the backward pass
visits the true reverse generations (longest path to a sink), each node
gathering all its successors at once, and padding never leaks into the
normalization statistics.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .batch import GraphBatch
from .heads import masked_mean


def softmax_small(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Softmax over a short dimension (a few nodes): moved to the front, so
    the kernel vectorizes across the long one (several times faster on CPU)."""
    return torch.softmax(x.movedim(dim, 0).contiguous(), dim=0).movedim(0, dim)


class MaskedBatchNorm(nn.Module):
    """BatchNorm over the real nodes only (padding neither counts nor changes)."""

    def __init__(self, dim: int):
        super().__init__()
        self.bn = nn.BatchNorm1d(dim)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return self.bn(h.reshape(-1, h.shape[-1])).view_as(h) * mask.unsqueeze(-1)
        out = torch.zeros_like(h)
        out[mask] = self.bn(h[mask])
        return out


def _norm(kind: str, dim: int) -> nn.Module:
    if kind == "batch":
        return MaskedBatchNorm(dim)
    if kind == "layer":
        return _MaskedLayerNorm(dim)
    if kind == "none":
        return _NoNorm()
    raise ValueError(f"unknown norm {kind!r} (batch, layer, none)")


class _MaskedLayerNorm(nn.LayerNorm):
    def forward(self, h, mask):
        return super().forward(h) * mask.unsqueeze(-1)


class _NoNorm(nn.Module):
    def forward(self, h, mask):
        return h * mask.unsqueeze(-1)


class Schedule:
    """The order of one flow direction, computed once per batch and shared by
    all layers: for every generation, the flat indices of its nodes and its
    incoming edges (flat index of the sender, position of the receiver)."""

    def __init__(self, neighbours: torch.Tensor, generation: torch.Tensor):
        B, n = generation.shape
        flat = generation.reshape(-1)
        rows = neighbours.reshape(B * n, n)
        self.steps = []
        for g in range(int(flat.max()) + 1 if flat.numel() else 0):
            idx = torch.nonzero(flat == g).squeeze(1)
            if idx.numel():
                receiver, sender = torch.nonzero(rows[idx], as_tuple=True)
                sender = torch.div(idx[receiver], n, rounding_mode="floor") * n + sender
                self.steps.append((idx, sender, receiver))


class FlowPass(nn.Module):
    """One direction of the flow encode module: attention over the
    neighbours that are already done (predecessors forward, successors
    backward), then a GRU cell (input = the node's own state, hidden = the
    message). Only the nodes of the current generation are computed.

    The attention weight of sender j is softmax_j(w . h_j) over the
    receiver's senders; it is computed as exp(w . h_j) / sum exp(w . h_j'),
    both sums gathered along the edges (w . h_j is clamped to +-20, beyond
    anything the bounded GRU states and a decayed w reach)."""

    def __init__(self, dim: int):
        super().__init__()
        self.score = nn.Linear(dim, 1, bias=False)
        self.gru = nn.GRUCell(dim, dim)

    def forward(self, x: torch.Tensor, schedule: Schedule) -> torch.Tensor:
        """x (B, n, d) input states -> new states (B, n, d), 0 on padding."""
        B, n, d = x.shape
        gi = F.linear(x.reshape(B * n, d), self.gru.weight_ih, self.gru.bias_ih)  # input side, once
        h = x.new_zeros(B * n, d)
        weighted = x.new_zeros(B * n, d)    # exp(w . h_j) h_j of each finished node
        weight = x.new_zeros(B * n)         # exp(w . h_j)
        last = len(schedule.steps) - 1
        for step, (idx, sender, receiver) in enumerate(schedule.steps):
            gi_k = gi[idx]
            if step == 0:  # sources (sinks backward): no neighbours, the hidden state is 0
                msg = None
                gh = self.gru.bias_hh.expand(len(idx), 3 * d)
            else:          # a node of a later generation always has a neighbour
                num = x.new_zeros(len(idx), d).index_add(0, receiver, weighted[sender])
                den = x.new_zeros(len(idx)).index_add(0, receiver, weight[sender])
                msg = num / den.unsqueeze(-1)
                gh = F.linear(msg, self.gru.weight_hh, self.gru.bias_hh)
            # GRU cell (PyTorch's gate order r, z, n): r and z in one sigmoid
            r, z = torch.sigmoid(gi_k[:, :2 * d] + gh[:, :2 * d]).chunk(2, dim=-1)
            new = torch.tanh(torch.addcmul(gi_k[:, 2 * d:], r, gh[:, 2 * d:]))
            new = new - z * new if msg is None else torch.lerp(new, msg, z)   # (1 - z) * new + z * msg
            h = h.index_copy(0, idx, new)
            if step < last:
                e = F.linear(new, self.score.weight).clamp(-20.0, 20.0).exp()
                weighted = weighted.index_copy(0, idx, e * new)
                weight = weight.index_copy(0, idx, e.squeeze(-1))
        return h.view(B, n, d)


class FlowEncode(nn.Module):
    """Forward then backward asynchronous message passing (official "fnb")."""

    def __init__(self, dim: int, dropout: float = 0.0):
        super().__init__()
        self.forward_pass = FlowPass(dim)
        self.backward_pass = FlowPass(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, schedules: tuple[Schedule, Schedule]) -> torch.Tensor:
        hf = self.forward_pass(self.dropout(h), schedules[0])
        hb = self.backward_pass(self.dropout(hf), schedules[1])
        return torch.relu(hb)


class FlowAttention(nn.Module):
    """Multi-head self-attention restricted to node pairs on a common path."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be divisible by heads ({heads})")
        self.heads = heads
        self.qk = nn.Linear(dim, 2 * dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        self.out = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, h: torch.Tensor, flow_mask: torch.Tensor) -> torch.Tensor:
        B, n, d = h.shape
        hd = d // self.heads
        q, k = self.qk(h).view(B, n, 2, self.heads, hd).unbind(2)
        v = self.v(h).view(B, n, self.heads, hd)
        # graphs are tiny: (B, i, j, head) with the softmax over j vectorizes
        # across heads, where the usual (B, head, i, j) layout runs a short
        # softmax per row (several times slower on a CPU); the products are
        # batched matmuls (faster than the equivalent einsum on a CPU); plain
        # ops also batch under torch.func.vmap (stacked ensembles)
        logits = torch.matmul(q.transpose(1, 2), k.permute(0, 2, 3, 1)).permute(0, 2, 3, 1) * hd ** -0.5
        att = torch.softmax(logits.masked_fill(~flow_mask.unsqueeze(-1), float("-inf")), dim=2)
        att = F.dropout(att, self.dropout, self.training)
        out = torch.matmul(att.permute(0, 3, 1, 2), v.transpose(1, 2)).transpose(1, 2)   # (B, i, head, c)
        return self.out(out.reshape(B, n, d))


class FlowerLayer(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float = 0.0, attn_dropout: float = 0.0,
                 norm: str = "batch"):
        super().__init__()
        self.flow = FlowEncode(dim, dropout)
        self.attn = FlowAttention(dim, heads, attn_dropout)
        self.ffn = nn.Sequential(nn.Linear(dim, 2 * dim), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(2 * dim, dim), nn.Dropout(dropout))
        self.dropout = nn.Dropout(dropout)
        self.norm_flow, self.norm_attn, self.norm_out = (_norm(norm, dim) for _ in range(3))

    def forward(self, h: torch.Tensor, batch: GraphBatch, schedules: tuple[Schedule, Schedule],
                flow_mask: torch.Tensor) -> torch.Tensor:
        local = self.norm_flow(h + self.dropout(self.flow(h, schedules)), batch.mask)
        glob = self.norm_attn(h + self.dropout(self.attn(h, flow_mask)), batch.mask)
        h = local + glob
        return self.norm_out(h + self.ffn(h), batch.mask)


class FlowerFormerEncoder(nn.Module):
    """Node features -> ``layers`` FlowerFormer layers -> mean-pooled graph
    embedding of size ``out_dim`` (= ``dim``).

    ``depth_embedding`` adds a learned embedding of each node's forward and
    backward generation to its input (the official configuration leaves its
    node encoder off, so by default this is off too).
    """

    def __init__(self, num_features: int, dim: int = 64, layers: int = 4, heads: int = 8,
                 dropout: float = 0.0, attn_dropout: float = 0.0, norm: str = "batch",
                 depth_embedding: bool = False, max_depth: int = 64):
        super().__init__()
        self.input = nn.Linear(num_features, dim)
        self.input_norm = _norm(norm, dim)
        self.max_depth = max_depth
        self.depth = nn.Embedding(2 * max_depth, dim) if depth_embedding else None
        self.layers = nn.ModuleList(FlowerLayer(dim, heads, dropout, attn_dropout, norm) for _ in range(layers))
        self.out_dim = dim

    def node_states(self, batch: GraphBatch) -> torch.Tensor:
        """Final node states (B, n, dim); 0 on padding."""
        h = self.input(batch.x)
        if self.depth is not None:
            fwd = batch.depth.clamp(0, self.max_depth - 1)
            bwd = batch.rdepth.clamp(0, self.max_depth - 1) + self.max_depth
            h = h + self.depth(fwd) + self.depth(bwd)
        h = torch.relu(self.input_norm(h, batch.mask))
        eye = torch.eye(batch.num_nodes, dtype=torch.bool)
        flow_mask = batch.reach | batch.reach.transpose(1, 2) | eye
        edges = batch.adj > 0
        schedules = (Schedule(edges.transpose(1, 2), batch.depth), Schedule(edges, batch.rdepth))
        for layer in self.layers:
            h = layer(h, batch, schedules, flow_mask)
        return h

    def embed(self, batch: GraphBatch) -> torch.Tensor:
        return masked_mean(self.node_states(batch), batch.mask)
