"""NAS-Bench-101: cells of at most 7 vertices and 9 edges, every vertex on an
input -> output path, interior vertices labelled with one of 3 ops; 423,624
distinct cells up to isomorphism.

Vertices are nodes (``input``, the op names, ``output``) and the cell's edges
are the DAG's edges, exactly as in NB101's ``ModelSpec``. ``normalize`` prunes
vertices that lie on no input -> output path, as ``ModelSpec`` does.

Text form (``to_string``): NB101's spec ``{"matrix": ..., "ops": ...}`` in the
cell's *NB101 order*, the vertex numbering that NB101's graph generator met
first (smallest edge bitmask, then smallest labelling). That order is the same
for every numbering of a cell, and the network is built in it so that channel
splits (which depend on vertex order) match the networks NB101 trained.

``fingerprint`` is NB101's module hash (``graph_util.hash_module``), the key of
the NB101 dataset: an md5 colour refinement over (out-degree, in-degree, label).
"""
from __future__ import annotations

import functools
import hashlib
import itertools
import json
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from ..arch import Architecture, loads_json
from ..errors import ArchitectureError, ConfigError, NotInSpaceError
from ..registry import SPACES
from .base import SearchSpace, shown

INPUT, OUTPUT = "input", "output"
# in NB101's config order: the fingerprint labels vertices by this index
INTERIOR_OPS = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")
MAX_VERTICES = 7
MAX_EDGES = 9
NUM_CELLS = 423_624          # the official count, reproduced by ``enumerate``

# the padded 7-vertex spec behind ``to_params``: upper-triangular edge bits
# and the ops of vertices 1..5
SLOT_EDGES = tuple((i, j) for i in range(MAX_VERTICES) for j in range(i + 1, MAX_VERTICES))
EDGE_NAMES = tuple(f"edge_{i}_{j}" for i, j in SLOT_EDGES)
OP_NAMES = tuple(f"op_{v}" for v in range(1, MAX_VERTICES - 1))


