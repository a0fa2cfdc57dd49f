"""NAS-Bench-201 (NATS-Bench topology space): 5 ops on the 6 edges of a
4-node cell, 5**6 = 15,625 cells.

As in the predictor papers, each edge operation becomes a node, so a cell is an
8-node DAG: ``input``, the six edge ops in string order, ``output``::

    0 input -> 1 (1<-0), 2 (2<-0), 4 (3<-0)
    1 (1<-0) -> 3 (2<-1), 5 (3<-1)
    2 (2<-0), 3 (2<-1) -> 6 (3<-2)
    4, 5, 6 -> 7 output

The network is the NB201 CIFAR macro skeleton (xautodl ``TinyNetwork``):
stem, 3 stages of N cells with residual reduction blocks between them.
"""
from __future__ import annotations

import functools
import itertools
from typing import Any, ClassVar, Iterator, Mapping

import numpy as np

from ..arch import Architecture
from ..errors import ArchitectureError, check_whole
from ..registry import SPACES
from .base import SearchSpace, shown

EDGE_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# (to, from) of the six edges, in NB201 string order
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
EDGE_NAMES = tuple(f"edge_{t}<-{f}" for t, f in EDGES)

# the fixed 8-node graph: node k+1 is edge k; node 0 input, node 7 output
_INPUT, _OUTPUT = 0, 7
_TEMPLATE_EDGES: tuple[tuple[int, int], ...] = tuple(sorted(
    [(_INPUT, 1 + k) for k, (_, f) in enumerate(EDGES) if f == 0]
    + [(1 + k, 1 + m) for k, (t, _) in enumerate(EDGES) for m, (_, f2) in enumerate(EDGES) if f2 == t]
    + [(1 + k, _OUTPUT) for k, (t, _) in enumerate(EDGES) if t == 3]))


@functools.lru_cache(maxsize=None)
def _template(space: str = "nb201") -> Architecture:
    cell = Architecture.from_edges(("input",) + ("none",) * 6 + ("output",), _TEMPLATE_EDGES, space)
    cell.topological_order(), cell.depths(), cell.reachability()  # cached, shared by copies
    return cell


