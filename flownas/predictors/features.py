"""Architectures -> padded dense arrays, the input of every graph predictor.

``GraphFeaturizer`` turns a list of architectures of one space into numpy
arrays of one shape (``GraphArrays``): op indices by the space's ``ops``
vocabulary, adjacency, node mask, forward and backward topological generation
of every node, reachability and optional numeric node attributes. It works
per *structure* (same node count and edges, e.g. all 15,625 NB201 cells share
one), so a whole table is encoded with a few numpy operations per structure;
structures are cached across calls.

``prune_ops`` (e.g. ``("none",)``) removes nodes whose op carries no signal
(NB201's zero op) and then every node left off an input-to-output path, as the
cell itself computes. ``contract_ops`` (e.g. ``("skip_connect",)``) removes
nodes whose op is the identity and joins their predecessors to their
successors: the same function, one node fewer. Removed nodes become padding;
generations and reachability are those of the reduced graph, so networks that
compute the same function (NATS-Bench's "unique string" classes) get (nearly)
the same encoding. Without either option the graph is encoded as given.

Plain numpy: importing this module does not import torch.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from ..arch import Architecture
from ..errors import ArchitectureError


@dataclass
class GraphArrays:
    """A padded batch: ``B`` graphs of at most ``n`` nodes (numpy)."""
    ops: np.ndarray          # (B, n) int64; padding = len(vocabulary)
    adj: np.ndarray          # (B, n, n) bool; adj[b, i, j]: edge i -> j
    mask: np.ndarray         # (B, n) bool; real (kept) nodes
    depth: np.ndarray        # (B, n) int64; forward generation (longest path from a source), -1 on padding
    rdepth: np.ndarray       # (B, n) int64; backward generation (longest path to a sink), -1 on padding
    reach: np.ndarray        # (B, n, n) bool; a directed path i -> j (i != j)
    attrs: np.ndarray | None = None  # (B, n, A) float32, standardized numeric node attributes

    def __len__(self) -> int:
        return len(self.ops)

    def __getitem__(self, idx) -> "GraphArrays":
        return GraphArrays(self.ops[idx], self.adj[idx], self.mask[idx], self.depth[idx], self.rdepth[idx],
                           self.reach[idx], None if self.attrs is None else self.attrs[idx])

    def unique(self) -> tuple["GraphArrays", np.ndarray]:
        """The distinct encodings and, for each graph, the index of its own
        (``unique()[0][inverse]`` is ``self``): a network computes each input
        once. Graphs that reduce to the same graph with the same numbering
        (e.g. NB201 cells that differ only in dead or skipped edges) are one."""
        B = len(self)
        parts = [self.ops.astype(np.int32).reshape(B, -1), np.packbits(self.adj.reshape(B, -1), axis=1)]
        if self.attrs is not None:
            parts.append(self.attrs.reshape(B, -1))
        rows = np.concatenate([np.ascontiguousarray(p).view(np.uint8).reshape(B, -1) for p in parts], axis=1)
        keys = np.ascontiguousarray(rows).view(np.dtype((np.void, rows.shape[1]))).ravel()
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        return self[first], inverse.reshape(-1)


@dataclass
class _Structure:
    n: int
    adj: np.ndarray
    topo: tuple[int, ...]
    preds: tuple[tuple[int, ...], ...]
    succs: tuple[tuple[int, ...], ...]
    depth: np.ndarray
    rdepth: np.ndarray
    reach: np.ndarray


@functools.lru_cache(maxsize=65536)
def _structure(n: int, edges: tuple[tuple[int, int], ...]) -> _Structure:
    arch = Architecture.from_edges(("x",) * n, edges)
    return _Structure(n, arch.adjacency.astype(bool), arch.topological_order(),
                      tuple(arch.predecessors(i) for i in range(n)),
                      tuple(arch.successors(i) for i in range(n)),
                      arch.depths(), arch.reverse_depths(), arch.reachability())


@dataclass
class GraphFeaturizer:
    """Encodes architectures by a fixed op vocabulary (see the module doc).

    ``attr_keys``/``attr_mean``/``attr_std``: numeric node attributes to use
    and how to standardize them (``fit_attrs`` learns them from training
    architectures). ``max_nodes``: pad every batch to this many nodes (models
    with a fixed input size need it); ``None`` pads to the largest graph.
    """
    ops: tuple[str, ...]
    prune_ops: tuple[str, ...] = ()
    contract_ops: tuple[str, ...] = ()
    attr_keys: tuple[str, ...] = ()
    attr_mean: tuple[float, ...] = ()
    attr_std: tuple[float, ...] = ()
    max_nodes: int | None = None
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        self.ops = tuple(self.ops)
        self.prune_ops = tuple(self.prune_ops)
        self.contract_ops = tuple(self.contract_ops)
        self.attr_keys = tuple(self.attr_keys)
        self.attr_mean = tuple(float(v) for v in self.attr_mean)
        self.attr_std = tuple(float(v) for v in self.attr_std)
        if len(set(self.ops)) != len(self.ops):
            raise ValueError(f"the op vocabulary has duplicates: {self.ops}")
        self._index = {op: i for i, op in enumerate(self.ops)}

    @property
    def num_ops(self) -> int:
        return len(self.ops)

    @property
    def num_attrs(self) -> int:
        return len(self.attr_keys)

    # -- construction ----------------------------------------------------
    @classmethod
    def for_archs(cls, archs: Sequence[Architecture], *, prune_ops: Sequence[str] = (),
                  contract_ops: Sequence[str] = (), use_attrs: bool = True,
                  fixed_size: bool = False) -> "GraphFeaturizer":
        """A featurizer for the space of ``archs``: the space's registered
        vocabulary (or, for an unregistered space, the ops seen), numeric
        attributes seen in ``archs`` and, with ``fixed_size``, their largest
        node count."""
        for name, ops in (("prune_ops", prune_ops), ("contract_ops", contract_ops)):
            if isinstance(ops, str):   # 'auto' is resolved by the predictor (resolve_ops), not here
                raise TypeError(f"{name} must be a sequence of op names, got the string {ops!r}")
        vocab = space_vocabulary(archs[0].space) or tuple(sorted({op for a in archs for op in a.ops}))
        feat = cls(vocab, prune_ops=tuple(p for p in prune_ops if p in vocab),
                   contract_ops=tuple(p for p in contract_ops if p in vocab),
                   max_nodes=max(a.num_nodes for a in archs) if fixed_size else None)
        return feat.fit_attrs(archs) if use_attrs else feat

    def fit_attrs(self, archs: Sequence[Architecture]) -> "GraphFeaturizer":
        """Numeric attributes present in ``archs`` and their mean/std."""
        values: dict[str, list[float]] = {}
        for a in archs:
            for node in a.attrs or ():
                for k, v in node.items():
                    if isinstance(v, (bool, int, float)):
                        values.setdefault(k, []).append(float(v))
        keys = tuple(sorted(values))
        mean = tuple(float(np.mean(values[k])) for k in keys)
        std = tuple(float(np.std(values[k])) or 1.0 for k in keys)
        return GraphFeaturizer(self.ops, self.prune_ops, self.contract_ops, keys, mean, std, self.max_nodes)

    def config(self) -> dict[str, Any]:
        """JSON-able; ``GraphFeaturizer(**config)`` rebuilds it."""
        return {"ops": list(self.ops), "prune_ops": list(self.prune_ops), "contract_ops": list(self.contract_ops),
                "attr_keys": list(self.attr_keys),
                "attr_mean": list(self.attr_mean), "attr_std": list(self.attr_std), "max_nodes": self.max_nodes}

    # -- encoding ----------------------------------------------------------
    def __call__(self, archs: Sequence[Architecture]) -> GraphArrays:
        archs = list(archs)
        if not archs:
            raise ValueError("no architectures to encode (an empty list)")
        n_max = max(a.num_nodes for a in archs)
        if self.max_nodes is not None:
            if n_max > self.max_nodes:
                big = next(a for a in archs if a.num_nodes > self.max_nodes)
                raise ArchitectureError(f"this predictor takes graphs of at most {self.max_nodes} nodes, "
                                        f"got one of {big.num_nodes}: {big!r}")
            n_max = self.max_nodes
        B, pad = len(archs), self.num_ops
        out = GraphArrays(
            ops=np.full((B, n_max), pad, dtype=np.int64),
            adj=np.zeros((B, n_max, n_max), dtype=bool),
            mask=np.zeros((B, n_max), dtype=bool),
            depth=np.full((B, n_max), -1, dtype=np.int64),
            rdepth=np.full((B, n_max), -1, dtype=np.int64),
            reach=np.zeros((B, n_max, n_max), dtype=bool),
            attrs=np.zeros((B, n_max, self.num_attrs), dtype=np.float32) if self.num_attrs else None,
        )
        groups: dict[tuple, list[int]] = {}
        for i, a in enumerate(archs):
            groups.setdefault((a.num_nodes, a.edges), []).append(i)
        pruned = np.array([self._index[p] for p in self.prune_ops], dtype=np.int64)
        contracted = np.array([self._index[p] for p in self.contract_ops], dtype=np.int64)
        for (n, edges), idx in groups.items():
            st = _structure(n, edges)
            ops = self._op_indices([archs[i] for i in idx])
            idx = np.asarray(idx)
            out.ops[idx, :n] = ops
            zero, ident = np.isin(ops, pruned), np.isin(ops, contracted)
            if zero.any() or ident.any():
                keep, adj, depth, rdepth, reach = _reduced(st, ~zero, ident)
                out.ops[idx, :n] = np.where(keep, ops, pad)
            else:
                keep = np.ones((len(idx), n), dtype=bool)
                adj, depth, rdepth, reach = st.adj, st.depth, st.rdepth, st.reach
            out.mask[idx, :n] = keep
            out.adj[idx, :n, :n] = adj
            out.depth[idx, :n] = np.where(keep, depth, -1)
            out.rdepth[idx, :n] = np.where(keep, rdepth, -1)
            out.reach[idx, :n, :n] = reach
        if self.num_attrs:
            self._fill_attrs(archs, out)
        return out

    def _op_indices(self, archs: list[Architecture]) -> np.ndarray:
        index = self._index
        try:
            return np.array([[index[op] for op in a.ops] for a in archs], dtype=np.int64)
        except KeyError as exc:
            raise ArchitectureError(f"op {exc.args[0]!r} is not in this predictor's vocabulary "
                                    f"({', '.join(self.ops)})") from None

    def _fill_attrs(self, archs: list[Architecture], out: GraphArrays) -> None:
        mean, std = np.array(self.attr_mean), np.array(self.attr_std)
        for b, a in enumerate(archs):
            if not a.attrs:
                continue
            vals = np.array([[float(node.get(k, m)) if isinstance(node.get(k, m), (bool, int, float)) else m
                              for k, m in zip(self.attr_keys, mean)] for node in a.attrs])
            out.attrs[b, :a.num_nodes] = ((vals - mean) / std) * out.mask[b, :a.num_nodes, None]


def _reduced(st: _Structure, alive: np.ndarray, identity: np.ndarray):
    """Keep-mask, adjacency, generations and reachability of the graphs of one
    structure once their dead nodes (``alive`` False, and every node then off
    a source-to-sink path; sources and sinks stay) are pruned and their
    ``identity`` nodes contracted. ``alive``/``identity``: (G, n) bool."""
    G, n = alive.shape
    fwd = np.zeros((G, n), dtype=bool)
    bwd = np.zeros((G, n), dtype=bool)
    for v in st.topo:
        p = list(st.preds[v])
        fwd[:, v] = alive[:, v] & (fwd[:, p].any(1) if p else True)
    for v in reversed(st.topo):
        s = list(st.succs[v])
        bwd[:, v] = alive[:, v] & (bwd[:, s].any(1) if s else True)
    ends = np.array([not st.preds[v] or not st.succs[v] for v in range(n)])
    keep = (fwd & bwd) | (ends & alive)
    adj = st.adj[None] & keep[:, :, None] & keep[:, None, :]
    for v in st.topo:   # in topological order, so the new edges only skip nodes already visited
        c = identity[:, v] & keep[:, v] & ~ends[v]
        if c.any():
            joined = adj[:, :, v, None] & adj[:, None, v, :]          # predecessors x successors
            # not where a predecessor already feeds a successor: x + x is not x
            c &= ~(joined & adj).any((1, 2))
            joined = joined[c]
            adj[c] |= joined
            adj[c, v, :] = False
            adj[c, :, v] = False
            keep[c, v] = False
    # generations and reachability of the reduced graphs (the structure's
    # topological order still holds: edges only ever skip ahead)
    depth = np.zeros((G, n), dtype=np.int64)
    for v in st.topo:
        depth[:, v] = np.where(adj[:, :, v], depth + 1, 0).max(1)
    rdepth = np.zeros((G, n), dtype=np.int64)
    reach = np.zeros((G, n, n), dtype=bool)
    for v in reversed(st.topo):
        e = adj[:, v, :]
        rdepth[:, v] = np.where(e, rdepth + 1, 0).max(1)
        reach[:, v] = e | (e[:, :, None] & reach).any(1)
    return keep, adj, depth, rdepth, reach


#: ops that compute zero or the identity, per space: what ``"auto"`` means
#: for ``prune_ops``/``contract_ops``. A space may instead declare class
#: attributes ``zero_ops``/``identity_ops``. (DARTS' skip_connect is no
#: identity in reduction cells, so only the NB201-like cells contract by default.)
ZERO_OPS: dict[str, tuple[str, ...]] = {"nb201": ("none",), "transnas_micro": ("none",)}
IDENTITY_OPS: dict[str, tuple[str, ...]] = {"nb201": ("skip_connect",), "transnas_micro": ("skip_connect",)}


def resolve_ops(value: str | Sequence[str], space: str, kind: str) -> tuple[str, ...]:
    """``prune_ops``/``contract_ops`` of a predictor for ``space``: ``"auto"``
    means the space's zero (``kind="zero"``) or identity ops; a list is taken as is."""
    if isinstance(value, str):
        if value != "auto":
            raise ValueError(f"expected a list of ops or 'auto', got {value!r}")
        table, attr = (ZERO_OPS, "zero_ops") if kind == "zero" else (IDENTITY_OPS, "identity_ops")
        from ..registry import SPACES
        declared = getattr(SPACES.get(space), attr, None) if space and space in SPACES else None
        return tuple(declared) if declared is not None else table.get(space, ())
    return tuple(value)


