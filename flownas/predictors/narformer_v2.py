"""``narformer_v2``: NAR-Former V2 (nn/narformer_v2.py), a transformer with
graph-aided attention, type-aware (degree) enhancement and grouped FFNs,
trained with NAR-Former's MSE + sequence-ranking + consistency loss.

It reads numeric node attributes, so it encodes whole networks (mobilenet,
fbnet) as well as cells, and predicts latency as well as accuracy: a latency
is just another target; ``target_transform="log"`` (shared by the neural
predictors) fits log(y) (relative errors, as the official relative-MSE loss;
predictions come back in the target's units) and ``readout="sum"`` adds node
states up as latency adds up over layers.

Settings: the official NB201 run is 6 blocks of width 512, op and position
codes of 32 frequencies each, Adam lr 1e-4, linear warm-up 10 %, batch 8,
1,000 epochs, loss MSE + 0.1 SR + 0.5 consistency. The defaults here keep the
block but train for a CPU budget (see ``defaults``).
"""
from __future__ import annotations

from ..registry import PREDICTORS
from .narformer import CanonicalNumbering
from .neural import NeuralPredictor


@PREDICTORS.register("narformer_v2")
class NARFormerV2Predictor(CanonicalNumbering, NeuralPredictor):
    name = "narformer_v2"
    defaults = {"epochs": 200, "batch_size": 32, "lr": 1e-3, "weight_decay": 1e-4, "warmup": 0.1,
                "loss": "mse", "grad_clip": 1.0}
    quick_params = {"epochs": 20, "batch_size": 32, "dim": 32, "layers": 2, "freqs": 8, "head_hidden": 64,
                    "lr": 3e-3}
    permutation_invariant = True

    def __init__(self, dim: int = 128, layers: int = 6, freqs: int = 32, op_code: str = "sinusoid",
                 groups: int = 8, ffn_ratio: int = 4, dropout: float = 0.05, layer_scale: float = 1e-4,
                 degree: bool = True, readout: str = "fusion", head_hidden: int = 128, sr_weight: float = 0.1,
                 ac_weight: float = 0.5, flow_augment: bool = True, **common):
        self.dim, self.layers, self.freqs, self.op_code = dim, layers, freqs, op_code
        self.groups, self.ffn_ratio, self.dropout, self.layer_scale = groups, ffn_ratio, dropout, layer_scale
        self.degree, self.readout, self.head_hidden = degree, readout, head_hidden
        self.sr_weight, self.ac_weight, self.flow_augment = sr_weight, ac_weight, flow_augment
        super().__init__(**common)

    def build_network(self, featurizer):
        from .nn.narformer_v2 import NARFormerV2Encoder, NARFormerV2Regressor
        enc = NARFormerV2Encoder(featurizer.num_ops, featurizer.num_attrs, self.dim, self.layers, self.freqs,
                                 self.op_code, self.groups, self.ffn_ratio, self.dropout, self.layer_scale,
                                 self.degree, self.readout)
        return NARFormerV2Regressor(enc, self.head_hidden, self.dropout)

    def step_loss(self, cfg):
        from .nn.narformer import narformer_step_loss
        return narformer_step_loss(self.sr_weight, self.ac_weight, self.flow_augment)