class EdgeCellSpace(SearchSpace):
    """NB201's cell topology (4 nodes, one op on each of the 6 edges, each edge
    op a node) over a vocabulary ``edge_ops_vocab``: the machinery that nb201
    and TransNAS-Bench-101's micro space share. Subclasses add the text form
    and the network."""

    edge_ops_vocab: ClassVar[tuple[str, ...]]
    cell_name: ClassVar[str]          # how messages name the cell, e.g. "NB201"

    # -- conversions -----------------------------------------------------
    def from_edge_ops(self, edge_ops) -> Architecture:
        edge_ops = tuple(edge_ops)
        if len(edge_ops) != 6:
            raise ArchitectureError(f"{self.cell_name} cells have 6 edge ops, got {len(edge_ops)}")
        for op in edge_ops:
            if op not in self.edge_ops_vocab:
                raise ArchitectureError(
                    f"unknown {self.cell_name} op {op!r} (known: {', '.join(self.edge_ops_vocab)})")
        return _template(self.name).with_ops(("input",) + edge_ops + ("output",))

    def edge_ops(self, arch: Architecture) -> tuple[str, ...]:
        """The six edge ops in NB201 string order, whatever the node numbering."""
        self.check_common(arch)
        if arch.edges == _TEMPLATE_EDGES and arch.ops[0] == "input" and arch.ops[7] == "output":
            return arch.ops[1:7]
        return tuple(arch.ops[i] for i in self._roles(arch))

    def _roles(self, arch: Architecture) -> list[int]:
        """Node of each edge of the template in a relabeled cell."""
        if arch.num_nodes != 8 or arch.num_edges != len(_TEMPLATE_EDGES):
            raise self._error(f"a cell has 8 nodes and {len(_TEMPLATE_EDGES)} edges, "
                              f"got {arch.num_nodes} and {arch.num_edges}")
        inp, out = arch.ops.index("input"), arch.ops.index("output")
        first = arch.successors(inp)                      # edges 1<-0, 2<-0, 3<-0
        try:
            (e30,) = [v for v in first if arch.successors(v) == (out,)]
            (e10,) = [v for v in first if len(arch.successors(v)) == 2]
            (e20,) = [v for v in first if v not in (e30, e10)]
            (e21,) = [v for v in arch.successors(e10) if v != out and arch.successors(v) != (out,)]
            (e31,) = [v for v in arch.successors(e10) if arch.successors(v) == (out,)]
            (e32,) = arch.successors(e20)
        except ValueError:
            raise self._not_the_cell() from None
        roles = [e10, e20, e21, e30, e31, e32]
        relabeled = sorted((self._pos(roles, inp, out, i), self._pos(roles, inp, out, j)) for i, j in arch.edges)
        if tuple(relabeled) != _TEMPLATE_EDGES:
            raise self._not_the_cell()
        return roles

    def _not_the_cell(self):
        return self._error(f"the graph is not the {self.cell_name} cell (input -> 6 edge ops -> output)")

    @staticmethod
    def _pos(roles, inp, out, v) -> int:
        return _INPUT if v == inp else _OUTPUT if v == out else 1 + roles.index(v)

    # -- the interface ---------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Architecture:
        vocab = self.edge_ops_vocab
        return self.from_edge_ops(vocab[i] for i in rng.integers(0, len(vocab), 6))

    def mutate(self, arch: Architecture, rng: np.random.Generator) -> Architecture:
        ops = list(self.edge_ops(arch))
        k = int(rng.integers(6))
        ops[k] = rng.choice([o for o in self.edge_ops_vocab if o != ops[k]])
        return self.from_edge_ops(ops)

    def validate(self, arch: Architecture) -> None:
        self.edge_ops(arch)

    def enumerate(self) -> Iterator[Architecture]:
        for ops in itertools.product(self.edge_ops_vocab, repeat=6):
            yield self.from_edge_ops(ops)

    def size(self) -> int:
        return len(self.edge_ops_vocab) ** 6

    def param_space(self) -> dict[str, tuple]:
        return {name: self.edge_ops_vocab for name in EDGE_NAMES}

    def to_params(self, arch: Architecture) -> dict[str, Any]:
        return dict(zip(EDGE_NAMES, self.edge_ops(arch)))

    def from_params(self, params: Mapping[str, Any]) -> Architecture:
        missing = [n for n in EDGE_NAMES if n not in params]
        if missing:
            raise ArchitectureError(f"{self.cell_name} parameters lack {', '.join(missing)}")
        if len(params) != len(EDGE_NAMES):   # as many as there are names, none missing: none unknown
            self.check_param_names(params, EDGE_NAMES)
        return self.from_edge_ops(params[n] for n in EDGE_NAMES)


@SPACES.register("nb201")
class NB201Space(EdgeCellSpace):
    name = "nb201"
    ops = ("input",) + EDGE_OPS + ("output",)
    edge_ops_vocab = EDGE_OPS
    cell_name = "NB201"
    num_classes_of = {"cifar10": 10, "cifar100": 100, "ImageNet16-120": 120}

    def to_string(self, arch: Architecture) -> str:
        ops = self.edge_ops(arch)
        nodes, k = [], 0
        for t in (1, 2, 3):
            nodes.append("|" + "|".join(f"{ops[k + f]}~{f}" for f in range(t)) + "|")
            k += t
        return "+".join(nodes)

    def from_string(self, text: str) -> Architecture:
        text = text.strip()
        try:
            nodes = text.split("+")
            if len(nodes) != 3:
                raise ValueError("3 nodes separated by '+'")
            ops = []
            for t, node in enumerate(nodes, start=1):
                parts = node.strip("|").split("|")
                if len(parts) != t:
                    raise ValueError(f"node {t} needs {t} inputs")
                for f, part in enumerate(parts):
                    op, _, src = part.partition("~")
                    if src != str(f):
                        raise ValueError(f"node {t} input {f} is written {part!r}")
                    ops.append(op)
        except ValueError as exc:
            raise ArchitectureError(f"not an NB201 string ({exc}): {shown(text)}") from None
        return self.from_edge_ops(ops)

    def to_model(self, arch: Architecture, num_classes: int = 10, C: int = 16, N: int = 5, **options):
        from .networks.nb201 import NB201Network
        if options:
            raise TypeError(f"unknown NB201 network options: {', '.join(options)}")
        check_whole("C", C)
        check_whole("N", N)
        return NB201Network(self.edge_ops(arch), C=C, N=N, num_classes=num_classes)
