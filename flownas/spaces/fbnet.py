"""The FBNet space of HW-NAS-Bench: 22 searchable layers, each one of 9 blocks
(``k{3,5}_e{1,3,6}`` inverted residuals, ``_g2`` with grouped 1x1 convs, or
``skip``), in FBNet's fixed macro skeleton for CIFAR-100 (32x32 input).

An architecture is the whole network as a chain DAG, one node per layer in
forward order (see docs/spaces_networks.md)::

    input (resolution 32) -> stem -> 22 blocks -> head_conv -> pool -> classifier -> output

Block nodes carry ``kernel``, ``expand``, ``groups``, ``c_in``, ``c_out``,
``stride``; ``skip`` nodes only ``c_in``, ``c_out``, ``stride``. A ``skip``
stays in the graph as a node: where it keeps the shape it is the identity,
and where the layer changes channels or stride (the first layer of stages
1-6) HW-NAS-Bench builds it as a 1x1 conv-BN-ReLU projection, and so does
``to_model``. The skeleton (HW-NAS-Bench ``FBNet_Infer``, CIFAR setting):
stem 3x3 conv to 16 channels at stride 1; stages of 1, 4, 4, 4, 4, 4, 1
layers with 16, 24, 32, 64, 112, 184, 352 channels and strides 1, 1, 2, 2,
1, 2, 1; 1x1 head conv to 1504 channels; 100 classes.
"""
from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

import numpy as np

from ..arch import Architecture, loads_json
from ..errors import ArchitectureError
from ..registry import SPACES
from .base import shown
from .chain import ChainSpace, Node, chain_arch

BLOCKS = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip")
STAGE_LAYERS = (1, 4, 4, 4, 4, 4, 1)
STAGE_WIDTHS = (16, 24, 32, 64, 112, 184, 352)
STAGE_STRIDES = (1, 1, 2, 2, 1, 2, 1)       # HW-NAS-Bench's CIFAR setting
STEM_WIDTH = 16
HEAD_WIDTH = 1504
RESOLUTION = 32
NUM_LAYERS = sum(STAGE_LAYERS)
LAYER_NAMES = tuple(f"layer{i}" for i in range(NUM_LAYERS))


def _layer_shapes() -> tuple[tuple[int, int, int], ...]:
    """(c_in, c_out, stride) of each searchable layer."""
    shapes, c = [], STEM_WIDTH
    for n, width, stride in zip(STAGE_LAYERS, STAGE_WIDTHS, STAGE_STRIDES):
        for i in range(n):
            shapes.append((c, width, stride if i == 0 else 1))
            c = width
    return tuple(shapes)


LAYER_SHAPES = _layer_shapes()


def block_attrs(block: str, c_in: int, c_out: int, stride: int) -> dict[str, Any]:
    if block == "skip":
        return {"c_in": c_in, "c_out": c_out, "stride": stride}
    kernel, expand, *group = block.split("_")
    return {"kernel": int(kernel[1:]), "expand": int(expand[1:]), "groups": int(group[0][1:]) if group else 1,
            "c_in": c_in, "c_out": c_out, "stride": stride}


def blocks_string(blocks: Sequence[str]) -> str:
    return "-".join(blocks)


