"""HW-NAS-Bench's FBNet network (after ``hw_nas_bench_api/fbnet_models/model_infer.py``),
built layer by layer from the chain architecture. All activations are ReLU."""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from .layers import conv_bn_act


class ChannelShuffle(nn.Module):
    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        return x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class FBNetBlock(nn.Module):
    """1x1 (grouped) expand -> [shuffle] -> kxk depthwise -> 1x1 (grouped) project;
    identity shortcut when the shape is kept. Expand ratio 1 keeps the 1x1 expand conv."""

    def __init__(self, c_in, c_out, kernel, expand, groups, stride):
        super().__init__()
        mid = c_in * expand
        layers = [conv_bn_act(c_in, mid, 1, groups=groups)]
        if groups > 1:
            layers.append(ChannelShuffle(groups))
        layers += [conv_bn_act(mid, mid, kernel, stride, groups=mid),
                   conv_bn_act(mid, c_out, 1, groups=groups, act=None)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


def make_layer(op: str, a: dict[str, Any], num_classes: int) -> nn.Module | None:
    if op in ("input", "output"):
        return None
    if op in ("stem", "head_conv"):
        return conv_bn_act(a["c_in"], a["c_out"], a["kernel"], a["stride"], act=a["act"])
    if op == "skip":   # a 1x1 conv-BN-ReLU projection where the layer changes the shape
        if a["stride"] == 1 and a["c_in"] == a["c_out"]:
            return nn.Identity()
        return conv_bn_act(a["c_in"], a["c_out"], 1, a["stride"])
    if op.startswith("k"):
        return FBNetBlock(a["c_in"], a["c_out"], a["kernel"], a["expand"], a["groups"], a["stride"])
    if op == "pool":
        return nn.AdaptiveAvgPool2d(1)
    if op == "classifier":
        return nn.Sequential(nn.Flatten(), nn.Linear(a["c_in"], num_classes))
    raise ValueError(f"unknown fbnet layer {op!r}")


class FBNetNetwork(nn.Sequential):
    def __init__(self, layers: Sequence[tuple[str, dict[str, Any]]], num_classes: int = 100):
        modules = (make_layer(op, attrs, num_classes) for op, attrs in layers)
        super().__init__(*(m for m in modules if m is not None))
