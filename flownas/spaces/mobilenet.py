"""Once-for-All MobileNetV3 space (OFA ``ofa_mbv3_d234_e346_k357_w1.0``):
5 searchable stages of 2-4 MBConv blocks, each block with kernel 3/5/7 and
expand ratio 3/4/6, input resolution 128-224 (step 4) as in the OFA tables.

An architecture is the whole network as a chain DAG, one node per layer, in
forward order (see docs/spaces_networks.md)::

    input (resolution) -> stem -> mbconv_k3_e1 (fixed first block)
      -> mbconv_k{K}_e{E} x (d1 + ... + d5) -> head_conv -> pool
      -> feature_mix -> classifier -> output

Every node carries its layer's attributes (``kernel``, ``expand``, ``c_in``,
``c_out``, ``stride``, ``act``, ``se``; the input node its ``resolution``), so
whole-network predictors see the real network. The fixed skeleton is OFA's
MobileNetV3 at width 1.0 (``OFAMobileNetV3``): stage widths 24/40/80/112/160,
strides 2/2/2/1/2, ReLU in the first two stages and h-swish after,
squeeze-excitation in stages 2, 4 and 5.

The OFA record form (``ks``, ``e``: 20 slots, ``d``: 5 depths, ``r``) maps to
it with ``from_record``/``to_record``; only the first ``d[s]`` slots of stage
``s`` are active, the others are ignored (and written as 3 by ``to_record``).
"""
from __future__ import annotations

import json
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

import numpy as np

from ..arch import Architecture, loads_json
from ..errors import ArchitectureError, ConfigError
from ..registry import SPACES
from .base import shown
from .chain import ChainSpace, Node, chain_arch

KERNELS = (3, 5, 7)
EXPANDS = (3, 4, 6)
DEPTHS = (2, 3, 4)
RESOLUTIONS = tuple(range(128, 225, 4))
NUM_STAGES = 5
MAX_DEPTH = max(DEPTHS)

# the fixed OFA MobileNetV3 (width 1.0) skeleton
STEM_WIDTH = 16
STAGE_WIDTHS = (24, 40, 80, 112, 160)
STAGE_STRIDES = (2, 2, 2, 1, 2)
STAGE_ACTS = ("relu", "relu", "h_swish", "h_swish", "h_swish")
STAGE_SE = (False, True, False, True, True)
HEAD_WIDTH = 960
FEATURE_WIDTH = 1280

BLOCK_OPS = tuple(f"mbconv_k{k}_e{e}" for k in KERNELS for e in EXPANDS)
FIRST_BLOCK_OP = "mbconv_k3_e1"


class MobileNetConfig(NamedTuple):
    """The searchable choices: per stage a tuple of (kernel, expand) blocks."""
    stages: tuple[tuple[tuple[int, int], ...], ...]
    resolution: int


def _block_attrs(kernel, expand, c_in, c_out, stride, act, se) -> dict[str, Any]:
    return {"kernel": kernel, "expand": expand, "c_in": c_in, "c_out": c_out,
            "stride": stride, "act": act, "se": se}


