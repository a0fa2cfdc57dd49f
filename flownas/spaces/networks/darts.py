"""The DARTS CIFAR network (after quark0/darts ``cnn/model.py`` NetworkCIFAR
and ``operations.py``): a 3x3 conv-BN stem with 3C channels, ``layers`` cells
with reduction cells at layers//3 and 2*layers//3 (channels doubled), each
cell preprocessing its two inputs (ReLU-conv1x1-BN, or FactorizedReduce after
a reduction cell), drop path on non-identity ops during training, an optional
auxiliary head after the second reduction, global pooling and a classifier.

``forward`` returns the logits; in training mode with ``auxiliary=True`` the
auxiliary logits of the last call are in ``model.aux_logits`` (DARTS weights
their loss by 0.4). ``affine=False`` drops the BatchNorm scale and shift of
the ops (not of the preprocessing), as DARTS' search network and NASLib do:
with C=32, layers=8 that network has exactly the ``params_m`` of the NB301
zero-cost table.
"""
from __future__ import annotations

import torch
from torch import nn


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in, c_out, kernel, stride, padding):
        super().__init__(nn.ReLU(inplace=False),
                         nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
                         nn.BatchNorm2d(c_out))


class DilConv(nn.Sequential):
    def __init__(self, c_in, c_out, kernel, stride, padding, dilation, affine=True):
        super().__init__(nn.ReLU(inplace=False),
                         nn.Conv2d(c_in, c_in, kernel, stride, padding, dilation=dilation, groups=c_in, bias=False),
                         nn.Conv2d(c_in, c_out, 1, bias=False),
                         nn.BatchNorm2d(c_out, affine=affine))


class SepConv(nn.Sequential):
    """Two stacked depthwise-separable convs (DARTS' SepConv)."""

    def __init__(self, c_in, c_out, kernel, stride, padding, affine=True):
        super().__init__(DilConv(c_in, c_in, kernel, stride, padding, 1, affine),
                         DilConv(c_in, c_out, kernel, 1, padding, 1, affine))


class Zero(nn.Module):
    def __init__(self, stride):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        return x[:, :, ::self.stride, ::self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """Halves the resolution with two 1x1 stride-2 convs on offset grids."""

    def __init__(self, c_in, c_out, affine=True):
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out - c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x):
        x = self.relu(x)
        shifted = nn.functional.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))  # same size for odd inputs too
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


def make_op(name: str, channels: int, stride: int, affine: bool = True) -> nn.Module:
    if name == "none":
        return Zero(stride)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
    if name == "max_pool_3x3":
        return nn.MaxPool2d(3, stride=stride, padding=1)
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(channels, channels, affine)
    if name in ("sep_conv_3x3", "sep_conv_5x5"):
        k = int(name[-1])
        return SepConv(channels, channels, k, stride, k // 2, affine)
    if name in ("dil_conv_3x3", "dil_conv_5x5"):
        k = int(name[-1])
        return DilConv(channels, channels, k, stride, 2 * (k // 2), 2, affine)
    raise ValueError(f"unknown DARTS op {name!r}")


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zero whole examples with probability ``drop_prob``, rescale the rest."""
    keep = 1.0 - drop_prob
    mask = torch.empty(x.size(0), 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x / keep * mask


class DartsCell(nn.Module):
    def __init__(self, pairs, c_prev_prev, c_prev, c, reduction, reduction_prev, affine=True):
        super().__init__()
        self.reduction = reduction
        self.preprocess0 = FactorizedReduce(c_prev_prev, c) if reduction_prev else ReLUConvBN(c_prev_prev, c, 1, 1, 0)
        self.preprocess1 = ReLUConvBN(c_prev, c, 1, 1, 0)
        self.indices = [i for _, i in pairs]
        self.ops = nn.ModuleList(make_op(op, c, 2 if reduction and i < 2 else 1, affine) for op, i in pairs)
        self.multiplier = len(pairs) // 2

    def forward(self, s0, s1, drop_prob: float = 0.0):
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for k in range(len(self.ops) // 2):
            total = 0
            for e in (2 * k, 2 * k + 1):
                h = self.ops[e](states[self.indices[e]])
                if self.training and drop_prob > 0 and not isinstance(self.ops[e], nn.Identity):
                    h = drop_path(h, drop_prob)
                total = total + h
            states.append(total)
        return torch.cat(states[2:], dim=1)


class AuxiliaryHead(nn.Sequential):
    """DARTS' auxiliary classifier, for 8x8 inputs."""

    def __init__(self, c, num_classes):
        # not in place (DARTS' is): the cell output it reads flows on
        super().__init__(nn.ReLU(inplace=False),
                         nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False),
                         nn.Conv2d(c, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(inplace=True),
                         nn.Conv2d(128, 768, 2, bias=False), nn.BatchNorm2d(768), nn.ReLU(inplace=True),
                         nn.Flatten(), nn.Linear(768, num_classes))


class DartsNetwork(nn.Module):
    def __init__(self, genotype, C: int = 16, layers: int = 8, num_classes: int = 10,
                 auxiliary: bool = False, drop_path_prob: float = 0.0, affine: bool = True,
                 stem_multiplier: int = 3):
        super().__init__()
        self.drop_path_prob = drop_path_prob
        self.aux_logits: torch.Tensor | None = None
        c_curr = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(3, c_curr, 3, padding=1, bias=False), nn.BatchNorm2d(c_curr))
        c_prev_prev, c_prev, c_curr = c_curr, c_curr, C
        self.cells = nn.ModuleList()
        self.aux_after = 2 * layers // 3
        reduction_prev = False
        c_aux = c_prev
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                c_curr *= 2
            pairs = genotype.reduce if reduction else genotype.normal
            cell = DartsCell(pairs, c_prev_prev, c_prev, c_curr, reduction, reduction_prev, affine)
            self.cells.append(cell)
            reduction_prev = reduction
            c_prev_prev, c_prev = c_prev, cell.multiplier * c_curr
            if i == self.aux_after:
                c_aux = c_prev
        self.auxiliary_head = AuxiliaryHead(c_aux, num_classes) if auxiliary else None
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.aux_logits = None
        s0 = s1 = self.stem(x)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self.aux_after and self.auxiliary_head is not None and self.training:
                self.aux_logits = self.auxiliary_head(s1)
        return self.classifier(torch.flatten(self.global_pooling(s1), 1))
