"""The generic network of declared cell spaces (``flownas.spaces.custom``):
stem conv, ``stacks`` stacks of ``cells_per_stack`` cells with max-pool
downsampling and channel doubling between stacks, global pooling, classifier.

In a cell, the input is projected to the cell's channels (1x1 conv when they
differ), every operation node sums its inputs and applies its operation, and
the output node sums its inputs."""
from __future__ import annotations

from typing import Callable, Mapping

import torch
from torch import nn

from ...arch import Architecture
from ...errors import ConfigError


class ReLUConvBN(nn.Sequential):
    def __init__(self, channels: int, kernel: int, dilation: int = 1, groups: int = 1):
        super().__init__(nn.ReLU(), nn.Conv2d(channels, channels, kernel, padding=dilation * (kernel // 2),
                                              dilation=dilation, groups=groups, bias=False),
                         nn.BatchNorm2d(channels))


class SepConv(nn.Sequential):
    def __init__(self, channels: int, kernel: int):
        super().__init__(nn.ReLU(), nn.Conv2d(channels, channels, kernel, padding=kernel // 2,
                                              groups=channels, bias=False),
                         nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels))


# the built-in operations: name -> f(channels) -> module keeping channels and resolution
LIBRARY: dict[str, Callable[[int], nn.Module]] = {
    "conv1x1": lambda c: ReLUConvBN(c, 1),
    "conv3x3": lambda c: ReLUConvBN(c, 3),
    "conv5x5": lambda c: ReLUConvBN(c, 5),
    "sepconv3x3": lambda c: SepConv(c, 3),
    "sepconv5x5": lambda c: SepConv(c, 5),
    "dilconv3x3": lambda c: ReLUConvBN(c, 3, dilation=2),
    "maxpool3x3": lambda c: nn.MaxPool2d(3, stride=1, padding=1),
    "avgpool3x3": lambda c: nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
    "identity": lambda c: nn.Identity(),
}


def builder_for(op: str, builders: Mapping[str, Callable]) -> Callable[[int], nn.Module]:
    build = builders.get(op) or LIBRARY.get(op)
    if build is None:
        raise ConfigError(f"no network for operation {op!r}: pass builders={{'{op}': f(channels)}} "
                          f"to cell_space (built in: {', '.join(LIBRARY)})")
    return build


class Cell(nn.Module):
    def __init__(self, arch: Architecture, c_in: int, c_out: int, builders: Mapping[str, Callable]):
        super().__init__()
        self.order = [v for v in arch.topological_order()]
        self.preds = [list(arch.predecessors(v)) for v in range(arch.num_nodes)]
        self.input = arch.ops.index("input")
        self.output = arch.ops.index("output")
        self.project = nn.Identity() if c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
        self.nodes = nn.ModuleDict({
            str(v): builder_for(arch.ops[v], builders)(c_out)
            for v in self.order if v not in (self.input, self.output)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = {self.input: self.project(x)}
        for v in self.order:
            if v == self.input:
                continue
            total = sum(values[u] for u in self.preds[v])
            values[v] = total if v == self.output else self.nodes[str(v)](total)
        return values[self.output]


class CellNetwork(nn.Module):
    def __init__(self, arch: Architecture, *, builders: Mapping[str, Callable] | None = None,
                 channels: int = 16, stacks: int = 3, cells_per_stack: int = 1, num_classes: int = 10,
                 in_channels: int = 3):
        super().__init__()
        builders = builders or {}
        self.stem = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels), nn.ReLU())
        layers: list[nn.Module] = []
        c = channels
        for stack in range(stacks):
            c_out = channels * 2 ** stack
            if stack:
                layers.append(nn.MaxPool2d(2))
            for _ in range(cells_per_stack):
                layers.append(Cell(arch, c, c_out, builders))
                c = c_out
        self.cells = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.cells(self.stem(x))), 1))
