"""GATES (Ning et al., ECCV 2020) with TA-GATES' training-analogous passes
(Ning et al., NeurIPS 2022) on padded dense tensors, operations on nodes.

**GATES.** Architectures process information: a "virtual information"
vector enters at the sources and flows through the DAG in topological order;
each node's operation acts as a gate on what reaches it. One flow layer
computes, generation by generation (``batch.depth``; all graphs of the batch
advance together), for every node v

    out_v = sigmoid(W_a e_v) * (sum_{u in pred(v)} out_u) W + in_v R + b

where e_v is v's operation embedding, in_v its state from the previous layer
(the sources start from a learned input embedding, the other nodes from a
zero one, as in aw_nas) and ``identity_ops`` (skip connections) pass their
input ungated. Layers are stacked with ReLU in between. Unlike aw_nas' dense
layers, where one layer moves information one hop and the layer count must
cover the longest path, every layer here carries it from the sources to the
sinks.

**TA-GATES.** The operation embeddings are updated over ``time_steps``
rounds, as training updates weights: forward pass; the sinks' output,
converted by an MLP, enters a backward pass over the reversed DAG (reverse
generations, ``batch.rdepth``); each parametrized operation's embedding moves
by ``update_scale`` x MLP([e_v, forward state, backward state]) (the first
two detached, as in the official configuration); the last round's forward
pass gives the embedding: the mean state of the sink(s).

**Symmetry breaking** (TA-GATES' "random" method): Gaussian noise (std
``noise``) on the initial operation embeddings, so that operations of the
same type in symmetric places can get different updates. In training it is
drawn afresh every step; in evaluation it is a fixed draw indexed by the
node's position (the predictor feeds canonical numberings, so this is a
deterministic, isomorphism-invariant function of the graph).
"""
from __future__ import annotations

import torch
from torch import nn

from .batch import GraphBatch
from .flowerformer import Schedule
from .heads import masked_mean
from .narformer import node_positions

NOISE_TABLE_SIZE = 256   # positions beyond wrap around


class GatedFlow(nn.Module):
    """One GATES flow layer in one direction (module doc). Each node is
    computed once, when its generation comes; the hop map is linear, so the
    message is the sum of the senders' already mapped outputs."""

    def __init__(self, in_dim: int, dim: int, op_dim: int):
        super().__init__()
        self.gate = nn.Linear(op_dim, dim)
        self.hop = nn.Linear(dim, dim, bias=False)
        self.residual = nn.Linear(in_dim, dim)

    def forward(self, h, schedule: Schedule, op_emb, identity):
        """h (B, n, in) -> (B, n, dim), 0 on padding."""
        B, n, _ = h.shape
        gate = torch.where(identity.unsqueeze(-1), torch.ones(()), torch.sigmoid(self.gate(op_emb)))
        gate, base = gate.reshape(B * n, -1), self.residual(h).reshape(B * n, -1)
        d = base.shape[-1]
        (first, _, _), *later = schedule.steps    # the sources (sinks backward): no message
        mapped = base.new_zeros(B * n, d).index_copy_(0, first, self.hop(base[first]))
        outs = [base[first]]
        for idx, sender, receiver in later:
            # a message per edge, summed per receiver: the cost follows the edges, not B * n * n;
            # the gather keeps no reference to ``mapped``, so autograd lets it be written in place
            msg = base.new_zeros(len(idx), d).index_add_(0, receiver, mapped[sender])
            new = gate[idx] * msg + base[idx]
            outs.append(new)
            mapped.index_copy_(0, idx, self.hop(new))
        done = torch.cat([idx for idx, _, _ in schedule.steps])
        out = base.new_zeros(B * n, d).index_copy(0, done, torch.cat(outs))
        return out.view(B, n, d)


class FlowStack(nn.Module):
    def __init__(self, in_dim: int, dims: tuple[int, ...], op_dim: int, dropout: float):
        super().__init__()
        io = [in_dim] + list(dims)
        self.layers = nn.ModuleList(GatedFlow(a, b, op_dim) for a, b in zip(io[:-1], io[1:]))
        self.dropout = nn.Dropout(dropout)

    def forward(self, h, schedule: Schedule, op_emb, identity):
        for i, layer in enumerate(self.layers):
            h = layer(h, schedule, op_emb, identity)
            if i < len(self.layers) - 1:
                h = torch.relu(h)
            h = self.dropout(h)
        return h


