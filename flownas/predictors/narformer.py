"""``narformer``: NAR-Former (Yi et al., CVPR 2023; nn/narformer.py): a
tokenizer of op, position and predecessor-position codes, a multi-stage
fusion transformer, and MSE + sequence-ranking + architecture-consistency
loss on information-flow-consistent relabelings.

Its tokens depend on node positions, so every architecture is put in its
canonical numbering first (``CanonicalNumbering``): isomorphic relabelings
get the same prediction.

Settings: the official NB201 run is d = 192, 6 heads, FFN 768, depths
[6, 1, 1, 1], AdamW lr 1e-4 (weight decay 0.01), batch 128, linear warm-up
10 %, 4,000 epochs, MSE + 0.1 SR + 0.5 AC. The defaults here keep the
architecture but train for a CPU budget (see ``defaults``).
"""
from __future__ import annotations

from typing import Sequence

from ..arch import Architecture
from ..registry import PREDICTORS
from .base import check_archs
from .neural import NeuralPredictor


class CanonicalNumbering:
    """Mixin for a ``NeuralPredictor`` whose network reads node positions:
    fits and predicts on each architecture's canonical numbering (a
    topological order that depends only on the labelled graph)."""

    def fit(self, archs: Sequence[Architecture], y, *, low_fidelity=None, validation=None):
        if validation is not None:
            validation = (_canonical(validation[0]), validation[1])
        return super().fit(_canonical(archs), y, low_fidelity=low_fidelity, validation=validation)

    def predict(self, archs: Sequence[Architecture], *, return_std: bool = False):
        return super().predict(_canonical(archs), return_std=return_std)


def _canonical(archs: Sequence[Architecture]) -> list[Architecture]:
    return [a.canonical() for a in check_archs(archs)]


@PREDICTORS.register("narformer")
class NARFormerPredictor(CanonicalNumbering, NeuralPredictor):
    name = "narformer"
    defaults = {"epochs": 300, "batch_size": 128, "lr": 1e-3, "weight_decay": 0.01, "warmup": 0.1,
                "loss": "mse", "grad_clip": 1.0}
    quick_params = {"epochs": 20, "batch_size": 32, "dim": 32, "heads": 2, "depths": (1, 1, 1, 1),
                    "freqs": 8, "lr": 3e-3}
    permutation_invariant = True

    def __init__(self, dim: int = 192, heads: int = 6, ffn_ratio: int = 4, depths: Sequence[int] = (6, 1, 1, 1),
                 freqs: int = 32, dropout: float = 0.1, sr_weight: float = 0.1, ac_weight: float = 0.5,
                 flow_augment: bool = True, **common):
        self.dim, self.heads, self.ffn_ratio, self.depths = dim, heads, ffn_ratio, tuple(depths)
        self.freqs, self.dropout = freqs, dropout
        self.sr_weight, self.ac_weight, self.flow_augment = sr_weight, ac_weight, flow_augment
        super().__init__(**common)

    def build_network(self, featurizer):
        from .nn.heads import GraphRegressor
        from .nn.narformer import NARFormerEncoder
        return GraphRegressor(NARFormerEncoder(featurizer.num_attrs, self.dim, self.heads, self.ffn_ratio,
                                               self.depths, self.freqs, self.dropout))

    def step_loss(self, cfg):
        from .nn.narformer import narformer_step_loss
        return narformer_step_loss(self.sr_weight, self.ac_weight, self.flow_augment)
