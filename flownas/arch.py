"""``Architecture``: the one currency of flownas, an immutable labelled DAG.

Nodes carry an operation name (``ops[i]``) and, for whole networks, optional
attributes (``attrs[i]``: channels, kernel, stride, ...). ``adjacency[i][j] = 1``
is an edge i -> j. The spaces build architectures in a topological order
(upper-triangular adjacency, input first and output last), but any node order
is accepted, so that a relabeled copy is still the same architecture.

Two architectures are equal, and hash equal, when they are isomorphic as
labelled graphs of the same space: ``key`` is a canonical fingerprint computed
by colour refinement plus individualization (exact, not a heuristic hash).
"""
from __future__ import annotations

import hashlib
import json
import math
from types import MappingProxyType
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .errors import ArchitectureError

FORMAT = "flownas.architecture"
FORMAT_VERSION = 1

_Scalar = (str, int, float, bool, type(None))
# caches that depend only on the edges, shared by ``with_ops`` copies
_STRUCTURAL = ("topo", "depths", "rdepths", "reach", "adjacency")


class Architecture:
    """An immutable labelled DAG; see the module docstring."""

    __slots__ = ("ops", "edges", "space", "attrs", "_preds", "_succs", "_cache")

    def __init__(self, ops: Sequence[str], adjacency: Any, space: str = "",
                 attrs: Sequence[Mapping[str, Any]] | None = None):
        ops = _check_ops(ops)
        n = len(ops)
        try:
            adj = np.asarray(adjacency)
        except Exception as exc:  # ragged lists
            raise ArchitectureError(f"adjacency is not a matrix: {_ragged(adjacency) or exc}") from None
        if adj.shape != (n, n):
            raise ArchitectureError(
                f"adjacency must be {n}x{n} for {n} ops, got shape {adj.shape}")
        if adj.size and not np.isin(adj, (0, 1)).all():
            raise ArchitectureError("adjacency entries must be 0 or 1")
        edges = tuple((int(i), int(j)) for i, j in zip(*np.nonzero(adj)))
        self._init(ops, edges, space, attrs)

    @classmethod
    def from_edges(cls, ops: Sequence[str], edges: Iterable[tuple[int, int]],
                   space: str = "", attrs: Sequence[Mapping[str, Any]] | None = None
                   ) -> "Architecture":
        ops = _check_ops(ops)
        n = len(ops)
        if isinstance(edges, (str, bytes, Mapping)) or not isinstance(edges, Iterable):
            raise ArchitectureError(f"edges must be a list of (i, j) node index pairs, got {_what(edges)}")
        clean = set()
        for e in edges:
            try:
                i, j = e
            except (TypeError, ValueError):
                raise ArchitectureError(f"edge {e!r} is not a pair of node indices") from None
            if type(i) is not int or type(j) is not int:   # the common case is plain ints
                if not (_is_index(i) and _is_index(j)):
                    raise ArchitectureError(f"edge {_show(e)} is not a pair of node indices (whole numbers)")
                i, j = int(i), int(j)
            if not (0 <= i < n and 0 <= j < n):
                raise ArchitectureError(f"edge {i}->{j} names a node outside 0..{n - 1}")
            clean.add((i, j))
        self = cls.__new__(cls)
        self._init(ops, tuple(sorted(clean)), space, attrs)
        return self

    def _init(self, ops, edges, space, attrs) -> None:
        n = len(ops)
        if not isinstance(space, str):
            raise ArchitectureError(f"space must be a name (str), got {space!r}")
        preds: list[list[int]] = [[] for _ in range(n)]
        succs: list[list[int]] = [[] for _ in range(n)]
        for i, j in edges:
            if i == j:
                raise ArchitectureError(f"self-loop on node {i} ({ops[i]})")
            succs[i].append(j)
            preds[j].append(i)
        set_ = object.__setattr__
        set_(self, "ops", ops)
        set_(self, "edges", edges)
        set_(self, "space", space)
        set_(self, "attrs", _freeze_attrs(attrs, n))
        set_(self, "_preds", tuple(tuple(p) for p in preds))
        set_(self, "_succs", tuple(tuple(s) for s in succs))
        set_(self, "_cache", {})
        self.topological_order()  # raises on a cycle

    def __setattr__(self, name, value):
        raise AttributeError("Architecture is immutable")

    # -- structure -------------------------------------------------------
    @property
    def num_nodes(self) -> int:
        return len(self.ops)

    @property
    def num_edges(self) -> int:
        return len(self.edges)

    @property
    def adjacency(self) -> np.ndarray:
        """n x n 0/1 matrix (a read-only numpy array)."""
        a = self._cache.get("adjacency")
        if a is None:
            a = np.zeros((self.num_nodes, self.num_nodes), dtype=np.int8)
            if self.edges:
                a[tuple(np.array(self.edges).T)] = 1
            a.setflags(write=False)
            self._cache["adjacency"] = a
        return a

    def predecessors(self, i: int) -> tuple[int, ...]:
        return self._preds[i]

    def successors(self, i: int) -> tuple[int, ...]:
        return self._succs[i]

    def topological_order(self) -> tuple[int, ...]:
        """Kahn's order, smallest index first among ready nodes."""
        order = self._cache.get("topo")
        if order is None:
            import heapq
            indeg = [len(p) for p in self._preds]
            ready = [i for i, d in enumerate(indeg) if d == 0]
            heapq.heapify(ready)
            out = []
            while ready:
                i = heapq.heappop(ready)
                out.append(i)
                for j in self._succs[i]:
                    indeg[j] -= 1
                    if indeg[j] == 0:
                        heapq.heappush(ready, j)
            if len(out) != self.num_nodes:
                raise ArchitectureError(f"the graph has a cycle: {self._find_cycle()}")
            order = self._cache["topo"] = tuple(out)
        return order

    def _find_cycle(self) -> str:
        color = [0] * self.num_nodes
        stack: list[int] = []

        def dfs(u):
            color[u] = 1
            stack.append(u)
            for v in self._succs[u]:
                if color[v] == 1:
                    return stack[stack.index(v):] + [v]
                if color[v] == 0:
                    c = dfs(v)
                    if c:
                        return c
            stack.pop()
            color[u] = 2
            return None

        for s in range(self.num_nodes):
            if color[s] == 0:
                c = dfs(s)
                if c:
                    return " -> ".join(f"{i}({self.ops[i]})" for i in c)
        return "?"

    def depths(self) -> np.ndarray:
        """Longest-path distance from any source (the topological generation)."""
        d = self._cache.get("depths")
        if d is None:
            d = np.zeros(self.num_nodes, dtype=np.int64)
            for i in self.topological_order():
                for j in self._succs[i]:
                    d[j] = max(d[j], d[i] + 1)
            d.setflags(write=False)
            self._cache["depths"] = d
        return d

    def reverse_depths(self) -> np.ndarray:
        """Longest-path distance to any sink (generations of the backward flow)."""
        d = self._cache.get("rdepths")
        if d is None:
            d = np.zeros(self.num_nodes, dtype=np.int64)
            for i in reversed(self.topological_order()):
                for j in self._succs[i]:
                    d[i] = max(d[i], d[j] + 1)
            d.setflags(write=False)
            self._cache["rdepths"] = d
        return d

    def generations(self) -> list[tuple[int, ...]]:
        """Topological generations: nodes grouped by ``depths()``, in order."""
        d = self.depths()
        return [tuple(np.flatnonzero(d == g).tolist()) for g in range(int(d.max()) + 1)]

    def reachability(self) -> np.ndarray:
        """Bool n x n: ``R[i, j]`` when a directed path leads from i to j (i != j).

        The flow-path mask of FlowerFormer's attention is ``R | R.T | I``.
        """
        r = self._cache.get("reach")
        if r is None:
            n = self.num_nodes
            r = np.zeros((n, n), dtype=bool)
            for i in reversed(self.topological_order()):
                for j in self._succs[i]:
                    r[i, j] = True
                    r[i] |= r[j]
            r.setflags(write=False)
            self._cache["reach"] = r
        return r

    def sources(self) -> tuple[int, ...]:
        return tuple(i for i, p in enumerate(self._preds) if not p)

    def sinks(self) -> tuple[int, ...]:
        return tuple(i for i, s in enumerate(self._succs) if not s)

    # -- identity --------------------------------------------------------
    def canonical_order(self) -> tuple[int, ...]:
        """Node order of the canonical form: a topological order that depends
        only on the labelled graph, not on how its nodes are numbered."""
        order = self._cache.get("canon")
        if order is None:
            labels = [(int(d), op, _attrs_key(a))
                      for d, op, a in zip(self.depths(), self.ops, self.attrs or [None] * self.num_nodes)]
            order = self._cache["canon"] = _canonical_order(labels, self._preds, self._succs)
        return order

    def canonical(self) -> "Architecture":
        """The isomorphic copy in canonical node order (upper-triangular)."""
        return self.relabel(_inverse(self.canonical_order()))

    @property
    def key(self) -> str:
        """Canonical fingerprint: equal exactly for isomorphic graphs of one space."""
        k = self._cache.get("key")
        if k is None:
            order = self.canonical_order()
            pos = _inverse(order)
            enc = {
                "space": self.space,
                "ops": [self.ops[i] for i in order],
                "attrs": [_attrs_key(self.attrs[i]) for i in order] if self.attrs else None,
                "edges": sorted((pos[i], pos[j]) for i, j in self.edges),
            }
            blob = json.dumps(enc, separators=(",", ":"), sort_keys=True).encode()
            k = self._cache["key"] = hashlib.sha256(blob).hexdigest()[:32]
        return k

    def __eq__(self, other) -> bool:
        if not isinstance(other, Architecture):
            return NotImplemented
        if self is other:
            return True
        if (self.space, self.num_nodes, self.num_edges) != (other.space, other.num_nodes, other.num_edges):
            return False
        if self.ops == other.ops and self.edges == other.edges and not self.attrs and not other.attrs:
            return True
        # attributes: by JSON value and type, as the keys see them (cached: a set or dict lookup hashed them)
        return self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)

    def same_numbering(self, other: "Architecture") -> bool:
        """Identical node for node (stricter than ``==``, which is isomorphism)."""
        return (self.space, self.ops, self.edges) == (other.space, other.ops, other.edges) \
            and same_json(self.attrs or (), other.attrs or ())

    def with_ops(self, ops: Sequence[str], attrs: Sequence[Mapping[str, Any]] | None = None
                 ) -> "Architecture":
        """The same graph with other node labels (fast: the structure is reused)."""
        ops = _check_ops(ops)
        if len(ops) != self.num_nodes:
            raise ArchitectureError(f"with_ops needs {self.num_nodes} ops, got {len(ops)}")
        new = Architecture.__new__(Architecture)
        set_ = object.__setattr__
        for name in ("edges", "space", "_preds", "_succs"):
            set_(new, name, getattr(self, name))
        set_(new, "ops", ops)
        set_(new, "attrs", _freeze_attrs(attrs, len(ops)))
        set_(new, "_cache", {k: v for k, v in self._cache.items() if k in _STRUCTURAL})
        return new

    def relabel(self, perm: Sequence[int]) -> "Architecture":
        """The same graph with node ``i`` renumbered ``perm[i]``."""
        n = self.num_nodes
        if sorted(perm) != list(range(n)):
            raise ArchitectureError(f"relabel needs a permutation of 0..{n - 1}, got {list(perm)}")
        ops = [None] * n
        attrs = [None] * n if self.attrs else None
        for i, p in enumerate(perm):
            ops[p] = self.ops[i]
            if attrs is not None:
                attrs[p] = self.attrs[i]
        edges = [(perm[i], perm[j]) for i, j in self.edges]
        return Architecture.from_edges(ops, edges, self.space, attrs)

    def with_space(self, space: str) -> "Architecture":
        return Architecture.from_edges(self.ops, self.edges, space, self.attrs)

    # -- conversions -----------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = {"format": FORMAT, "version": FORMAT_VERSION, "space": self.space,
             "ops": list(self.ops), "edges": [list(e) for e in self.edges]}
        if self.attrs:
            d["attrs"] = [_thaw(a) for a in self.attrs]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Architecture":
        if not isinstance(d, Mapping):
            raise ArchitectureError(f"an architecture record must be a JSON object, got {type(d).__name__}")
        if d.get("format") != FORMAT:
            if "format" not in d:
                raise ArchitectureError(f"not a flownas architecture record: it has no \"format\": \"{FORMAT}\" "
                                        f"(its keys: {keys_text(d)})")
            raise ArchitectureError(f"not a flownas architecture record (format={d.get('format')!r}, "
                                    f"expected {FORMAT!r})")
        version = d.get("version")
        if version != FORMAT_VERSION:
            raise ArchitectureError(
                f"architecture record version {version!r} is not supported (this flownas reads {FORMAT_VERSION})")
        missing = [k for k in ("ops", "edges") if k not in d]
        if missing:
            raise ArchitectureError(f"architecture record lacks {', '.join(missing)}")
        return cls.from_edges(d["ops"], d["edges"], d.get("space", ""), d.get("attrs"))

    @classmethod
    def from_json(cls, text: str) -> "Architecture":
        if not isinstance(text, (str, bytes, bytearray)):
            raise ArchitectureError(f"architecture JSON must be text, got {_what(text)}")
        try:
            d = loads_json(text, "the architecture JSON")
        except json.JSONDecodeError as exc:
            raise ArchitectureError(f"architecture JSON does not parse: {exc}") from None
        try:
            return cls.from_dict(d)
        except RecursionError:   # attributes nested just below the decoder's limit
            raise ArchitectureError("the architecture JSON is nested too deeply") from None

    def to_networkx(self):
        import networkx as nx
        g = nx.DiGraph(space=self.space)
        for i, op in enumerate(self.ops):
            g.add_node(i, op=op, **(_thaw(self.attrs[i]) if self.attrs else {}))
        g.add_edges_from(self.edges)
        return g

    @classmethod
    def from_networkx(cls, g, space: str | None = None) -> "Architecture":
        """Nodes need an ``op`` attribute; other node attributes become ``attrs``.

        Nodes are numbered in a topological order of ``g`` (ties: the order of
        ``g.nodes``), so any hashable node names work.
        """
        import networkx as nx
        if not g.is_directed():
            raise ArchitectureError("architecture graphs must be directed (networkx.DiGraph)")
        try:
            order = list(nx.lexicographical_topological_sort(g, key=list(g.nodes).index))
        except nx.NetworkXUnfeasible:
            cycle = nx.find_cycle(g)
            raise ArchitectureError(
                "the graph has a cycle: " + " -> ".join(str(u) for u, _ in cycle) + f" -> {cycle[0][0]}") from None
        index = {v: i for i, v in enumerate(order)}
        ops, attrs = [], []
        for v in order:
            data = dict(g.nodes[v])
            if "op" not in data:
                raise ArchitectureError(f"node {v!r} has no 'op' attribute")
            ops.append(data.pop("op"))
            attrs.append(data)
        edges = [(index[u], index[v]) for u, v in g.edges]
        if space is None:
            space = g.graph.get("space", "")
        return cls.from_edges(ops, edges, space, attrs if any(attrs) else None)

    def __repr__(self) -> str:
        s = f"Architecture(space={self.space!r}, ops={list(self.ops)}, edges={[list(e) for e in self.edges]}"
        if self.attrs:
            s += f", attrs={[_thaw(a) for a in self.attrs]}"
        return s + ")"

    def __reduce__(self):  # pickling for process pools and Ray
        return (Architecture.from_dict, (self.to_dict(),))


