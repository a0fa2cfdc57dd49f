"""TransNAS-Bench-101 (Duan et al., CVPR 2021): one encoder, searched in two
spaces, trained on 7 Taskonomy tasks.

- ``transnas_micro``: the NB201 cell topology (4 nodes, 6 edges) with 4 ops
  (none, skip, ReLU-conv1x1-BN, ReLU-conv3x3-BN) in the fixed skeleton
  ``64-41414``; 4**6 = 4,096 cells. Same node form as nb201 (each edge op a
  node, 8 nodes), and the same op names for the ops the two spaces share.
  String ``64-41414-a_bc_def``: digit = op code on the edges into node 1
  (from 0), node 2 (from 0, 1), node 3 (from 0, 1, 2).
- ``transnas_macro``: a ResNet-like skeleton of 4-6 stages of two basic
  residual blocks each; stage code 1 = normal, 2 = channels x2, 3 =
  spatial /2, 4 = both; 1-4 downsamplings and 1-3 channel doublings:
  3,256 skeletons. A chain DAG ``input -> stem -> stages -> output`` whose
  stage nodes carry ``c_in``, ``c_out``, ``stride``, ``blocks``. String
  ``64-XXXX-basic``.

``to_model`` builds the encoder (TransNAS ``MacroNet``, 64 base channels) with
the classification decoder (global pooling + linear) of the feed-forward
tasks: class_object (100 classes), class_scene (63), room_layout (9
outputs). The dense-prediction decoders (segmentation, autoencoder, surface
normal) and the Siamese jigsaw head are left out (docs/spaces_networks.md).
"""
from __future__ import annotations

import functools
import itertools
import re
from typing import Any, Mapping

import numpy as np

from ..arch import Architecture
from ..errors import ArchitectureError, ConfigError
from ..registry import SPACES
from .base import shown
from .chain import ChainSpace, Node, chain_arch
from .nb201 import EdgeCellSpace

BASE_CHANNELS = 64
RESOLUTION = 256                  # TransNAS-Bench-101 trains at 256x256
MICRO_SKELETON = "41414"
# micro op codes 0..3, named as nb201 names the same ops
MICRO_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3")
# output size of the feed-forward tasks' linear decoder (NASLib's TransNAS create_model)
TASK_OUTPUTS = {"class_object": 100, "class_scene": 63, "room_layout": 9}

# macro stage codes 1..4
MACRO_OPS = ("res_normal", "res_widen", "res_down", "res_down_widen")
MACRO_DEPTHS = (4, 5, 6)
MACRO_DOWNSAMPLES = (1, 4)        # inclusive range of stride-2 stages
MACRO_WIDENINGS = (1, 3)          # inclusive range of channel-doubling stages
BLOCKS_PER_STAGE = 2

_MICRO_RE = re.compile(r"(\d+)-(\d+)-(\d)_(\d\d)_(\d\d\d)")
_MACRO_RE = re.compile(r"(\d+)-(\d+)-basic")


def _classes(task: str | None, num_classes: int | None) -> int:
    if num_classes is not None:
        return num_classes
    if task not in TASK_OUTPUTS:
        raise ConfigError(f"to_model builds the feed-forward tasks {', '.join(TASK_OUTPUTS)} "
                         f"(or give num_classes), not {task!r}")
    return TASK_OUTPUTS[task]