@SPACES.register("fbnet")
class FBNetSpace(ChainSpace):
    """HW-NAS-Bench FBNet: one of 9 blocks in each of 22 layers (CIFAR-100)."""

    name = "fbnet"
    ops = ("input", "stem") + BLOCKS + ("head_conv", "pool", "classifier", "output")
    input_shape = (3, RESOLUTION, RESOLUTION)

    # -- block list <-> architecture --------------------------------------------
    def from_blocks(self, blocks: Sequence[str]) -> Architecture:
        """From the 22 block names (``ops`` of the table) or their codes (``op_idx``)."""
        return chain_arch(self.name, self._layers(self.block_names(blocks)))

    def block_names(self, blocks: Sequence) -> tuple[str, ...]:
        """The block names of 22 names or codes, checked."""
        blocks = tuple(blocks)
        if len(blocks) != NUM_LAYERS:
            raise ArchitectureError(f"an FBNet architecture has {NUM_LAYERS} layers, got {len(blocks)}")
        names = []
        for i, b in enumerate(blocks):
            if isinstance(b, (int, np.integer)) and not isinstance(b, bool):
                if not 0 <= b < len(BLOCKS):
                    raise ArchitectureError(f"layer {i}: block code {b} is not in 0..{len(BLOCKS) - 1}")
                b = BLOCKS[b]
            if b not in BLOCKS:
                raise ArchitectureError(f"layer {i}: unknown FBNet block {b!r} (known: {', '.join(BLOCKS)})")
            names.append(b)
        return tuple(names)

    @staticmethod
    def _layers(blocks: Sequence[str]) -> list[Node]:
        nodes: list[Node] = [
            ("input", {"resolution": RESOLUTION, "c_out": 3}),
            ("stem", {"kernel": 3, "c_in": 3, "c_out": STEM_WIDTH, "stride": 1, "act": "relu"})]
        nodes += [(b, block_attrs(b, *shape)) for b, shape in zip(blocks, LAYER_SHAPES)]
        nodes += [("head_conv", {"kernel": 1, "c_in": STAGE_WIDTHS[-1], "c_out": HEAD_WIDTH, "stride": 1,
                                 "act": "relu"}),
                  ("pool", {"c_in": HEAD_WIDTH, "c_out": HEAD_WIDTH}),
                  ("classifier", {"c_in": HEAD_WIDTH}),
                  ("output", {})]
        return nodes

    def blocks(self, arch: Architecture) -> tuple[str, ...]:
        """The 22 block names of ``arch`` (any node numbering); raises if it is not a member."""
        nodes = self.chain(arch)
        blocks = tuple(op for op, _ in nodes if op in BLOCKS)
        if len(blocks) != NUM_LAYERS:
            raise self._error(f"the network has {len(blocks)} searchable layers, FBNet has {NUM_LAYERS}")
        self.check_chain(nodes, self._layers(blocks))
        return blocks

    def op_idx(self, arch: Architecture) -> list[int]:
        """HW-NAS-Bench's ``op_idx`` list (block codes 0..8)."""
        return [BLOCKS.index(b) for b in self.blocks(arch)]

    # -- text forms ------------------------------------------------------------
    def to_string(self, arch: Architecture) -> str:
        """The 22 block names joined by '-', e.g. ``k5_e6-skip-k3_e1_g2-...``."""
        return blocks_string(self.blocks(arch))

    def from_string(self, text: str) -> Architecture:
        """Block names joined by '-', or a list of names or ``op_idx`` codes (``[7, 8, 1, ...]``)."""
        text = text.strip()
        if text.startswith("["):
            try:
                items = loads_json(text, "the FBNet block list")
            except json.JSONDecodeError as exc:
                raise ArchitectureError(f"not an FBNet block list ({exc}): {shown(text)}") from None
            if not isinstance(items, list):
                raise ArchitectureError(f"not an FBNet block list: {shown(text)}")
            return self.from_blocks(items)
        blocks = text.split("-")
        if len(blocks) != NUM_LAYERS:   # likely another space's string: say what an FBNet one is
            raise ArchitectureError(f"not an FBNet string: {NUM_LAYERS} block names joined by '-' "
                                    f"(e.g. {'-'.join(BLOCKS[:2])}-...), got {len(blocks)} in {shown(text, 60)}")
        return self.from_blocks(blocks)

    # -- the interface -------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Architecture:
        return self.from_blocks(BLOCKS[i] for i in rng.integers(0, len(BLOCKS), NUM_LAYERS))

    def mutate(self, arch: Architecture, rng: np.random.Generator) -> Architecture:
        """Change the block of one layer."""
        blocks = list(self.blocks(arch))
        i = int(rng.integers(NUM_LAYERS))
        blocks[i] = str(rng.choice([b for b in BLOCKS if b != blocks[i]]))
        return self.from_blocks(blocks)

    def validate(self, arch: Architecture) -> None:
        self.blocks(arch)

    def size(self) -> int:
        return len(BLOCKS) ** NUM_LAYERS

    def param_space(self) -> dict[str, tuple]:
        return {name: BLOCKS for name in LAYER_NAMES}

    def to_params(self, arch: Architecture) -> dict[str, Any]:
        return dict(zip(LAYER_NAMES, self.blocks(arch)))

    def from_params(self, params: Mapping[str, Any]) -> Architecture:
        missing = [n for n in LAYER_NAMES if n not in params]
        if missing:
            raise ArchitectureError(f"FBNet parameters lack {', '.join(missing)}")
        if len(params) != len(LAYER_NAMES):   # none missing, as many: none unknown
            self.check_param_names(params, LAYER_NAMES)
        return self.from_blocks(params[n] for n in LAYER_NAMES)

    def to_model(self, arch: Architecture, num_classes: int = 100, **options):
        """HW-NAS-Bench's FBNet for CIFAR (32x32 input); 100 classes by default."""
        from .networks.fbnet import FBNetNetwork
        if options:
            raise TypeError(f"unknown fbnet network options: {', '.join(options)}")
        self.blocks(arch)
        return FBNetNetwork(self.chain(arch), num_classes=num_classes)
