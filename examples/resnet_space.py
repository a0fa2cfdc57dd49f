"""A small ResNet-like search space, written by hand as a flownas SearchSpace.

The same space written as an NNI ModelSpace is in ``resnet_nni.py``; both
build the same torch networks (``ResNet`` below), so they can be compared
network for network. The walkthrough is docs/custom_spaces.md.

The space: a 3x3 stem with 16 channels, three stages (stride 1, 2, 2), then
global pooling and a linear classifier. Per stage choose

- ``depth``  1 or 2 residual blocks,
- ``width``  the stage's channels (STAGE_WIDTHS),
- ``kernel`` 3 or 5 (both convolutions of every block of the stage),

and for the whole network the global pooling, ``avg`` or ``max``:
2 x (2 x 2 x 2)**3 = 1,024 networks.

An architecture is the chain of blocks: ``input -> stem -> block ... ->
pool -> output``, each block node named by its kernel (``block_k3``,
``block_k5``) with its ``width`` and ``stride`` as attributes.

Register it to use it by name: ``SPACES.register("resnet", ResNetSpace)`` in
your code, or in your package's metadata::

    [project.entry-points."flownas.spaces"]
    resnet = "mypackage.resnet_space:ResNetSpace"
"""
from __future__ import annotations

import itertools
from typing import Any, Iterator, Mapping

import numpy as np
import torch
from torch import nn

from flownas.arch import Architecture
from flownas.errors import ArchitectureError
from flownas.spaces.base import SearchSpace

STEM_WIDTH = 16
STAGE_STRIDES = (1, 2, 2)
STAGE_WIDTHS = ((16, 24), (32, 48), (64, 96))
DEPTHS = (1, 2)
KERNELS = (3, 5)
POOLS = ("avg", "max")


