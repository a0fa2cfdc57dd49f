"""The DARTS search space (NAS-Bench-301): a genotype is a normal and a
reduction cell, each with 4 intermediate nodes; node k (2..5) sums two ops
applied to two distinct earlier states (0 = c_{k-2}, 1 = c_{k-1}, j >= 2 =
node j), and the cell's output concatenates nodes 2..5.

One ``Architecture`` holds both cells, as the network chains them (32 nodes,
45 edges)::

    input -> normal(c_k-2), normal(c_k-1)            the stem feeds both inputs
    normal(c_k-1) -> reduce(c_k-2)                   the cell before the normal one
    normal(concat) -> reduce(c_k-1)
    reduce(concat) -> output

and each cell, as in the predictor papers (arch2vec, FlowerFormer's two-cell
data), turns every edge op into a node; an ``add`` node per intermediate node
keeps the pairing of ops exact (without it, two unused nodes feeding the
output could swap ops)::

    state(i) -> op node -> add(k) -> concat,    add(k) -> op nodes that read node k

Isomorphism then does what the genotype leaves implicit: swapping the two
inputs of a node, or renumbering intermediate nodes (which only permutes the
channels of the concat), gives an equal architecture. ``to_genotype`` reads
the genotype the numbering spells out (exactly the input genotype for
``from_genotype``'s numbering); ``to_string`` and ``to_params`` read the
canonical numbering, so equal architectures print equally.
"""
from __future__ import annotations

import ast
from collections import namedtuple
from typing import Any, Mapping, Sequence

import numpy as np

from ..arch import Architecture
from ..errors import ArchitectureError, ConfigError
from ..registry import SPACES
from .base import SearchSpace, shown

Genotype = namedtuple("Genotype", "normal normal_concat reduce reduce_concat")

# DARTS' PRIMITIVES; NB301 genotypes never use "none"
EDGE_OPS = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
            "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
SEARCH_OPS = EDGE_OPS[1:]
CELLS = ("normal", "reduce")
STEPS = 4                      # intermediate nodes per cell
CONCAT = [2, 3, 4, 5]
PREV_PREV, PREV, ADD, CONCAT_OP = "c_k-2", "c_k-1", "add", "concat"

# per cell, in a topological numbering: c_k-2, c_k-1, then (op, op, add) for
# nodes 2..5, then concat; the normal cell at 1..15, the reduction cell at 16..30
CELL_SIZE = 3 + 3 * STEPS
NUM_NODES = 2 + 2 * CELL_SIZE
NUM_EDGES = 5 + 2 * (5 * STEPS)
_OFFSET = {"normal": 1, "reduce": 1 + CELL_SIZE}

PARAM_NAMES = tuple(f"{cell}_node{k}_{part}" for cell in CELLS for k in range(2, 2 + STEPS)
                    for part in ("inputs", "op_a", "op_b"))


def _state_node(offset: int, i: int) -> int:
    return offset + i if i < 2 else offset + 2 + 3 * (i - 2) + 2


def _cell_ops(pairs) -> list[str]:
    ops = [PREV_PREV, PREV]
    for k in range(STEPS):
        ops += [pairs[2 * k][0], pairs[2 * k + 1][0], ADD]
    return ops + [CONCAT_OP]


def _cell_edges(offset: int, pairs) -> list[tuple[int, int]]:
    edges = []
    for k in range(STEPS):
        add = _state_node(offset, k + 2)
        for e in (2 * k, 2 * k + 1):
            op_node = offset + 2 + 3 * k + (e - 2 * k)
            edges += [(_state_node(offset, pairs[e][1]), op_node), (op_node, add)]
        edges.append((add, offset + CELL_SIZE - 1))
    return edges


