"""TransNAS-Bench-101's encoder (``MacroNet``, ``MicroCell``, ``ResNetBasicblock``
in ``lib/models``) with the feed-forward tasks' decoder (global pooling +
linear, ``FFDecoder``)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..nb201 import EDGES
from .nb201 import NB201Cell, ReLUConvBN


class Zero(nn.Module):
    """Zeros of the edge's output shape (channels and stride may change)."""

    def __init__(self, c_out: int, stride: int):
        super().__init__()
        self.c_out, self.stride = c_out, stride

    def forward(self, x):
        n, _, h, w = x.shape
        return x.new_zeros(n, self.c_out, -(-h // self.stride), -(-w // self.stride))


class FactorizedReduce(nn.Module):
    """Skip across a change of shape: two offset stride-s 1x1 convs, concatenated."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.convs = nn.ModuleList(nn.Conv2d(c_in, c, 1, stride, bias=False) for c in (c_out // 2, c_out - c_out // 2))
        self.pad = nn.ConstantPad2d((0, 1, 0, 1), 0)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x):
        x = self.relu(x)
        shifted = self.pad(x)[:, :, 1:, 1:]
        return self.bn(torch.cat([self.convs[0](x), self.convs[1](shifted)], dim=1))


def make_edge(op: str, c_in: int, c_out: int, stride: int) -> nn.Module:
    if op == "none":
        return Zero(c_out, stride)
    if op == "skip_connect":
        return nn.Identity() if stride == 1 and c_in == c_out else FactorizedReduce(c_in, c_out, stride)
    if op == "nor_conv_1x1":
        return ReLUConvBN(c_in, c_out, 1, stride)
    if op == "nor_conv_3x3":
        return ReLUConvBN(c_in, c_out, 3, stride)
    raise ValueError(f"unknown TransNAS micro op {op!r}")


class MicroCell(NB201Cell):
    """NB201's cell (output = node 3, no residual), except that the edges out of
    node 0 change channels and stride."""

    def __init__(self, edge_ops: Sequence[str], c_in: int, c_out: int, stride: int):
        nn.Module.__init__(self)
        self.edges = EDGES
        self.ops = nn.ModuleList(make_edge(op, c_in, c_out, stride) if src == 0 else make_edge(op, c_out, c_out, 1)
                                 for op, (_, src) in zip(edge_ops, EDGES))


class BasicBlock(nn.Module):
    """ResNet basic block of ReLU-conv-BN pairs; 1x1 conv-BN shortcut across a change of shape."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride)
        self.conv_b = ReLUConvBN(c_out, c_out, 3)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        return residual + self.conv_b(self.conv_a(x))


class TransNASNetwork(nn.Module):
    """Stem (/4), one stage of two cells per skeleton digit (1 normal, 2 channels x2,
    3 spatial /2, 4 both), global pooling, linear decoder. ``edge_ops`` None: basic blocks."""

    def __init__(self, skeleton: str, edge_ops: Sequence[str] | None, base_channels: int = 64,
                 num_classes: int = 63, blocks_per_stage: int = 2):
        super().__init__()
        c = base_channels
        self.stem = nn.Sequential(nn.Conv2d(3, c // 2, 3, 2, padding=1, bias=False), nn.BatchNorm2d(c // 2),
                                  ReLUConvBN(c // 2, c, 3, 2))

        def cell(c_in, c_out, stride):
            return BasicBlock(c_in, c_out, stride) if edge_ops is None else MicroCell(edge_ops, c_in, c_out, stride)

        stages = []
        for code in map(int, skeleton):
            c_out = 2 * c if code % 2 == 0 else c
            stride = 2 if code > 2 else 1
            stages.append(nn.Sequential(cell(c, c_out, stride),
                                        *(cell(c_out, c_out, 1) for _ in range(blocks_per_stage - 1))))
            c = c_out
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(c, num_classes)

    def forward(self, x):
        x = self.pool(self.stages(self.stem(x)))
        return self.head(torch.flatten(x, 1))