def space_vocabulary(space: str) -> tuple[str, ...] | None:
    """The registered space's op vocabulary, or None for an unregistered one."""
    if not space:
        return None
    from ..registry import SPACES
    if space not in SPACES:
        return None
    return tuple(SPACES.get(space).ops)


def path_encoding(archs: Sequence[Architecture], paths: Mapping[tuple[str, ...], int] | None = None,
                  max_paths: int = 4096, skip_ops: Sequence[str] = (), identity_ops: Sequence[str] = (),
                  min_archs: int = 1) -> tuple[np.ndarray, dict[tuple[str, ...], int]]:
    """BANANAS-style path encoding: one column per source-to-sink op sequence.

    Returns (counts (B, P) float32, vocabulary). Without ``paths`` the
    vocabulary is built from ``archs``: the ``max_paths`` most frequent of
    the paths found in at least ``min_archs`` of them; other paths at
    prediction time are dropped (no column to count them in).
    Paths through a ``skip_ops`` node (a zero op) carry nothing and are left
    out; ``identity_ops`` are dropped from the op sequences (x -> skip -> conv
    is x -> conv).
    """
    skip, ident = set(skip_ops), set(identity_ops)
    per_arch = [[tuple(o for o in p if o not in ident) if ident else p
                 for p in _paths(a) if not skip.intersection(p)] for a in archs]
    if paths is None:
        freq: dict[tuple[str, ...], int] = {}
        for ps in per_arch:
            for p in set(ps):
                freq[p] = freq.get(p, 0) + 1
        top = sorted((p for p in freq if freq[p] >= min_archs), key=lambda p: (-freq[p], p))[:max_paths]
        paths = {p: i for i, p in enumerate(sorted(top))}
    out = np.zeros((len(archs), len(paths)), dtype=np.float32)
    for b, ps in enumerate(per_arch):
        for p in ps:
            j = paths.get(p)
            if j is not None:
                out[b, j] += 1
    return out, dict(paths)


_MAX_PATHS_PER_ARCH = 100_000


def _paths(arch: Architecture) -> list[tuple[str, ...]]:
    """All source-to-sink op sequences of ``arch`` (the ends' ops included)."""
    done: dict[int, list[tuple[str, ...]]] = {}
    for v in reversed(arch.topological_order()):
        succ = arch.successors(v)
        tails = [t for s in succ for t in done[s]] if succ else [()]
        if len(tails) > _MAX_PATHS_PER_ARCH:
            raise ArchitectureError(f"more than {_MAX_PATHS_PER_ARCH} paths from node {v}: "
                                    "the path encoding is unfit for graphs this dense")
        done[v] = [(arch.ops[v],) + t for t in tails]
    return [p for s in arch.sources() for p in done[s]]