@SPACES.register("mobilenet")
class MobileNetSpace(ChainSpace):
    """OFA MobileNetV3: depth/kernel/expand per stage and block, plus resolution."""

    name = "mobilenet"
    ops = ("input", "stem", FIRST_BLOCK_OP) + BLOCK_OPS + (
        "head_conv", "pool", "feature_mix", "classifier", "output")
    input_shape = (3, 64, 64)

    def __init__(self, resolutions: Iterable[int] = RESOLUTIONS):
        self.resolutions = tuple(sorted({int(r) for r in resolutions}))
        if not self.resolutions or min(self.resolutions) < 32:
            raise ConfigError(f"mobilenet resolutions must be a non-empty set of sizes >= 32, got {resolutions!r}")

    # -- config <-> architecture -------------------------------------------
    def from_config(self, config: MobileNetConfig) -> Architecture:
        return chain_arch(self.name, self._layers(config))

    def _layers(self, config: MobileNetConfig) -> list[Node]:
        stages, resolution = self._check_config(config)
        nodes = [("input", {"resolution": resolution, "c_out": 3}),
                 ("stem", {"kernel": 3, "c_in": 3, "c_out": STEM_WIDTH, "stride": 2, "act": "h_swish"}),
                 (FIRST_BLOCK_OP, _block_attrs(3, 1, STEM_WIDTH, STEM_WIDTH, 1, "relu", False))]
        c = STEM_WIDTH
        for s, blocks in enumerate(stages):
            for b, (k, e) in enumerate(blocks):
                stride = STAGE_STRIDES[s] if b == 0 else 1
                nodes.append((f"mbconv_k{k}_e{e}",
                              _block_attrs(k, e, c, STAGE_WIDTHS[s], stride, STAGE_ACTS[s], STAGE_SE[s])))
                c = STAGE_WIDTHS[s]
        nodes += [("head_conv", {"kernel": 1, "c_in": c, "c_out": HEAD_WIDTH, "stride": 1, "act": "h_swish"}),
                  ("pool", {"c_in": HEAD_WIDTH, "c_out": HEAD_WIDTH}),
                  ("feature_mix", {"kernel": 1, "c_in": HEAD_WIDTH, "c_out": FEATURE_WIDTH, "stride": 1,
                                   "act": "h_swish"}),
                  ("classifier", {"c_in": FEATURE_WIDTH}),
                  ("output", {})]
        return nodes

    def config(self, arch: Architecture) -> MobileNetConfig:
        """The choices of ``arch`` (any node numbering); raises if it is not a member."""
        nodes = self.chain(arch)
        resolution = nodes[0][1].get("resolution")
        stages: list[list[tuple[int, int]]] = [[] for _ in range(NUM_STAGES)]
        for op, attrs in nodes:
            if op in BLOCK_OPS:
                c_out = attrs.get("c_out")
                if c_out not in STAGE_WIDTHS:
                    raise self._error(f"block {op} has c_out {c_out!r}; stage widths are {STAGE_WIDTHS}")
                stages[STAGE_WIDTHS.index(c_out)].append((attrs.get("kernel"), attrs.get("expand")))
        config = MobileNetConfig(tuple(tuple(b) for b in stages), resolution)
        self.check_chain(nodes, self._layers(config))
        return config

    def _check_config(self, config: MobileNetConfig):
        """The stages and resolution of ``config``, checked, as ints (204.0 is 204:
        an architecture's attributes, hence its key and text form, hold ints)."""
        stages, resolution = config
        if len(stages) != NUM_STAGES:
            raise self._error(f"needs {NUM_STAGES} stages, got {len(stages)}")
        checked = []
        for s, blocks in enumerate(stages):
            if len(blocks) not in DEPTHS:
                raise self._error(f"stage {s} has {len(blocks)} blocks; depth must be one of {DEPTHS}")
            checked.append([])
            for b, (k, e) in enumerate(blocks):
                k = _whole(k, f"stage {s} block {b}: kernel")
                e = _whole(e, f"stage {s} block {b}: expand ratio")
                if k not in KERNELS:
                    raise self._error(f"stage {s} block {b}: kernel {k!r} is not one of {KERNELS}")
                if e not in EXPANDS:
                    raise self._error(f"stage {s} block {b}: expand ratio {e!r} is not one of {EXPANDS}")
                checked[-1].append((k, e))
        resolution = _whole(resolution, "resolution")
        if resolution not in self.resolutions:
            raise self._error(f"resolution {resolution!r} is not one of "
                              f"{self.resolutions[0]}..{self.resolutions[-1]} ({len(self.resolutions)} sizes)")
        return tuple(tuple(blocks) for blocks in checked), resolution

    # -- the OFA record form --------------------------------------------------
    def from_record(self, record: Mapping[str, Any]) -> Architecture:
        """From OFA's ``{"ks": [20], "e": [20], "d": [5], "r": R}`` (``r`` optional: 224)."""
        return self.from_config(self.record_config(record))

    def record_config(self, record: Mapping[str, Any]) -> MobileNetConfig:
        """The choices of an OFA record (checked), without building the graph."""
        try:
            ks, es, ds = (list(record[k]) for k in ("ks", "e", "d"))
        except KeyError as exc:
            raise ArchitectureError(f"an OFA record needs ks, e and d; {exc.args[0]!r} is missing") from None
        except TypeError:
            raise ArchitectureError("an OFA record's ks, e and d must be lists") from None
        slots = NUM_STAGES * MAX_DEPTH
        if len(ks) != slots or len(es) != slots or len(ds) != NUM_STAGES:
            raise ArchitectureError(f"an OFA record has {slots} ks, {slots} e and {NUM_STAGES} d values, "
                                    f"got {len(ks)}, {len(es)} and {len(ds)}")
        for s, d in enumerate(ds):
            ds[s] = d = _whole(d, f"d[{s}]")
            if d not in DEPTHS:
                raise ArchitectureError(f"d[{s}] = {d!r}: depth must be one of {DEPTHS}")
        stages = tuple(tuple((ks[s * MAX_DEPTH + b], es[s * MAX_DEPTH + b]) for b in range(d))
                       for s, d in enumerate(ds))
        return MobileNetConfig(*self._check_config(MobileNetConfig(stages, record.get("r", 224))))

    def to_record(self, arch: Architecture) -> dict[str, Any]:
        """OFA's record form; inactive slots are written as kernel 3, expand 3."""
        stages, resolution = self.config(arch)
        ks, es = [KERNELS[0]] * NUM_STAGES * MAX_DEPTH, [EXPANDS[0]] * NUM_STAGES * MAX_DEPTH
        for s, blocks in enumerate(stages):
            for b, (k, e) in enumerate(blocks):
                ks[s * MAX_DEPTH + b], es[s * MAX_DEPTH + b] = k, e
        return {"ks": ks, "e": es, "d": [len(b) for b in stages], "r": resolution}

    # -- text forms ------------------------------------------------------------
    def to_string(self, arch: Architecture) -> str:
        """``r224:k3e4,k5e6|k7e3,...|...``: resolution, then the active blocks per stage."""
        return config_string(self.config(arch))

    def from_string(self, text: str) -> Architecture:
        text = text.strip()
        if text.startswith("{"):   # an OFA record (flownas JSON goes through parse)
            try:
                record = loads_json(text, "the OFA record JSON")
            except json.JSONDecodeError as exc:
                raise ArchitectureError(f"OFA record JSON does not parse: {exc}") from None
            # (the table's rows carry more: latencies; a record typed in carries only these)
            unknown = [k for k in record if k not in ("ks", "e", "d", "r")]
            if unknown:
                raise ArchitectureError(f"an OFA record has the keys ks, e, d and r (optional), not {unknown[0]!r}")
            return self.from_record(record)
        try:
            head, _, body = text.partition(":")
            if not head.startswith("r") or not body:
                raise ValueError("expected 'r<resolution>:<stage>|<stage>|...'")
            stages = []
            for stage in body.split("|"):
                blocks = []
                for block in stage.split(","):
                    k, sep, e = block.strip().lstrip("k").partition("e")
                    if not block.strip().startswith("k") or not sep:
                        raise ValueError(f"block {block!r} is not k<kernel>e<expand>")
                    blocks.append((int(k), int(e)))
                stages.append(tuple(blocks))
            config = MobileNetConfig(tuple(stages), int(head[1:]))
        except ValueError as exc:
            raise ArchitectureError(f"not a mobilenet string ({exc}): {shown(text)}") from None
        return self.from_config(config)

    def parse(self, text: str) -> Architecture:
        stripped = text.strip()
        if stripped.startswith("{") and '"format"' not in stripped:
            return self.from_string(stripped)
        return super().parse(text)

    # -- the interface -------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Architecture:
        stages = tuple(tuple(self._random_block(rng) for _ in range(int(rng.choice(DEPTHS))))
                       for _ in range(NUM_STAGES))
        return self.from_config(MobileNetConfig(stages, int(rng.choice(self.resolutions))))

    @staticmethod
    def _random_block(rng) -> tuple[int, int]:
        return int(rng.choice(KERNELS)), int(rng.choice(EXPANDS))

    def mutate(self, arch: Architecture, rng: np.random.Generator) -> Architecture:
        """Change one block's kernel or expand ratio, one stage's depth, or the resolution."""
        stages, resolution = self.config(arch)
        stages = [list(b) for b in stages]
        genes = [("kernel", s, b) for s, blocks in enumerate(stages) for b in range(len(blocks))]
        genes += [("expand", s, b) for s, b in ((g[1], g[2]) for g in genes)]
        genes += [("depth", s, None) for s in range(NUM_STAGES)]
        if len(self.resolutions) > 1:
            genes.append(("resolution", None, None))
        kind, s, b = genes[int(rng.integers(len(genes)))]
        if kind == "kernel":
            k, e = stages[s][b]
            stages[s][b] = (_other(rng, KERNELS, k), e)
        elif kind == "expand":
            k, e = stages[s][b]
            stages[s][b] = (k, _other(rng, EXPANDS, e))
        elif kind == "depth":
            depth = _other(rng, DEPTHS, len(stages[s]))
            stages[s] = (stages[s] + [self._random_block(rng) for _ in range(depth)])[:depth]
        else:
            resolution = _other(rng, self.resolutions, resolution)
        return self.from_config(MobileNetConfig(tuple(tuple(b) for b in stages), resolution))

    def validate(self, arch: Architecture) -> None:
        self.config(arch)

    def size(self) -> int:
        per_stage = sum((len(KERNELS) * len(EXPANDS)) ** d for d in DEPTHS)
        return per_stage ** NUM_STAGES * len(self.resolutions)

    def param_space(self) -> dict[str, tuple]:
        params: dict[str, tuple] = {"resolution": self.resolutions}
        for s in range(NUM_STAGES):
            params[f"s{s}_depth"] = DEPTHS
            for b in range(MAX_DEPTH):
                params[f"s{s}_b{b}_kernel"] = KERNELS
                params[f"s{s}_b{b}_expand"] = EXPANDS
        return params

    def to_params(self, arch: Architecture) -> dict[str, Any]:
        """Inactive slots (beyond a stage's depth) are normalized to kernel 3, expand 3."""
        record = self.to_record(arch)
        params: dict[str, Any] = {"resolution": record["r"]}
        for s in range(NUM_STAGES):
            params[f"s{s}_depth"] = record["d"][s]
            for b in range(MAX_DEPTH):
                params[f"s{s}_b{b}_kernel"] = record["ks"][s * MAX_DEPTH + b]
                params[f"s{s}_b{b}_expand"] = record["e"][s * MAX_DEPTH + b]
        return params

    def from_params(self, params: Mapping[str, Any]) -> Architecture:
        names = self.param_space()
        missing = [n for n in names if n not in params]
        if missing:
            raise ArchitectureError(f"mobilenet parameters lack {', '.join(missing[:4])}"
                                    + (f" and {len(missing) - 4} more" if len(missing) > 4 else ""))
        self.check_param_names(params, names)
        slots = [(s, b) for s in range(NUM_STAGES) for b in range(MAX_DEPTH)]
        return self.from_record({"ks": [params[f"s{s}_b{b}_kernel"] for s, b in slots],
                                 "e": [params[f"s{s}_b{b}_expand"] for s, b in slots],
                                 "d": [params[f"s{s}_depth"] for s in range(NUM_STAGES)],
                                 "r": params["resolution"]})

    def to_model(self, arch: Architecture, num_classes: int = 1000, dropout: float = 0.1, **options):
        """OFA's MobileNetV3 subnet; it runs at any input size (global pooling)."""
        from .networks.mobilenet import MobileNetV3Network
        if options:
            raise TypeError(f"unknown mobilenet network options: {', '.join(options)}")
        self.config(arch)
        return MobileNetV3Network(self.chain(arch), num_classes=num_classes, dropout=dropout)


def config_string(config: MobileNetConfig) -> str:
    stages, resolution = config
    return f"r{resolution}:" + "|".join(",".join(f"k{k}e{e}" for k, e in blocks) for blocks in stages)


def _whole(value, name: str) -> int:
    """``value`` as an int: an int, or a float that is a whole number (204.0);
    else an ArchitectureError naming ``name`` (204.5, "204", True)."""
    if type(value) is int:   # the common case, first
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    raise ArchitectureError(f"{name} must be a whole number, got {value!r}")


def _other(rng: np.random.Generator, choices: Sequence, current):
    """A random choice different from ``current``."""
    return type(current)(rng.choice([c for c in choices if c != current]))
