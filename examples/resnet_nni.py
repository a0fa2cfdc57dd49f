"""The ResNet space of ``resnet_space.py``, written as an NNI ModelSpace.

Same decisions, same labels (``depth_0`` ... ``kernel_2``, ``pool``), same
torch blocks: ``nni.choice`` for widths, kernels and depths, ``Repeat`` for
the blocks of a stage, ``LayerChoice`` for the pooling, a
``ParametrizedModule`` so the residual block takes choices as arguments.

flownas takes it through the NNI adapter: architectures are the traced
operator graphs of the frozen networks::

    from flownas.spaces.nni_adapter import nni_space
    ResNetNNISpace = nni_space("resnet-nni", ResNetModelSpace)   # registered as "resnet-nni"
"""
from __future__ import annotations

import warnings

import torch
from torch import nn

with warnings.catch_warnings():
    # nni warns about every torch class it was not tested with ("your PyTorch
    # version might not be supported"); flownas silences the same warnings
    # when it imports nni itself
    warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"nni(\.|$)")
    import nni
    from nni.nas.nn.pytorch import LayerChoice, ModelSpace, MutableLinear, ParametrizedModule, Repeat

from resnet_space import DEPTHS, KERNELS, STAGE_STRIDES, STAGE_WIDTHS, STEM_WIDTH, ResidualBlock, stem


class Block(ParametrizedModule, ResidualBlock, wraps=ResidualBlock):
    """``ResidualBlock`` whose channels and kernel may be NNI choices."""


def _stage_block(c_in, width, kernel, stride):
    """Block ``i`` of a stage: the first one changes channels and strides."""
    return lambda i: Block(c_in if i == 0 else width, width, kernel, stride if i == 0 else 1)


class ResNetModelSpace(ModelSpace):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        layers, c = [stem()], STEM_WIDTH
        for s, stride in enumerate(STAGE_STRIDES):
            width = nni.choice(f"width_{s}", list(STAGE_WIDTHS[s]))
            kernel = nni.choice(f"kernel_{s}", list(KERNELS))
            depth = nni.choice(f"depth_{s}", list(DEPTHS))
            layers.append(Repeat(_stage_block(c, width, kernel, stride), depth, label=f"stage_{s}"))
            c = width
        self.features = nn.Sequential(*layers)
        self.pool = LayerChoice({"avg": nn.AdaptiveAvgPool2d(1), "max": nn.AdaptiveMaxPool2d(1)}, label="pool")
        self.classifier = MutableLinear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))