# -- the torch network (shared with resnet_nni.py) ----------------------------------
class ResidualBlock(nn.Module):
    """conv-bn-relu-conv-bn plus a shortcut (1x1 conv when the shape changes), then relu."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int):
        super().__init__()
        pad = kernel // 2
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, kernel, stride, pad, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
            nn.Conv2d(c_out, c_out, kernel, 1, pad, bias=False), nn.BatchNorm2d(c_out))
        self.shortcut = nn.Identity() if (c_in, stride) == (c_out, 1) else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


def stem() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, STEM_WIDTH, 3, padding=1, bias=False), nn.BatchNorm2d(STEM_WIDTH), nn.ReLU())


def pooling(pool: str) -> nn.Module:
    return nn.AdaptiveAvgPool2d(1) if pool == "avg" else nn.AdaptiveMaxPool2d(1)


def ResNet(stages, pool: str = "avg", num_classes: int = 10) -> nn.Module:
    """``stages``: (depth, width, kernel) per stage."""
    layers, c = [stem()], STEM_WIDTH
    for (depth, width, kernel), stride in zip(stages, STAGE_STRIDES):
        for i in range(depth):
            layers.append(ResidualBlock(c, width, kernel, stride if i == 0 else 1))
            c = width
    layers += [pooling(pool), nn.Flatten(), nn.Linear(c, num_classes)]
    return nn.Sequential(*layers)


# -- the search space, by hand --------------------------------------------------------
class ResNetSpace(SearchSpace):
    """Small ResNet: depth, width and kernel per stage, global pooling (hand-written)."""

    name = "resnet"
    ops = ("input", "stem", "block_k3", "block_k5", "pool_avg", "pool_max", "output")

    # decisions <-> architecture ------------------------------------------------
    @staticmethod
    def decisions_names() -> list[str]:
        return [f"{what}_{s}" for s in range(3) for what in ("depth", "width", "kernel")] + ["pool"]

    def from_decisions(self, stages, pool: str) -> Architecture:
        """The chain input -> stem -> blocks -> pool -> output."""
        ops, attrs = ["input", "stem"], [{}, {"width": STEM_WIDTH}]
        for (depth, width, kernel), stride in zip(stages, STAGE_STRIDES):
            for i in range(depth):
                ops.append(f"block_k{kernel}")
                attrs.append({"width": width, "stride": stride if i == 0 else 1})
        ops += [f"pool_{pool}", "output"]
        attrs += [{}, {}]
        return Architecture.from_edges(ops, [(i, i + 1) for i in range(len(ops) - 1)], self.name, attrs)

    def decisions(self, arch: Architecture) -> tuple[list[tuple[int, int, int]], str]:
        """(stages, pool) of ``arch``; raises ``NotInSpaceError`` naming what is wrong."""
        self.check_common(arch)
        order = arch.topological_order()
        if any(arch.successors(v) != (w,) for v, w in zip(order, order[1:])):
            raise self._error("the network is not a chain input -> stem -> blocks -> pool -> output")
        ops = [arch.ops[v] for v in order]
        attrs = [dict(arch.attrs[v]) if arch.attrs else {} for v in order]
        if ops[1] != "stem" or not ops[-2].startswith("pool_"):
            raise self._error("a chain starts with the stem and ends with a pooling")
        blocks = list(zip(ops[2:-2], attrs[2:-2]))
        if any(not op.startswith("block_k") for op, _ in blocks):
            raise self._error("only blocks between the stem and the pooling")
        stages: list[list] = []
        for op, a in blocks:
            if a.get("stride") == 2 or not stages:
                stages.append([])
            stages[-1].append((int(op[len("block_k"):]), a.get("width"), a.get("stride")))
        if len(stages) != 3:
            raise self._error(f"{len(stages)} stages, expected 3")
        result = []
        for s, blocks_of_stage in enumerate(stages):
            kernels = {k for k, _, _ in blocks_of_stage}
            widths = {w for _, w, _ in blocks_of_stage}
            if len(blocks_of_stage) not in DEPTHS:
                raise self._error(f"stage {s} has {len(blocks_of_stage)} blocks, allowed {DEPTHS}")
            if len(kernels) != 1 or len(widths) != 1:
                raise self._error(f"blocks of stage {s} differ in kernel or width")
            (kernel,), (width,) = kernels, widths
            if width not in STAGE_WIDTHS[s]:
                raise self._error(f"stage {s} width {width}, allowed {STAGE_WIDTHS[s]}")
            if blocks_of_stage[0][2] != STAGE_STRIDES[s] or any(b[2] != 1 for b in blocks_of_stage[1:]):
                raise self._error(f"stage {s} strides must be {STAGE_STRIDES[s]} then 1")
            result.append((len(blocks_of_stage), width, kernel))
        return result, ops[-2][len("pool_"):]

    # the SearchSpace interface ----------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Architecture:
        params = {name: choices[int(rng.integers(len(choices)))] for name, choices in self.param_space().items()}
        return self.from_params(params)

    def mutate(self, arch: Architecture, rng: np.random.Generator) -> Architecture:
        params = self.to_params(arch)
        name = self.decisions_names()[int(rng.integers(10))]
        others = [v for v in self.param_space()[name] if v != params[name]]
        params[name] = others[int(rng.integers(len(others)))]
        return self.from_params(params)

    def validate(self, arch: Architecture) -> None:
        self.decisions(arch)

    def param_space(self) -> dict[str, tuple]:
        space: dict[str, tuple] = {}
        for s in range(3):
            space.update({f"depth_{s}": DEPTHS, f"width_{s}": STAGE_WIDTHS[s], f"kernel_{s}": KERNELS})
        space["pool"] = POOLS
        return space

    def to_params(self, arch: Architecture) -> dict[str, Any]:
        stages, pool = self.decisions(arch)
        params: dict[str, Any] = {}
        for s, (depth, width, kernel) in enumerate(stages):
            params.update({f"depth_{s}": depth, f"width_{s}": width, f"kernel_{s}": kernel})
        params["pool"] = pool
        return params

    def from_params(self, params: Mapping[str, Any]) -> Architecture:
        space = self.param_space()
        for name, choices in space.items():
            if params.get(name) not in choices:
                raise ArchitectureError(f"resnet: {name}={params.get(name)!r} is not one of {choices}")
        stages = [(params[f"depth_{s}"], params[f"width_{s}"], params[f"kernel_{s}"]) for s in range(3)]
        return self.from_decisions(stages, params["pool"])

    def to_string(self, arch: Architecture) -> str:
        """e.g. ``2x16k3-1x48k5-2x64k3-avg``: depth x width k kernel per stage, then the pooling."""
        stages, pool = self.decisions(arch)
        return "-".join(f"{d}x{w}k{k}" for d, w, k in stages) + f"-{pool}"

    def from_string(self, text: str) -> Architecture:
        try:
            *parts, pool = text.strip().split("-")
            stages = []
            for part in parts:
                depth, rest = part.split("x")
                width, kernel = rest.split("k")
                stages.append((int(depth), int(width), int(kernel)))
            params = {"pool": pool}
            for s, (d, w, k) in enumerate(stages):
                params.update({f"depth_{s}": d, f"width_{s}": w, f"kernel_{s}": k})
        except ValueError:
            raise ArchitectureError(f"not a resnet string (like 2x16k3-1x48k5-2x64k3-avg): {text!r}") from None
        return self.from_params(params)

    def enumerate(self) -> Iterator[Architecture]:
        space = self.param_space()
        for values in itertools.product(*space.values()):
            yield self.from_params(dict(zip(space, values)))

    def size(self) -> int:
        return int(np.prod([len(c) for c in self.param_space().values()]))

    def to_model(self, arch: Architecture, num_classes: int = 10, **options: Any):
        if options:
            raise TypeError(f"unknown resnet options: {', '.join(options)}")
        stages, pool = self.decisions(arch)
        return ResNet(stages, pool, num_classes)
