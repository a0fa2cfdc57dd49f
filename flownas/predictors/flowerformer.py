"""``flowerformer``: the flow-aware graph transformer (nn/flowerformer.py)
trained with a pairwise ranking loss."""
from __future__ import annotations

from ..registry import PREDICTORS
from .neural import NeuralPredictor


@PREDICTORS.register("flowerformer")
class FlowerFormerPredictor(NeuralPredictor):
    name = "flowerformer"
    # the benchmarked recipe (BENCHMARKS.md "Predictors")
    defaults = {"epochs": "auto", "batch_size": 64, "lr": 2e-3, "weight_decay": 6e-5, "loss": "hinge",
                "margin": 0.1}
    stacked_ensemble = True
    quick_params = {"epochs": 15, "batch_size": 64, "dim": 16, "layers": 1, "heads": 2, "lr": 3e-3}
    permutation_invariant = True

    def __init__(self, dim: int = 64, layers: int = 4, heads: int = 8, dropout: float = 0.0,
                 attn_dropout: float = 0.0, norm: str = "batch", depth_embedding: bool = False,
                 head_hidden: int = 0, **common):
        self.dim, self.layers, self.heads = dim, layers, heads
        self.dropout, self.attn_dropout, self.norm = dropout, attn_dropout, norm
        self.depth_embedding, self.head_hidden = depth_embedding, head_hidden
        super().__init__(**common)

    def build_network(self, featurizer):
        from .nn.flowerformer import FlowerFormerEncoder
        from .nn.heads import GraphRegressor
        enc = FlowerFormerEncoder(featurizer.num_ops + featurizer.num_attrs, self.dim, self.layers,
                                  self.heads, self.dropout, self.attn_dropout, self.norm, self.depth_embedding)
        return GraphRegressor(enc, self.head_hidden)
