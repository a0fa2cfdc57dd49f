"""``gcn``: the neural predictor's bidirectional GCN (nn/gcn.py), trained
with MSE as in its paper."""
from __future__ import annotations

from ..registry import PREDICTORS
from .neural import NeuralPredictor


@PREDICTORS.register("gcn")
class GCNPredictor(NeuralPredictor):
    name = "gcn"
    defaults = {"epochs": 200, "batch_size": 32, "lr": 1e-3, "weight_decay": 1e-3, "loss": "mse"}
    quick_params = {"epochs": 30, "dim": 32, "layers": 2}
    permutation_invariant = True

    def __init__(self, dim: int = 144, layers: int = 3, dropout: float = 0.1, head_hidden: int = 128, **common):
        self.dim, self.layers, self.dropout, self.head_hidden = dim, layers, dropout, head_hidden
        super().__init__(**common)

    def build_network(self, featurizer):
        from .nn.gcn import GCNEncoder
        from .nn.heads import GraphRegressor
        return GraphRegressor(GCNEncoder(featurizer.num_ops + featurizer.num_attrs, self.dim, self.layers,
                                         self.dropout), self.head_hidden, self.dropout)
