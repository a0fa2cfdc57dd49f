"""The NAS-Bench-101 CIFAR network, after google-research/nasbench
``model_builder.py``: 3x3 conv-BN-ReLU stem (128 channels), 3 stacks of 3
modules (the cell), 2x2 max-pool and channel doubling between stacks, global
average pooling, a dense classifier.

Inside a module, a vertex sums its inputs (the module input through a 1x1
conv-BN-ReLU projection, other vertices truncated to its channel count) and
applies its op; the output vertex concatenates the vertices that feed it and
adds the projected input when the input feeds it directly. Channels per vertex
follow NB101's ``compute_vertex_channels``. BatchNorm uses NB101's momentum
0.997 (torch: 0.003) and epsilon 1e-5.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..nb101 import vertex_channels

BN_MOMENTUM = 1 - 0.997
BN_EPS = 1e-5


class ConvBnRelu(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int):
        super().__init__(nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(c_out, eps=BN_EPS, momentum=BN_MOMENTUM),
                         nn.ReLU(inplace=True))


def make_op(name: str, channels: int) -> nn.Module:
    if name == "conv3x3-bn-relu":
        return ConvBnRelu(channels, channels, 3)
    if name == "conv1x1-bn-relu":
        return ConvBnRelu(channels, channels, 1)
    if name == "maxpool3x3":
        return nn.MaxPool2d(3, stride=1, padding=1)
    raise ValueError(f"unknown NB101 op {name!r}")


class NB101Module(nn.Module):
    """One cell; ``matrix`` is upper-triangular with vertex 0 the input and the
    last vertex the output (the NB101 order of ``flownas.spaces.nb101.to_spec``)."""

    def __init__(self, matrix: Sequence[Sequence[int]], ops: Sequence[str], c_in: int, c_out: int):
        super().__init__()
        n = len(matrix)
        self.matrix = [list(map(int, row)) for row in matrix]
        self.channels = vertex_channels(c_in, c_out, self.matrix)
        # projections of the module input, by destination vertex ("out" = the output)
        self.projections = nn.ModuleDict({
            str(t): ConvBnRelu(c_in, self.channels[t], 1) for t in range(1, n) if self.matrix[0][t]})
        self.ops = nn.ModuleList([nn.Identity()] + [make_op(ops[t], self.channels[t]) for t in range(1, n - 1)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m, n = self.matrix, len(self.matrix)
        tensors = [x]
        for t in range(1, n - 1):
            inputs = [tensors[s][:, :self.channels[t]] for s in range(1, t) if m[s][t]]
            if m[0][t]:
                inputs.append(self.projections[str(t)](x))
            tensors.append(self.ops[t](sum(inputs)))
        to_output = [tensors[t] for t in range(1, n - 1) if m[t][n - 1]]
        if not to_output:
            return self.projections[str(n - 1)](x)
        out = torch.cat(to_output, dim=1) if len(to_output) > 1 else to_output[0]
        if m[0][n - 1]:
            out = out + self.projections[str(n - 1)](x)
        return out


class NB101Network(nn.Module):
    def __init__(self, matrix, ops, num_classes: int = 10, stem_channels: int = 128,
                 num_stacks: int = 3, modules_per_stack: int = 3):
        super().__init__()
        layers: list[nn.Module] = [ConvBnRelu(3, stem_channels, 3)]
        c = stem_channels
        for stack in range(num_stacks):
            c_out = c
            if stack > 0:
                # TF's 'same' 2x2 pooling: ceil_mode covers odd sizes
                layers.append(nn.MaxPool2d(2, stride=2, ceil_mode=True))
                c_out = 2 * c
            for _ in range(modules_per_stack):
                layers.append(NB101Module(matrix, ops, c, c_out))
                c = c_out
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean(dim=(2, 3)))
