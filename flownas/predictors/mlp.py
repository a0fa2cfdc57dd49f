"""``mlp``: the simplest neural baseline, an MLP on the one-hot ops and the
adjacency matrix of the graph padded to a fixed size (numbering-dependent:
unlike the graph predictors it can score two numberings of one cell apart)."""
from __future__ import annotations

from ..registry import PREDICTORS
from .neural import NeuralPredictor


@PREDICTORS.register("mlp")
class MLPPredictor(NeuralPredictor):
    name = "mlp"
    fixed_size = True
    defaults = {"epochs": 200, "batch_size": 32, "lr": 1e-3, "weight_decay": 1e-4, "loss": "mse+hinge"}
    quick_params = {"epochs": 30, "hidden": 64, "layers": 2}

    def __init__(self, hidden: int = 128, layers: int = 3, dropout: float = 0.0, **common):
        self.hidden, self.layers, self.dropout = hidden, layers, dropout
        super().__init__(**common)

    def build_network(self, featurizer):
        from .nn.heads import GraphRegressor
        from .nn.mlp import MLPEncoder
        return GraphRegressor(MLPEncoder(featurizer.num_ops + featurizer.num_attrs, featurizer.max_nodes,
                                         self.hidden, self.layers, self.dropout))