def fingerprint(arch: Architecture) -> str:
    """NB101's module hash of a (pruned) cell; independent of the node numbering."""
    labels = [-1 if op == INPUT else -2 if op == OUTPUT else INTERIOR_OPS.index(op) for op in arch.ops]
    n = arch.num_nodes
    preds = [arch.predecessors(v) for v in range(n)]
    succs = [arch.successors(v) for v in range(n)]
    hashes = [_md5(str((len(succs[v]), len(preds[v]), labels[v]))) for v in range(n)]
    for _ in range(n):
        hashes = [_md5("".join(sorted(hashes[w] for w in preds[v])) + "|"
                       + "".join(sorted(hashes[w] for w in succs[v])) + "|" + hashes[v])
                  for v in range(n)]
    return _md5(str(sorted(hashes)))


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def _edge_bit(i: int, j: int) -> int:
    """Bit of edge i -> j (i < j) in NB101's generator (column-major upper triangle)."""
    return 1 << (i + j * (j - 1) // 2)


def nb101_order(arch: Architecture) -> tuple[int, ...]:
    """Node order of the cell's NB101 representative: input first, output last,
    the numbering with the smallest edge bitmask, then the smallest labelling
    (the one NB101's generator met first). The same for any numbering of the cell."""
    inp, out = arch.ops.index(INPUT), arch.ops.index(OUTPUT)
    interior = [v for v in range(arch.num_nodes) if v not in (inp, out)]
    best, best_order = None, None
    for perm in itertools.permutations(interior):
        order = (inp,) + perm + (out,)
        pos = {v: p for p, v in enumerate(order)}
        if any(pos[i] >= pos[j] for i, j in arch.edges):
            continue
        bits = sum(_edge_bit(pos[i], pos[j]) for i, j in arch.edges)
        key = (bits, tuple(INTERIOR_OPS.index(arch.ops[v]) for v in perm))
        if best is None or key < best:
            best, best_order = key, order
    return best_order


def to_spec(arch: Architecture) -> tuple[list[list[int]], list[str]]:
    """NB101's ``(matrix, ops)`` of a cell, in its NB101 order."""
    order = nb101_order(arch)
    pos = {v: p for p, v in enumerate(order)}
    matrix = [[0] * len(order) for _ in order]
    for i, j in arch.edges:
        matrix[pos[i]][pos[j]] = 1
    return matrix, [arch.ops[v] for v in order]


def vertex_channels(c_in: int, c_out: int, matrix: Sequence[Sequence[int]]) -> list[int]:
    """Output channels of every vertex (NB101's ``compute_vertex_channels``):
    the vertices feeding the output split its channels (the first ones get the
    remainder), every other interior vertex takes the largest of its successors."""
    n = len(matrix)
    channels = [0] * n
    channels[0], channels[-1] = c_in, c_out
    if n == 2:
        return channels
    fan_in = sum(matrix[v][n - 1] for v in range(1, n - 1))
    share, extra = divmod(c_out, fan_in)
    for v in range(1, n - 1):
        if matrix[v][n - 1]:
            channels[v] = share + (1 if extra > 0 else 0)
            extra -= 1
    for v in range(n - 3, 0, -1):
        if not matrix[v][n - 1]:
            for w in range(v + 1, n - 1):
                if matrix[v][w]:
                    channels[v] = max(channels[v], channels[w])
    return channels


def split_depends_on_order(arch: Architecture, matrix: Sequence[Sequence[int]]) -> bool:
    """Would building the network in ``matrix``'s vertex order (``arch``'s own
    numbering, upper-triangular) give some vertex other channels than NB101 order?"""
    order = nb101_order(arch)
    ours = to_spec(arch)[0]
    for c in (128, 256, 512):
        in_order, in_matrix = vertex_channels(c, c, ours), vertex_channels(c, c, matrix)
        if any(in_order[p] != in_matrix[v] for p, v in enumerate(order)):
            return True
    return False


@SPACES.register("nb101")
class NB101Space(SearchSpace):
    """NAS-Bench-101 cells: <= 7 vertices, <= 9 edges, 3 ops, pruned; NB101's fingerprint."""

    name = "nb101"
    ops = (INPUT,) + INTERIOR_OPS + (OUTPUT,)

    # -- conversions -----------------------------------------------------
    def from_spec(self, matrix: Any, ops: Sequence[str]) -> Architecture:
        """A cell from NB101's ``(matrix, ops)`` (any DAG numbering), pruned."""
        return self.normalize(Architecture(ops, matrix, space=self.name))

    def fingerprint(self, arch: Architecture) -> str:
        """NB101's module hash of a member (after pruning), the dataset's key."""
        arch = self.normalize(arch)
        self.validate(arch)
        return fingerprint(arch)

    def to_string(self, arch: Architecture) -> str:
        self.validate(arch)
        matrix, ops = to_spec(arch)
        return json.dumps({"matrix": matrix, "ops": ops}, separators=(",", ":"))

    def from_string(self, text: str) -> Architecture:
        """NB101's spec as JSON (``{"matrix": ..., "ops": ...}``) or a flownas record."""
        try:
            d = loads_json(text, "the NB101 cell JSON")
        except json.JSONDecodeError as exc:
            raise ArchitectureError(f"an NB101 cell is JSON {{\"matrix\": ..., \"ops\": ...}}, got {shown(text, 60)} "
                                    f"(not JSON: {exc})") from None
        if isinstance(d, Mapping) and "format" in d:
            arch = Architecture.from_dict(d)
            return self.normalize(arch if arch.space else arch.with_space(self.name))
        if not isinstance(d, Mapping) or not {"matrix", "ops"} <= set(d):
            raise ArchitectureError(f"an NB101 cell is JSON {{\"matrix\": ..., \"ops\": ...}}, got {shown(text)}")
        return self.from_spec(d["matrix"], d["ops"])

    def parse(self, text: str) -> Architecture:
        # both JSON forms start with "{": from_string tells them apart
        arch = self.from_string(text.strip())
        self.validate(arch)
        return arch

    # -- rules -------------------------------------------------------------
    def _io(self, arch: Architecture) -> tuple[int, int] | None:
        """(input, output) node of an architecture of this space, when unique."""
        if (isinstance(arch, Architecture) and arch.space == self.name
                and arch.ops.count(INPUT) == 1 and arch.ops.count(OUTPUT) == 1):
            return arch.ops.index(INPUT), arch.ops.index(OUTPUT)
        return None

    def _on_path(self, arch: Architecture, inp: int, out: int) -> list[int]:
        """Nodes on some input -> output path (sorted); raises if there is none."""
        reach = arch.reachability()
        if not reach[inp, out]:
            raise self._error(f"the input (node {inp}) and the output (node {out}) are not connected")
        return [v for v in range(arch.num_nodes)
                if v in (inp, out) or (reach[inp, v] and reach[v, out])]

    def normalize(self, arch: Architecture) -> Architecture:
        """Prune vertices that lie on no input -> output path (NB101's ModelSpec)."""
        io = self._io(arch)
        if io is None:
            return arch   # validate names what is wrong
        keep = self._on_path(arch, *io)
        if len(keep) == arch.num_nodes:
            return arch
        pos = {v: p for p, v in enumerate(keep)}
        edges = [(pos[i], pos[j]) for i, j in arch.edges if i in pos and j in pos]
        return Architecture.from_edges([arch.ops[v] for v in keep], edges, arch.space)

    def validate(self, arch: Architecture) -> None:
        io = self._io(arch)
        if io is not None:
            keep = set(self._on_path(arch, *io))
            dead = [v for v in range(arch.num_nodes) if v not in keep]
            if dead:
                shown = ", ".join(f"{v} ({arch.ops[v]})" for v in dead)
                raise self._error(f"vertices {shown} lie on no input -> output path; normalize() prunes them")
        self.check_common(arch)
        if arch.num_nodes > MAX_VERTICES:
            raise self._error(f"{arch.num_nodes} vertices, NB101 allows at most {MAX_VERTICES}")
        if arch.num_edges > MAX_EDGES:
            raise self._error(f"{arch.num_edges} edges, NB101 allows at most {MAX_EDGES}")

    # -- the padded 7-vertex spec (parameters, sampling, mutation) ----------
    def _slots(self, arch: Architecture) -> tuple[np.ndarray, list[str]]:
        """7x7 upper-triangular matrix and 7 ops: the cell in NB101 order, its
        interior on vertices 1.., unused vertices (isolated, pruned) before the output."""
        matrix, ops = to_spec(arch)
        n = len(ops)
        slot = list(range(n - 1)) + [MAX_VERTICES - 1]
        m = np.zeros((MAX_VERTICES, MAX_VERTICES), dtype=np.int8)
        for i in range(n):
            for j in range(n):
                if matrix[i][j]:
                    m[slot[i], slot[j]] = 1
        full_ops = [INPUT] + [INTERIOR_OPS[0]] * (MAX_VERTICES - 2) + [OUTPUT]
        for i in range(1, n - 1):
            full_ops[i] = ops[i]
        return m, full_ops

    def _from_slots(self, matrix: np.ndarray, ops: Sequence[str]) -> Architecture:
        arch = self.from_spec(matrix, ops)
        self.validate(arch)
        return arch

    # -- the interface ---------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Architecture:
        """Uniform over the 423,624 cells (the first call builds the
        enumeration's structure classes, ~2 s, cached per process)."""
        classes, ends = _class_ends(self.name)
        i = int(rng.integers(ends[-1]))
        c = int(np.searchsorted(ends, i, side="right"))
        cell, labellings = classes[c]
        labels = labellings[i - (ends[c - 1] if c else 0)]
        return cell.with_ops((INPUT,) + tuple(INTERIOR_OPS[k] for k in labels) + (OUTPUT,))

    def mutate(self, arch: Architecture, rng: np.random.Generator) -> Architecture:
        """NB101's example mutation on the padded spec: flip each edge bit with
        probability 1/7 and change each op with probability 1/5, until the
        pruned result is a member that differs from ``arch``."""
        self.validate(arch)
        matrix, ops = self._slots(arch)
        upper = np.triu_indices(MAX_VERTICES, 1)
        while True:
            m = matrix.copy()
            m[upper] ^= (rng.random(len(upper[0])) < 1 / MAX_VERTICES).astype(np.int8)
            new_ops = list(ops)
            for v in range(1, MAX_VERTICES - 1):
                if rng.random() < 1 / (MAX_VERTICES - 2):
                    new_ops[v] = str(rng.choice([o for o in INTERIOR_OPS if o != ops[v]]))
            try:
                child = self._from_slots(m, new_ops)
            except NotInSpaceError:
                continue
            if child != arch:
                return child

    def enumerate(self) -> Iterator[Architecture]:
        """Every cell once (423,624), each in a topological numbering."""
        yield from enumerate_cells(self.name)

    def size(self) -> int:
        return NUM_CELLS

    def param_space(self) -> dict[str, tuple]:
        return {**{name: (0, 1) for name in EDGE_NAMES}, **{name: INTERIOR_OPS for name in OP_NAMES}}

    def to_params(self, arch: Architecture) -> dict[str, Any]:
        self.validate(arch)
        matrix, ops = self._slots(arch)
        params: dict[str, Any] = {name: int(matrix[i, j]) for name, (i, j) in zip(EDGE_NAMES, SLOT_EDGES)}
        params.update(zip(OP_NAMES, ops[1:-1]))
        return params

    def from_params(self, params: Mapping[str, Any]) -> Architecture:
        """The pruned cell of the padded spec; raises ``NotInSpaceError`` for
        specs that are not members (disconnected, more than 9 edges)."""
        missing = [n for n in EDGE_NAMES + OP_NAMES if n not in params]
        if missing:
            raise ArchitectureError(f"NB101 parameters lack {', '.join(missing)}")
        if len(params) != len(EDGE_NAMES) + len(OP_NAMES):   # none missing, as many: none unknown
            self.check_param_names(params, EDGE_NAMES + OP_NAMES)
        m = np.zeros((MAX_VERTICES, MAX_VERTICES), dtype=np.int8)
        for name, (i, j) in zip(EDGE_NAMES, SLOT_EDGES):
            if params[name] not in (0, 1):
                raise ArchitectureError(f"NB101 parameter {name} must be 0 or 1, got {params[name]!r}")
            m[i, j] = params[name]
        return self._from_slots(m, [INPUT] + [params[n] for n in OP_NAMES] + [OUTPUT])

    def to_model(self, arch: Architecture, num_classes: int = 10, stem_channels: int = 128,
                 num_stacks: int = 3, modules_per_stack: int = 3, **options):
        """The NB101 CIFAR network (defaults: the setting NB101 trained)."""
        from .networks.nb101 import NB101Network
        if options:
            raise TypeError(f"unknown NB101 network options: {', '.join(options)}")
        # up to 5 vertices split the first stack's channels
        if stem_channels < MAX_VERTICES - 2 or min(num_classes, num_stacks, modules_per_stack) < 1:
            raise ConfigError(f"NB101 network needs stem_channels >= {MAX_VERTICES - 2} and num_classes, num_stacks, "
                              f"modules_per_stack >= 1, got {stem_channels}, {num_classes}, {num_stacks}, "
                              f"{modules_per_stack}")
        self.validate(arch)
        matrix, ops = to_spec(arch)
        return NB101Network(matrix, ops, num_classes=num_classes, stem_channels=stem_channels,
                            num_stacks=num_stacks, modules_per_stack=modules_per_stack)


# -- enumeration ----------------------------------------------------------
def _full_dags(v: int, max_edges: int) -> np.ndarray:
    """Edge bitmasks (NB101's bit order) of upper-triangular DAGs on v vertices
    in which every vertex lies on a 0 -> v-1 path (each non-output vertex has
    an out-edge, each non-input vertex an in-edge), with at most max_edges edges."""
    masks = np.arange(1 << (v * (v - 1) // 2), dtype=np.int64)
    bit = lambda i, j: (masks >> (i + j * (j - 1) // 2)) & 1   # noqa: E731
    ok = np.ones(len(masks), dtype=bool)
    for i in range(v - 1):
        ok &= np.logical_or.reduce([bit(i, j) == 1 for j in range(i + 1, v)])
    for j in range(1, v):
        ok &= np.logical_or.reduce([bit(i, j) == 1 for i in range(j)])
    count = sum(bit(i, j) for j in range(v) for i in range(j))
    return masks[ok & (count <= max_edges)]


@functools.lru_cache(maxsize=4)
def _classes(space: str, max_vertices: int, max_edges: int) -> tuple[tuple[Architecture, np.ndarray], ...]:
    """Each distinct unlabelled structure once, with the labellings of its
    interior that are smallest in their orbit under the structure's
    automorphisms: one labelling per isomorphism class of labelled cells."""
    out = []
    for v in range(2, max_vertices + 1):
        pairs = [(i, j) for j in range(v) for i in range(j)]    # bit k is pairs[k]
        seen: set[str] = set()
        k = v - 2
        labellings = list(itertools.product(range(len(INTERIOR_OPS)), repeat=k))
        labellings = np.array(labellings, dtype=np.int64).reshape(len(labellings), k)
        weights = len(INTERIOR_OPS) ** np.arange(k - 1, -1, -1, dtype=np.int64)
        codes = labellings @ weights
        for mask in _full_dags(v, max_edges).tolist():
            edges = [pairs[b] for b in range(len(pairs)) if mask >> b & 1]
            cell = Architecture.from_edges((INPUT,) + (INTERIOR_OPS[0],) * k + (OUTPUT,), edges, space)
            if cell.key in seen:
                continue
            seen.add(cell.key)
            edge_set = set(edges)
            smallest = codes.copy()
            for perm in itertools.permutations(range(1, v - 1)):
                full = (0,) + perm + (v - 1,)
                if perm != tuple(range(1, v - 1)) and all((full[i], full[j]) in edge_set for i, j in edges):
                    moved = np.empty_like(labellings)
                    moved[:, [p - 1 for p in perm]] = labellings   # label of vertex i moves to perm[i]
                    np.minimum(smallest, moved @ weights, out=smallest)
            cell.topological_order(), cell.reachability()        # computed once, shared by with_ops
            out.append((cell, labellings[smallest == codes]))
    return tuple(out)


@functools.lru_cache(maxsize=4)
def _class_ends(space: str) -> tuple[tuple[tuple[Architecture, np.ndarray], ...], np.ndarray]:
    classes = _classes(space, MAX_VERTICES, MAX_EDGES)
    return classes, np.cumsum([len(labellings) for _, labellings in classes])


def enumerate_cells(space: str = "nb101", max_vertices: int = MAX_VERTICES,
                    max_edges: int = MAX_EDGES) -> Iterator[Architecture]:
    """Every NB101-style cell up to isomorphism (423,624 with NB101's limits)."""
    for cell, labellings in _classes(space, max_vertices, max_edges):
        for labels in labellings.tolist():
            yield cell.with_ops((INPUT,) + tuple(INTERIOR_OPS[i] for i in labels) + (OUTPUT,))