class TAGATESEncoder(nn.Module):
    """Graph batch -> the sinks' final forward state (B, ``out_dim``)."""

    def __init__(self, num_ops: int, num_attrs: int = 0, op_dim: int = 48, node_dim: int = 48, hidden: int = 96,
                 dims: tuple[int, ...] = (128, 128, 128), time_steps: int = 4,
                 fb_dims: tuple[int, ...] = (128, 128), update_dims: tuple[int, ...] = (128,),
                 update_scale: float = 0.1, noise: float = 0.1, updatable_ops: tuple[int, ...] = (),
                 identity_ops: tuple[int, ...] = (), dropout: float = 0.0):
        super().__init__()
        if time_steps < 1:
            raise ValueError(f"time_steps must be at least 1, got {time_steps}")
        self.op_emb = nn.Embedding(num_ops + 1, op_dim)          # + padding
        self.attrs = nn.Linear(num_attrs, op_dim) if num_attrs else None
        self.num_attrs = num_attrs
        self.input_emb = nn.Parameter(torch.randn(node_dim))
        self.x_hidden = nn.Linear(node_dim, hidden)
        self.forward_flow = FlowStack(hidden, tuple(dims), op_dim, dropout)
        self.time_steps, self.update_scale, self.noise = time_steps, update_scale, noise
        updatable = torch.zeros(num_ops + 1, dtype=torch.bool)
        updatable[list(updatable_ops)] = True
        identity = torch.zeros(num_ops + 1, dtype=torch.bool)
        identity[list(identity_ops)] = True
        self.register_buffer("updatable", updatable, persistent=False)
        self.register_buffer("identity", identity, persistent=False)
        # the evaluation-time symmetry breaking: a fixed draw, saved with the weights
        self.register_buffer("noise_table", torch.randn(NOISE_TABLE_SIZE, op_dim) * noise)
        if time_steps > 1:
            fb = [dims[-1]] + list(fb_dims)
            conv = []
            for a, b in zip(fb[:-1], fb[1:]):
                conv += [nn.Linear(a, b), nn.ReLU()]
            self.fb_conversion = nn.Sequential(*conv[:-1])
            self.backward_flow = FlowStack(fb[-1], tuple(dims), op_dim, dropout)
            up = [op_dim + 2 * dims[-1]] + list(update_dims)
            mlp = []
            for a, b in zip(up[:-1], up[1:]):
                mlp += [nn.Linear(a, b), nn.ReLU()]
            self.update = nn.Sequential(*mlp, nn.Linear(up[-1], op_dim))
        self.out_dim = dims[-1]

    def embed(self, batch: GraphBatch) -> torch.Tensor:
        mask = batch.mask.unsqueeze(-1)
        op_emb = self.op_emb(batch.ops)
        if self.attrs is not None:
            op_emb = op_emb + self.attrs(batch.x[..., -self.num_attrs:])
        if self.noise:
            if self.training:
                op_emb = op_emb + torch.randn_like(op_emb) * self.noise
            else:
                op_emb = op_emb + self.noise_table[node_positions(batch.mask) % NOISE_TABLE_SIZE]
        op_emb = op_emb * mask
        sources = (batch.depth == 0).unsqueeze(-1)
        x = self.x_hidden(torch.where(sources, self.input_emb, torch.zeros(()))) * mask
        edges = batch.adj > 0
        forward, backward = Schedule(edges.transpose(1, 2), batch.depth), Schedule(edges, batch.rdepth)
        identity = self.identity[batch.ops]
        update_mask = (self.updatable[batch.ops] & batch.mask).unsqueeze(-1)
        sinks = (batch.rdepth == 0) & batch.mask
        for t in range(self.time_steps):
            y = self.forward_flow(x, forward, op_emb, identity) * mask
            if t == self.time_steps - 1:
                break
            sink_info = masked_mean(y, sinks).unsqueeze(1)                        # (B, 1, d)
            b_in = torch.where(sinks.unsqueeze(-1), self.fb_conversion(sink_info), torch.zeros(()))
            b_y = self.backward_flow(b_in, backward, op_emb, identity) * mask
            delta = self.update(torch.cat([op_emb.detach(), y.detach(), b_y], dim=-1))
            op_emb = op_emb + self.update_scale * delta * update_mask
        return masked_mean(y, sinks)
