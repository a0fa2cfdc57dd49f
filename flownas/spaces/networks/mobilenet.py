"""OFA's MobileNetV3 subnet (after ``ofa.utils.layers.MBConvLayer`` and
``OFAMobileNetV3``), built layer by layer from the chain architecture."""
from __future__ import annotations

from typing import Any, Sequence

from torch import nn

from .layers import activation, conv_bn_act


def make_divisible(v: float, divisor: int = 8) -> int:
    """Round to a multiple of ``divisor``, never more than 10% down (TF MobileNet rule)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class SqueezeExcite(nn.Module):
    """OFA's SEModule: reduction 4 (rounded to 8), ReLU, h-sigmoid gate."""

    def __init__(self, channels: int):
        super().__init__()
        mid = make_divisible(channels // 4)
        self.fc = nn.Sequential(nn.Conv2d(channels, mid, 1), nn.ReLU(inplace=True),
                                nn.Conv2d(mid, channels, 1), nn.Hardsigmoid(inplace=True))

    def forward(self, x):
        return x * self.fc(x.mean((2, 3), keepdim=True))


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand (unless ratio 1), kxk depthwise (+SE), 1x1 project;
    identity shortcut when the shape is kept."""

    def __init__(self, c_in, c_out, kernel, expand, stride, act, se):
        super().__init__()
        mid = make_divisible(round(c_in * expand))
        self.expand = None if expand == 1 else conv_bn_act(c_in, mid, 1, act=act)
        depthwise = conv_bn_act(mid, mid, kernel, stride, groups=mid, act=act)
        if se:
            depthwise.append(SqueezeExcite(mid))
        self.depthwise = depthwise
        self.project = conv_bn_act(mid, c_out, 1, act=None)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x):
        y = x if self.expand is None else self.expand(x)
        y = self.project(self.depthwise(y))
        return x + y if self.residual else y


def make_layer(op: str, a: dict[str, Any], num_classes: int, dropout: float) -> nn.Module | None:
    if op in ("input", "output"):
        return None
    if op == "stem" or op == "head_conv":
        return conv_bn_act(a["c_in"], a["c_out"], a["kernel"], a["stride"], act=a["act"])
    if op.startswith("mbconv_"):
        return MBConv(a["c_in"], a["c_out"], a["kernel"], a["expand"], a["stride"], a["act"], a["se"])
    if op == "pool":
        return nn.AdaptiveAvgPool2d(1)
    if op == "feature_mix":   # no BatchNorm on the 1x1 map after pooling
        return nn.Sequential(nn.Conv2d(a["c_in"], a["c_out"], 1, bias=False), activation(a["act"]))
    if op == "classifier":
        return nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(a["c_in"], num_classes))
    raise ValueError(f"unknown mobilenet layer {op!r}")


class MobileNetV3Network(nn.Sequential):
    def __init__(self, layers: Sequence[tuple[str, dict[str, Any]]], num_classes: int = 1000,
                 dropout: float = 0.1):
        modules = (make_layer(op, attrs, num_classes, dropout) for op, attrs in layers)
        super().__init__(*(m for m in modules if m is not None))