@SPACES.register("darts")
class DartsSpace(SearchSpace):
    """DARTS / NAS-Bench-301 genotypes: normal + reduction cell in one DAG."""

    name = "darts"
    ops = ("input", PREV_PREV, PREV) + EDGE_OPS + (ADD, CONCAT_OP, "output")

    # -- genotypes -------------------------------------------------------
    def from_genotype(self, genotype: Any) -> Architecture:
        """An architecture from a DARTS ``Genotype`` (or any object / mapping with
        ``normal``, ``reduce`` and optional ``*_concat``, pairs ``(op, input)``)."""
        cells = {cell: self._check_pairs(genotype, cell) for cell in CELLS}
        n, r = _OFFSET["normal"], _OFFSET["reduce"]
        ops = ["input"] + _cell_ops(cells["normal"]) + _cell_ops(cells["reduce"]) + ["output"]
        edges = [(0, n), (0, n + 1), (n + 1, r), (n + CELL_SIZE - 1, r + 1), (r + CELL_SIZE - 1, NUM_NODES - 1)]
        edges += _cell_edges(n, cells["normal"]) + _cell_edges(r, cells["reduce"])
        return Architecture.from_edges(ops, edges, self.name)

    def _check_pairs(self, genotype: Any, cell: str) -> list[tuple[str, int]]:
        get = genotype.get if isinstance(genotype, Mapping) else lambda k, d=None: getattr(genotype, k, d)
        pairs = get(cell)
        concat = get(f"{cell}_concat", CONCAT)
        if pairs is None:
            raise ArchitectureError(f"a DARTS genotype needs '{cell}' (8 (op, input) pairs)")
        try:
            pairs = [(str(op), int(i)) for op, i in pairs]
        except (TypeError, ValueError):
            raise ArchitectureError(f"{cell} cell: expected (op, input) pairs, got {pairs!r}") from None
        if len(pairs) != 2 * STEPS:
            raise ArchitectureError(f"{cell} cell: a DARTS cell has {2 * STEPS} (op, input) pairs, got {len(pairs)}")
        if list(concat) != CONCAT:
            raise ArchitectureError(f"{cell} cell: DARTS concatenates nodes {CONCAT}, got {list(concat)}")
        for e, (op, i) in enumerate(pairs):
            k = e // 2 + 2
            if op not in EDGE_OPS:
                raise ArchitectureError(f"{cell} cell: unknown DARTS op {op!r} (known: {', '.join(EDGE_OPS)})")
            if not 0 <= i < k:
                raise ArchitectureError(f"{cell} cell: node {k} reads input {i}, it can read 0..{k - 1}")
        for k in range(STEPS):
            if pairs[2 * k][1] == pairs[2 * k + 1][1]:
                raise ArchitectureError(f"{cell} cell: node {k + 2} reads input {pairs[2 * k][1]} twice; "
                                        "its two inputs must be distinct")
        return pairs

    def to_genotype(self, arch: Architecture) -> Genotype:
        """The genotype the node numbering spells out: intermediate nodes and the
        two ops of a node in index order (exactly the input of ``from_genotype``)."""
        self.check_common(arch)
        if arch.num_nodes != NUM_NODES or arch.num_edges != NUM_EDGES:
            raise self._error(f"a DARTS architecture has {NUM_NODES} nodes and {NUM_EDGES} edges "
                              f"(input, two cells, output), got {arch.num_nodes} and {arch.num_edges}")
        role: dict[int, int] = {arch.ops.index("input"): 0, arch.ops.index("output"): NUM_NODES - 1}
        normal_in = self._inputs(arch, arch.successors(arch.ops.index("input")), "the input")
        normal = self._read_cell(arch, *normal_in, "normal", role)
        n_prev, n_concat = normal_in[1], _find(role, _OFFSET["normal"] + CELL_SIZE - 1)
        reduce_in = self._inputs(arch, [v for v in arch.successors(n_prev) if arch.ops[v] == PREV_PREV]
                                 + list(arch.successors(n_concat)), "the normal cell")
        reduce = self._read_cell(arch, *reduce_in, "reduce", role)
        genotype = Genotype(normal, list(CONCAT), reduce, list(CONCAT))
        # the reading is loose; the exact check: the numbering maps onto the rebuilt graph
        rebuilt = self.from_genotype(genotype)
        if len(role) != NUM_NODES or sorted((role[i], role[j]) for i, j in arch.edges) != list(rebuilt.edges):
            raise self._error("the graph is not two DARTS cells (see flownas.spaces.darts)")
        return genotype

    def _inputs(self, arch: Architecture, nodes: Sequence[int], where: str) -> tuple[int, int]:
        prev_prev = [v for v in nodes if arch.ops[v] == PREV_PREV]
        prev = [v for v in nodes if arch.ops[v] == PREV]
        if len(prev_prev) != 1 or len(prev) != 1 or len(nodes) != 2:
            raise self._error(f"{where} must feed one {PREV_PREV!r} and one {PREV!r} node, "
                              f"found {[arch.ops[v] for v in nodes]}")
        return prev_prev[0], prev[0]

    def _read_cell(self, arch: Architecture, prev_prev: int, prev: int, cell: str,
                   role: dict[int, int]) -> list[tuple[str, int]]:
        """(op, input) pairs of one cell; fills ``role`` (node -> template node)."""
        offset = _OFFSET[cell]
        state = {prev_prev: 0, prev: 1}
        role[prev_prev], role[prev] = offset, offset + 1
        # the cell's add nodes, reached through op nodes from its states
        adds, frontier = set(), [prev_prev, prev]
        while frontier:
            for o in arch.successors(frontier.pop()):
                for a in arch.successors(o) if arch.ops[o] in EDGE_OPS else ():
                    if arch.ops[a] == ADD and a not in adds:
                        adds.add(a)
                        frontier.append(a)
        if len(adds) != STEPS:
            raise self._error(f"the {cell} cell has {len(adds)} intermediate (add) nodes, DARTS has {STEPS}")
        pairs: list[tuple[str, int]] = []
        for k, add in enumerate(_topological(arch, adds), start=2):
            op_nodes = sorted(arch.predecessors(add))
            sources = [arch.predecessors(o) for o in op_nodes]
            if len(op_nodes) != 2 or any(len(s) != 1 or s[0] not in state for s in sources):
                raise self._error(f"node {k} of the {cell} cell must sum two ops on earlier states")
            state[add] = k
            role[add] = _state_node(offset, k)
            for e, (o, (s,)) in enumerate(zip(op_nodes, sources)):
                pairs.append((arch.ops[o], state[s]))
                role[o] = offset + 2 + 3 * (k - 2) + e
        concat = {c for a in adds for c in arch.successors(a) if arch.ops[c] == CONCAT_OP}
        if len(concat) != 1:
            raise self._error(f"the {cell} cell's nodes must feed one concat node")
        role[concat.pop()] = offset + CELL_SIZE - 1
        try:
            return self._check_pairs({cell: pairs}, cell)
        except ArchitectureError as exc:
            raise self._error(str(exc)) from None

    def canonical_genotype(self, arch: Architecture) -> Genotype:
        """The same genotype for every numbering of ``arch``."""
        self.check_common(arch)   # not an Architecture, or another space's: say so before canonicalizing
        return self.to_genotype(arch.canonical())

    def to_string(self, arch: Architecture) -> str:
        return repr(self.canonical_genotype(arch))

    def from_string(self, text: str) -> Architecture:
        """``Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5], ...)``
        (``range(2, 6)`` for the concat is accepted, as DARTS prints it)."""
        source = text.strip()
        try:
            call = ast.parse(source, mode="eval").body
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "Genotype"
                    and not call.args):
                raise ValueError("expected Genotype(normal=..., reduce=...)")
            fields = {kw.arg: _literal(kw.value, source) for kw in call.keywords}
        except (SyntaxError, ValueError) as exc:
            raise ArchitectureError(f"not a DARTS genotype ({exc}): {shown(text)}") from None
        except (RecursionError, MemoryError):   # Python's parser on thousands of nested operators
            raise ArchitectureError(f"not a DARTS genotype: the text is nested too deeply: {shown(text)}") from None
        unknown = set(fields) - set(Genotype._fields)
        if unknown:
            raise ArchitectureError(f"not a DARTS genotype: unknown fields {sorted(unknown)}")
        return self.from_genotype(fields)

    # -- the interface ---------------------------------------------------
    def validate(self, arch: Architecture) -> None:
        self.to_genotype(arch)

    def sample(self, rng: np.random.Generator) -> Architecture:
        """Uniform over NB301 genotypes: each node reads 2 distinct earlier states,
        each edge one of the 7 ops."""
        genotype = {}
        for cell in CELLS:
            pairs = []
            for k in range(2, 2 + STEPS):
                for i in sorted(rng.choice(k, 2, replace=False)):
                    pairs.append((SEARCH_OPS[rng.integers(len(SEARCH_OPS))], int(i)))
            genotype[cell] = pairs
        return self.from_genotype(genotype)

    def mutate(self, arch: Architecture, rng: np.random.Generator) -> Architecture:
        """NASLib's NB301 mutation: in one cell, change the op of one edge, or
        the input it reads (to another state that its node does not read yet)."""
        genotype = self.to_genotype(arch)
        while True:
            cells = {cell: list(getattr(genotype, cell)) for cell in CELLS}
            pairs = cells[CELLS[rng.integers(2)]]
            e = int(rng.integers(2 * STEPS))
            op, i = pairs[e]
            if rng.random() < 0.5:
                pairs[e] = (str(rng.choice([o for o in SEARCH_OPS if o != op])), i)
            else:
                taken = {i, pairs[e ^ 1][1]}
                free = [j for j in range(e // 2 + 2) if j not in taken]
                if not free:
                    continue
                pairs[e] = (op, int(rng.choice(free)))
            child = self.from_genotype(cells)
            if child != arch:
                return child

    def param_space(self) -> dict[str, tuple]:
        """Per cell and node: the pair of inputs ("i,j", i < j), the op on input i
        (op_a) and on input j (op_b). Every combination is a valid genotype."""
        space: dict[str, tuple] = {}
        for cell in CELLS:
            for k in range(2, 2 + STEPS):
                space[f"{cell}_node{k}_inputs"] = tuple(f"{i},{j}" for j in range(k) for i in range(j))
                space[f"{cell}_node{k}_op_a"] = SEARCH_OPS
                space[f"{cell}_node{k}_op_b"] = SEARCH_OPS
        return space

    def to_params(self, arch: Architecture) -> dict[str, Any]:
        genotype = self.canonical_genotype(arch)
        params: dict[str, Any] = {}
        for cell in CELLS:
            pairs = getattr(genotype, cell)
            for k in range(2, 2 + STEPS):
                (op_a, i), (op_b, j) = sorted(pairs[2 * (k - 2): 2 * (k - 1)], key=lambda p: p[1])
                if "none" in (op_a, op_b):
                    raise ArchitectureError(f"{cell} node {k} uses 'none': the parameters cover "
                                            f"the NB301 ops ({', '.join(SEARCH_OPS)})")
                params[f"{cell}_node{k}_inputs"] = f"{i},{j}"
                params[f"{cell}_node{k}_op_a"] = op_a
                params[f"{cell}_node{k}_op_b"] = op_b
        return params

    def from_params(self, params: Mapping[str, Any]) -> Architecture:
        missing = [n for n in PARAM_NAMES if n not in params]
        if missing:
            raise ArchitectureError(f"DARTS parameters lack {', '.join(missing)}")
        if len(params) != len(PARAM_NAMES):   # none missing, as many: none unknown
            self.check_param_names(params, PARAM_NAMES)
        genotype = {}
        for cell in CELLS:
            pairs = []
            for k in range(2, 2 + STEPS):
                text = params[f"{cell}_node{k}_inputs"]
                try:
                    i, j = (int(x) for x in str(text).split(","))
                except ValueError:
                    raise ArchitectureError(f"{cell}_node{k}_inputs must be 'i,j', got {shown(text)}") from None
                pairs += [(params[f"{cell}_node{k}_op_a"], i), (params[f"{cell}_node{k}_op_b"], j)]
            genotype[cell] = pairs
        return self.from_genotype(genotype)

    def to_model(self, arch: Architecture, num_classes: int = 10, C: int = 16, layers: int = 8,
                 auxiliary: bool = False, drop_path_prob: float = 0.0, affine: bool = True, **options):
        """The DARTS CIFAR network (NetworkCIFAR). Defaults are small for tests;
        the DARTS evaluation setting is C=36, layers=20, auxiliary=True,
        drop_path_prob=0.2; the NB301 table's ``params_m`` is C=32, layers=8,
        affine=False (see ``networks/darts.py``)."""
        from .networks.darts import DartsNetwork
        if options:
            raise TypeError(f"unknown DARTS network options: {', '.join(options)}")
        if C < 2 or layers < 3 or num_classes < 1 or not 0 <= drop_path_prob < 1:
            raise ConfigError(f"DARTS network needs C >= 2, layers >= 3 (two reduction cells), num_classes >= 1 "
                              f"and 0 <= drop_path_prob < 1, got C={C}, layers={layers}, num_classes={num_classes}, "
                              f"drop_path_prob={drop_path_prob}")
        return DartsNetwork(self.to_genotype(arch), C=C, layers=layers, num_classes=num_classes,
                            auxiliary=auxiliary, drop_path_prob=drop_path_prob, affine=affine)


def _find(role: dict[int, int], template_node: int) -> int:
    return next(v for v, r in role.items() if r == template_node)


def _topological(arch: Architecture, nodes: set[int]) -> list[int]:
    """``nodes`` in dependency order, smallest index first among ready ones."""
    reach = arch.reachability()
    order, left = [], sorted(nodes)
    while left:
        ready = next(v for v in left if not any(reach[u, v] for u in left if u != v))
        order.append(ready)
        left.remove(ready)
    return order


def _literal(node: ast.AST, source: str) -> Any:
    """A Python literal, or ``range(a, b)`` (DARTS prints concat that way); a
    ValueError naming the first part of ``source`` that is not a literal."""
    is_range = (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range"
                and not node.keywords)
    try:
        if is_range:
            try:
                numbers = range(*(ast.literal_eval(a) for a in node.args))
            except TypeError as exc:   # range('a'), range(1.5), range()
                raise ValueError(f"{shown(ast.get_source_segment(source, node) or 'range')}: {exc}") from None
            if len(numbers) > 100:   # a concat lists a few nodes; never build range(10**12)
                raise ValueError(f"{shown(ast.get_source_segment(source, node) or 'range')} is too long "
                                 "for a cell's concat")
            return list(numbers)
        return ast.literal_eval(node)
    except ValueError as exc:
        if "malformed node" not in str(exc):
            raise
        parts = [n for root in (node.args if is_range else [node]) for n in ast.walk(root)]
        bad = next((n for n in parts if isinstance(n, ast.expr) and not _is_literal(n)), node)
        part = ast.get_source_segment(source, bad) or ast.unparse(bad)
        raise ValueError(f"{shown(part)} is not a literal") from None


def _is_literal(node: ast.expr) -> bool:
    """A node that ast.literal_eval reads (its children aside)."""
    if isinstance(node, ast.BinOp):
        return isinstance(node.op, (ast.Add, ast.Sub))
    if isinstance(node, ast.UnaryOp):
        return isinstance(node.op, (ast.UAdd, ast.USub))
    return isinstance(node, (ast.Constant, ast.Tuple, ast.List, ast.Set, ast.Dict))


