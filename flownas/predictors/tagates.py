"""``tagates``: GATES with TA-GATES' forward/backward passes over several time
steps and symmetry breaking (nn/tagates.py), trained with a pairwise hinge
ranking loss.

The operation embeddings of parametrized operations (names containing
"conv"; every operation in a space without such names) are the ones updated
between time steps, as in the official code; skip connections
(``skip_connect``, ``skip``, ``identity``) pass information ungated.
Architectures are fed in their canonical numbering, which makes the
evaluation-time symmetry breaking a function of the graph alone.

Settings (official NB201 configuration): op and node embeddings 48, hidden
96, flow layers [128, 128, 128] forward and backward, 4 time steps,
forward-to-backward MLP [128, 128], update MLP [128] with scale 0.1, MLP
head [200] with dropout 0.1, hinge loss with margin 0.1, Adam lr 1e-3,
batch 512, 200 epochs.
"""
from __future__ import annotations

from typing import Sequence

from ..registry import PREDICTORS
from .narformer import CanonicalNumbering
from .neural import NeuralPredictor

IDENTITY_OPS = ("skip_connect", "skip", "identity")


@PREDICTORS.register("tagates")
class TAGATESPredictor(CanonicalNumbering, NeuralPredictor):
    name = "tagates"
    defaults = {"epochs": 200, "batch_size": 512, "lr": 1e-3, "weight_decay": 0.0, "loss": "hinge",
                "margin": 0.1}
    quick_params = {"epochs": 30, "batch_size": 64, "dims": (32, 32), "time_steps": 2, "fb_dims": (32,),
                    "update_dims": (32,), "hidden": 32, "op_dim": 16, "node_dim": 16, "head_hidden": 32,
                    "lr": 3e-3}
    permutation_invariant = True

    def __init__(self, op_dim: int = 48, node_dim: int = 48, hidden: int = 96, dims: Sequence[int] = (128, 128, 128),
                 time_steps: int = 4, fb_dims: Sequence[int] = (128, 128), update_dims: Sequence[int] = (128,),
                 update_scale: float = 0.1, noise: float = 0.1, dropout: float = 0.0, head_hidden: int = 200,
                 head_dropout: float = 0.1, **common):
        self.op_dim, self.node_dim, self.hidden, self.dims = op_dim, node_dim, hidden, tuple(dims)
        self.time_steps, self.fb_dims, self.update_dims = time_steps, tuple(fb_dims), tuple(update_dims)
        self.update_scale, self.noise, self.dropout = update_scale, noise, dropout
        self.head_hidden, self.head_dropout = head_hidden, head_dropout
        super().__init__(**common)

    def build_network(self, featurizer):
        from .nn.heads import GraphRegressor
        from .nn.tagates import TAGATESEncoder
        ops = featurizer.ops
        updatable = [i for i, op in enumerate(ops) if "conv" in op] or \
                    [i for i, op in enumerate(ops) if op not in ("input", "output")]
        identity = [i for i, op in enumerate(ops) if op in IDENTITY_OPS]
        enc = TAGATESEncoder(featurizer.num_ops, featurizer.num_attrs, self.op_dim, self.node_dim, self.hidden,
                             self.dims, self.time_steps, self.fb_dims, self.update_dims, self.update_scale,
                             self.noise, tuple(updatable), tuple(identity), self.dropout)
        return GraphRegressor(enc, self.head_hidden, self.head_dropout)