# -- helpers --------------------------------------------------------------
def loads_json(text, what: str = "the architecture JSON"):
    """``json.loads``, with JSON nested deeper than the decoder's recursion can
    go refused as an ``ArchitectureError`` naming ``what`` (the decoder raises
    RecursionError); ``json.JSONDecodeError`` is left to the caller."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ArchitectureError(f"{what} is nested too deeply") from None


def keys_text(record: Mapping) -> str:
    """The first keys of a JSON object, for a message about what it is not."""
    keys = ", ".join(repr(k) for k in list(record)[:6]) + (", ..." if len(record) > 6 else "")
    return keys or "none"


def _ragged(adjacency) -> str | None:
    """What is wrong with a list of rows numpy cannot make a matrix of, when it is rows of unequal lengths."""
    if isinstance(adjacency, (str, bytes, Mapping)) or not isinstance(adjacency, Sequence):
        return None
    lengths = [len(r) if isinstance(r, Sequence) and not isinstance(r, (str, bytes)) else None for r in adjacency]
    if None in lengths or len(set(lengths)) < 2:
        return None
    shown = ", ".join(map(str, lengths[:10])) + (", ..." if len(lengths) > 10 else "")
    return f"the adjacency matrix rows have unequal lengths ({shown})"


def _what(x) -> str:
    return "None" if x is None else f"{type(x).__name__} {x!r}"


def _show(e) -> str:
    return repr(tuple(e)) if isinstance(e, list) else repr(e)


def _is_index(x) -> bool:
    """A whole number usable as a node index: int or numpy integer, not a bool
    (no float, however whole: 1.7 must not become node 1)."""
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _check_ops(ops) -> tuple:
    """``ops`` as a tuple of non-empty strings, at least one."""
    if isinstance(ops, (str, bytes, Mapping)) or not isinstance(ops, Iterable):
        raise ArchitectureError(f"ops must be a list of op names (strings), got {_what(ops)}")
    ops = tuple(ops)
    if not ops:
        raise ArchitectureError("an architecture needs at least one node")
    for i, op in enumerate(ops):
        if not isinstance(op, str) or not op:
            raise ArchitectureError(f"op of node {i} must be a non-empty string, got {op!r}")
    return ops


def _freeze_value(v, where):
    if type(v) in (str, int, bool) or v is None:   # the common case, first
        return v
    if isinstance(v, float) and not math.isfinite(v):
        raise ArchitectureError(f"{where} must be finite, got {v!r}")
    if isinstance(v, _Scalar):
        return v
    if isinstance(v, np.generic):
        return _freeze_value(v.item(), where)
    if isinstance(v, (list, tuple)):
        return tuple(_freeze_value(x, where) for x in v)
    raise ArchitectureError(f"{where} must be a JSON scalar or list, got {type(v).__name__}")


def _freeze_attrs(attrs, n):
    if attrs is None:
        return None
    if isinstance(attrs, (str, bytes, Mapping)) or not isinstance(attrs, Iterable):
        raise ArchitectureError(f"attrs must be a list of one mapping per node, got {_what(attrs)}")
    attrs = list(attrs)
    if len(attrs) != n:
        raise ArchitectureError(f"attrs must have one mapping per node ({n}), got {len(attrs)}")
    out = []
    for i, a in enumerate(attrs):
        a = a or {}
        if not isinstance(a, Mapping):
            raise ArchitectureError(f"attrs of node {i} must be a mapping, got {type(a).__name__}")
        out.append(MappingProxyType({str(k): _freeze_value(v, f"attribute {k!r} of node {i}")
                                     for k, v in sorted(a.items())}))
    if not any(out):
        return None
    return tuple(out)


def _thaw(a):
    return {k: list(v) if isinstance(v, tuple) else v for k, v in a.items()}


def _attrs_key(a) -> str:
    return json.dumps(_thaw(a), sort_keys=True, separators=(",", ":")) if a else ""


def same_json(a, b) -> bool:
    """Equal as JSON, hence an architecture's key, sees them: by value and JSON
    type (Python has 204 == 204.0 and 1 == True; their JSON differs); lists and
    tuples are one JSON type, as are all mappings."""
    if a is b:
        return True
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(map(same_json, a, b))
    if isinstance(a, Mapping):
        return isinstance(b, Mapping) and a.keys() == b.keys() and all(same_json(v, b[k]) for k, v in a.items())
    if type(a) is not type(b):
        return False
    if type(a) is float and a == 0.0 == b:
        return math.copysign(1.0, a) == math.copysign(1.0, b)   # 0.0 and -0.0: two JSON texts
    return a == b


def _inverse(order: Sequence[int]) -> list[int]:
    pos = [0] * len(order)
    for p, i in enumerate(order):
        pos[i] = p
    return pos


def _refine(colors: list[int], preds, succs) -> list[int]:
    """Colour refinement (1-WL on a directed graph) until stable.

    Colours are ranks of sortable signatures, so they depend only on the
    labelled graph, and a refined colour never reorders coarser ones.
    """
    n = len(colors)
    num = len(set(colors))
    while True:
        sig = [(colors[v], tuple(sorted(colors[p] for p in preds[v])),
                tuple(sorted(colors[s] for s in succs[v]))) for v in range(n)]
        rank = {s: r for r, s in enumerate(sorted(set(sig)))}
        colors = [rank[s] for s in sig]
        if len(rank) == num:
            return colors
        num = len(rank)


def _canonical_order(labels, preds, succs) -> tuple[int, ...]:
    """Canonical labelling by refinement + individualization (nauty's idea,
    without its automorphism pruning beyond twins). Labels sort by depth first,
    so the canonical order is topological."""
    n = len(labels)
    rank = {l: r for r, l in enumerate(sorted(set(labels)))}
    start = _refine([rank[l] for l in labels], preds, succs)
    pred_sets = [frozenset(p) for p in preds]
    succ_sets = [frozenset(s) for s in succs]
    best: list = [None, None]  # (encoding, order)

    def leaf(colors):
        order = sorted(range(n), key=colors.__getitem__)
        pos = _inverse(order)
        enc = (tuple(rank[labels[i]] for i in order),
               tuple(sorted((pos[i], pos[j]) for i in range(n) for j in succs[i])))
        if best[0] is None or enc < best[0]:
            best[0], best[1] = enc, tuple(order)

    def search(colors):
        counts: dict[int, list[int]] = {}
        for v, c in enumerate(colors):
            counts.setdefault(c, []).append(v)
        cell = next((counts[c] for c in sorted(counts) if len(counts[c]) > 1), None)
        if cell is None:
            leaf(colors)
            return
        tried: list[int] = []
        for v in cell:
            # twins (same preds, same succs) are swapped by an automorphism:
            # individualizing either gives the same canonical form
            if any(pred_sets[v] == pred_sets[u] and succ_sets[v] == succ_sets[u] for u in tried):
                continue
            tried.append(v)
            # split v off in front of its cell, keeping all other colours in order
            split = [2 * c + (0 if u == v else 1) if c == colors[v] else 2 * c for u, c in enumerate(colors)]
            search(_refine(split, preds, succs))

    search(start)
    return best[1]