@SPACES.register("transnas_micro")
class TransNASMicroSpace(EdgeCellSpace):
    """TransNAS-Bench-101 micro: NB201-style cell with 4 ops in the 64-41414 skeleton."""

    name = "transnas_micro"
    ops = ("input",) + MICRO_OPS + ("output",)
    edge_ops_vocab = MICRO_OPS
    cell_name = "TransNAS micro"
    input_shape = (3, 64, 64)

    def to_string(self, arch: Architecture) -> str:
        codes = "".join(str(MICRO_OPS.index(op)) for op in self.edge_ops(arch))
        return f"{BASE_CHANNELS}-{MICRO_SKELETON}-{codes[0]}_{codes[1:3]}_{codes[3:]}"

    def from_string(self, text: str) -> Architecture:
        text = text.strip()
        m = _MICRO_RE.fullmatch(text)
        if not m:
            raise ArchitectureError(f"not a TransNAS micro string '64-41414-a_bc_def': {shown(text)}")
        base, skeleton, *cell = m.groups()
        if (int(base), skeleton) != (BASE_CHANNELS, MICRO_SKELETON):
            raise ArchitectureError(f"the TransNAS micro space has the skeleton "
                                    f"{BASE_CHANNELS}-{MICRO_SKELETON}, got {base}-{skeleton}: {shown(text)}")
        codes = [int(c) for c in "".join(cell)]
        bad = [c for c in codes if c >= len(MICRO_OPS)]
        if bad:
            raise ArchitectureError(f"TransNAS micro op codes are 0..{len(MICRO_OPS) - 1}, got {bad[0]}: {shown(text)}")
        return self.from_edge_ops(MICRO_OPS[c] for c in codes)

    def to_model(self, arch: Architecture, task: str = "class_scene", num_classes: int | None = None,
                 **options):
        """The TransNAS encoder with this cell plus the linear decoder of ``task``."""
        from .networks.transnas import TransNASNetwork
        if options:
            raise TypeError(f"unknown transnas_micro network options: {', '.join(options)}")
        return TransNASNetwork(MICRO_SKELETON, self.edge_ops(arch), BASE_CHANNELS, _classes(task, num_classes))


@functools.lru_cache(maxsize=None)
def _macro_members() -> tuple[tuple[int, ...], ...]:
    """Every valid stage-code sequence, in (length, lexicographic) order."""
    return tuple(codes for depth in MACRO_DEPTHS for codes in itertools.product((1, 2, 3, 4), repeat=depth)
                 if _macro_rule_broken(codes) is None)


def _macro_rule_broken(codes) -> str | None:
    """Which TransNAS macro rule ``codes`` breaks, or None."""
    if len(codes) not in MACRO_DEPTHS:
        return f"{len(codes)} stages; the macro skeleton has {MACRO_DEPTHS[0]}-{MACRO_DEPTHS[-1]}"
    bad = [c for c in codes if c not in (1, 2, 3, 4)]
    if bad:
        return f"stage code {bad[0]!r} is not one of 1, 2, 3, 4"
    down = sum(c in (3, 4) for c in codes)
    if not MACRO_DOWNSAMPLES[0] <= down <= MACRO_DOWNSAMPLES[1]:
        return f"{down} downsampling stages (codes 3, 4); allowed {MACRO_DOWNSAMPLES[0]}-{MACRO_DOWNSAMPLES[1]}"
    wide = sum(c in (2, 4) for c in codes)
    if not MACRO_WIDENINGS[0] <= wide <= MACRO_WIDENINGS[1]:
        return f"{wide} channel-doubling stages (codes 2, 4); allowed {MACRO_WIDENINGS[0]}-{MACRO_WIDENINGS[1]}"
    return None


