"""``GraphBatch``: the padded dense tensors every graph network eats.

Built once per data set from ``GraphArrays`` (features.py); minibatches are
index slices (``batch[idx]``), so nothing is re-encoded during training.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from ..features import GraphArrays, GraphFeaturizer


@dataclass
class GraphBatch:
    ops: torch.Tensor      # (B, n) long; padding = num_ops
    x: torch.Tensor        # (B, n, F) float: one-hot op, then standardized numeric attributes
    adj: torch.Tensor      # (B, n, n) float 0/1; adj[b, i, j]: edge i -> j
    mask: torch.Tensor     # (B, n) bool: real nodes
    depth: torch.Tensor    # (B, n) long: forward generation, -1 on padding
    rdepth: torch.Tensor   # (B, n) long: backward generation, -1 on padding
    reach: torch.Tensor    # (B, n, n) bool: directed path i -> j

    @classmethod
    def from_arrays(cls, arrays: GraphArrays, featurizer: GraphFeaturizer) -> "GraphBatch":
        ops = torch.from_numpy(arrays.ops)
        x = torch.nn.functional.one_hot(ops, featurizer.num_ops + 1)[..., :featurizer.num_ops].float()
        if arrays.attrs is not None:
            x = torch.cat([x, torch.from_numpy(arrays.attrs)], dim=-1)
        return cls(ops=ops, x=x, adj=torch.from_numpy(arrays.adj).float(),
                   mask=torch.from_numpy(arrays.mask), depth=torch.from_numpy(arrays.depth),
                   rdepth=torch.from_numpy(arrays.rdepth), reach=torch.from_numpy(arrays.reach))

    @classmethod
    def encode(cls, archs, featurizer: GraphFeaturizer) -> "GraphBatch":
        return cls.from_arrays(featurizer(archs), featurizer)

    def __len__(self) -> int:
        return self.ops.shape[0]

    @property
    def num_nodes(self) -> int:
        return self.ops.shape[1]

    def __getitem__(self, idx) -> "GraphBatch":
        return GraphBatch(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})

    def trimmed(self) -> "GraphBatch":
        """The same graphs without node columns that are padding in all of them."""
        used = self.mask.any(0)
        if bool(used.all()):
            return self
        cols = torch.nonzero(used).squeeze(1)
        return GraphBatch(ops=self.ops[:, cols], x=self.x[:, cols], adj=self.adj[:, cols][:, :, cols],
                          mask=self.mask[:, cols], depth=self.depth[:, cols], rdepth=self.rdepth[:, cols],
                          reach=self.reach[:, cols][:, :, cols])

    def compacted(self) -> "GraphBatch":
        """Each graph renumbered with its real nodes first, then trimmed to
        the largest one (for networks that ignore node numbering)."""
        perm = torch.argsort((~self.mask).to(torch.int8), dim=1, stable=True)
        return self.relabeled(perm).trimmed()

    def relabeled(self, perm: torch.Tensor) -> "GraphBatch":
        """Every graph with its node columns reordered by ``perm`` (B, n): the
        same graphs, renumbered (isomorphic-relabeling augmentation)."""
        def rows(t):
            return torch.gather(t, 1, perm.view(perm.shape + (1,) * (t.dim() - 2)).expand(
                perm.shape + t.shape[2:]))

        def square(t):
            t = torch.gather(t, 1, perm.unsqueeze(-1).expand(t.shape))
            return torch.gather(t, 2, perm.unsqueeze(1).expand(t.shape))
        return GraphBatch(ops=rows(self.ops), x=rows(self.x), adj=square(self.adj), mask=rows(self.mask),
                          depth=rows(self.depth), rdepth=rows(self.rdepth), reach=square(self.reach))
