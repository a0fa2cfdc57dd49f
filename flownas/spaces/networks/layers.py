"""Layers shared by the whole-network builders (mobilenet, fbnet, transnas)."""
from __future__ import annotations

from torch import nn


def activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "h_swish":
        return nn.Hardswish(inplace=True)    # x * relu6(x + 3) / 6, as OFA's Hswish
    raise ValueError(f"unknown activation {name!r}")


def conv_bn_act(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1,
                act: str | None = "relu") -> nn.Sequential:
    """Conv (same padding, no bias) -> BatchNorm -> activation (if any)."""
    layers = [nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, groups=groups, bias=False),
              nn.BatchNorm2d(c_out)]
    if act is not None:
        layers.append(activation(act))
    return nn.Sequential(*layers)


class GlobalPool(nn.Module):
    """Global average pooling to (N, C)."""

    def forward(self, x):
        return x.mean((2, 3))