@SPACES.register("transnas_macro")
class TransNASMacroSpace(ChainSpace):
    """TransNAS-Bench-101 macro: 4-6 residual stages, each normal / widen / down / both."""

    name = "transnas_macro"
    ops = ("input", "stem") + MACRO_OPS + ("output",)
    input_shape = (3, 64, 64)

    # -- codes <-> architecture ----------------------------------------------
    def from_codes(self, codes) -> Architecture:
        """From the stage codes (1 normal, 2 channels x2, 3 spatial /2, 4 both)."""
        return chain_arch(self.name, self._layers(self._check_codes(codes)))

    def _check_codes(self, codes) -> tuple[int, ...]:
        codes = tuple(codes)
        broken = _macro_rule_broken(codes)
        if broken:
            raise self._error(broken)
        return tuple(int(c) for c in codes)

    @staticmethod
    def _layers(codes) -> list[Node]:
        nodes: list[Node] = [("input", {"resolution": RESOLUTION, "c_out": 3}),
                             ("stem", {"kernel": 3, "c_in": 3, "c_out": BASE_CHANNELS, "stride": 4})]
        c = BASE_CHANNELS
        for code in codes:
            c_out = 2 * c if code in (2, 4) else c
            nodes.append((MACRO_OPS[code - 1], {"c_in": c, "c_out": c_out, "stride": 2 if code in (3, 4) else 1,
                                                "blocks": BLOCKS_PER_STAGE}))
            c = c_out
        nodes.append(("output", {}))
        return nodes

    def codes(self, arch: Architecture) -> tuple[int, ...]:
        """The stage codes of ``arch`` (any node numbering); raises if it is not a member."""
        nodes = self.chain(arch)
        codes = tuple(MACRO_OPS.index(op) + 1 for op, _ in nodes if op in MACRO_OPS)
        self.check_chain(nodes, self._layers(self._check_codes(codes)))
        return codes

    # -- text form -------------------------------------------------------------
    def to_string(self, arch: Architecture) -> str:
        return f"{BASE_CHANNELS}-{''.join(map(str, self.codes(arch)))}-basic"

    def from_string(self, text: str) -> Architecture:
        text = text.strip()
        m = _MACRO_RE.fullmatch(text)
        if not m:
            raise ArchitectureError(f"not a TransNAS macro string '64-XXXX-basic': {shown(text)}")
        if int(m.group(1)) != BASE_CHANNELS:
            raise ArchitectureError(f"the TransNAS macro space has {BASE_CHANNELS} base channels, "
                                    f"got {m.group(1)}: {shown(text)}")
        return self.from_codes(int(c) for c in m.group(2))

    # -- the interface ---------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Architecture:
        """Uniform over the 3,256 skeletons."""
        members = _macro_members()
        return self.from_codes(members[int(rng.integers(len(members)))])

    def mutate(self, arch: Architecture, rng: np.random.Generator) -> Architecture:
        """Change, insert or remove one stage (uniform over the valid neighbours)."""
        codes = self.codes(arch)
        neighbours = set()
        for i in range(len(codes) + 1):
            for c in (1, 2, 3, 4):
                if i < len(codes) and c != codes[i]:
                    neighbours.add(codes[:i] + (c,) + codes[i + 1:])
                neighbours.add(codes[:i] + (c,) + codes[i:])
            if i < len(codes):
                neighbours.add(codes[:i] + codes[i + 1:])
        valid = sorted(n for n in neighbours if _macro_rule_broken(n) is None)
        return self.from_codes(valid[int(rng.integers(len(valid)))])

    def validate(self, arch: Architecture) -> None:
        self.codes(arch)

    def enumerate(self):
        for codes in _macro_members():
            yield self.from_codes(codes)

    def size(self) -> int:
        return len(_macro_members())

    def param_space(self) -> dict[str, tuple]:
        """Depth and one code per stage slot; slots beyond the depth are ignored
        (and written as 1). Combinations that break a macro rule are rejected
        by ``from_params``."""
        return {"depth": MACRO_DEPTHS, **{f"stage{i}": (1, 2, 3, 4) for i in range(max(MACRO_DEPTHS))}}

    def to_params(self, arch: Architecture) -> dict[str, Any]:
        codes = self.codes(arch)
        return {"depth": len(codes), **{f"stage{i}": codes[i] if i < len(codes) else 1
                                        for i in range(max(MACRO_DEPTHS))}}

    def from_params(self, params: Mapping[str, Any]) -> Architecture:
        names = self.param_space()
        missing = [n for n in names if n not in params]
        if missing:
            raise ArchitectureError(f"transnas_macro parameters lack {', '.join(missing)}")
        self.check_param_names(params, names)
        depth = params["depth"]
        if depth not in MACRO_DEPTHS:
            raise self._error(f"depth {depth!r} is not one of {MACRO_DEPTHS}")
        return self.from_codes(params[f"stage{i}"] for i in range(depth))

    def to_model(self, arch: Architecture, task: str = "class_scene", num_classes: int | None = None,
                 **options):
        """The TransNAS encoder with this skeleton (basic residual blocks) plus the linear decoder of ``task``."""
        from .networks.transnas import TransNASNetwork
        if options:
            raise TypeError(f"unknown transnas_macro network options: {', '.join(options)}")
        skeleton = "".join(map(str, self.codes(arch)))
        return TransNASNetwork(skeleton, None, BASE_CHANNELS, _classes(task, num_classes))
