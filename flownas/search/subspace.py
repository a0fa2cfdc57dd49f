"""``Subspace``: part of a space, and ``TableSubspace``: the members of a
space that a benchmark table holds.

A table that covers only part of its space (the NB101 table holds 20,001 of
423,624 cells) can still be searched: samples are drawn from the table, and a
mutation that leaves the table is moved to the nearest member (Hamming
distance between the cells' canonical one-hot ops and adjacency), so a
mutant stays a close neighbour of its parent.
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from ..arch import Architecture
from ..errors import ArchitectureError
from ..spaces.base import SearchSpace


class Subspace(SearchSpace):
    """Part of ``base``: its name, vocabulary and shapes, and all but
    membership delegated to it; subclasses say which members belong
    (``sample``, ``mutate``, ``validate``, ``from_params``)."""

    def __init__(self, base: SearchSpace):
        self.base = base
        self.name = base.name
        self.ops = base.ops
        self.input_op = base.input_op
        self.output_op = base.output_op
        self.input_shape = base.input_shape

    def normalize(self, arch: Architecture) -> Architecture:
        return self.base.normalize(arch)

    def to_model(self, arch: Architecture, **options: Any):
        return self.base.to_model(arch, **options)

    def param_space(self) -> dict[str, tuple]:
        return self.base.param_space()

    def to_params(self, arch: Architecture) -> dict[str, Any]:
        return self.base.to_params(arch)

    def to_string(self, arch: Architecture) -> str:
        return self.base.to_string(arch)

    def from_string(self, text: str) -> Architecture:
        return self.base.from_string(text)


class TableSubspace(Subspace):
    def __init__(self, space: SearchSpace, members: Sequence[Architecture]):
        super().__init__(space)
        self._members: dict[str, Architecture] = {}
        for arch in members:
            arch = space.normalize(arch)
            self._members.setdefault(arch.key, arch)
        self._list = list(self._members.values())
        self._codes: np.ndarray | None = None     # encodings for _nearest, built on first use
        if not self._list:
            raise ArchitectureError(f"the table of space {space.name!r} holds no architecture")

    def __repr__(self) -> str:
        return f"<{len(self._list)} tabulated members of space {self.name}>"

    def __contains__(self, arch: Architecture) -> bool:
        return self.base.normalize(arch).key in self._members

    def sample(self, rng: np.random.Generator) -> Architecture:
        return self._list[int(rng.integers(len(self._list)))]

    def mutate(self, arch: Architecture, rng: np.random.Generator) -> Architecture:
        arch = self.base.normalize(arch)
        child = self.base.normalize(self.base.mutate(arch, rng))
        if child.key in self._members and child.key != arch.key:
            return self._members[child.key]
        return self._nearest(child, arch.key, rng)

    def _nearest(self, arch: Architecture, exclude: str, rng: np.random.Generator) -> Architecture:
        """A member closest to ``arch`` other than ``exclude`` (ties: at random)."""
        if self._codes is None:
            self._width = max(a.num_nodes for a in self._list)
            self._codes = np.stack([self._encode(a) for a in self._list])
            self._index = {a.key: i for i, a in enumerate(self._list)}
        distance = (self._codes != self._encode(arch)).sum(1)
        if exclude in self._index and len(self._list) > 1:
            distance[self._index[exclude]] = distance.max() + 1
        closest = np.flatnonzero(distance == distance.min())
        return self._list[int(closest[rng.integers(len(closest))])]

    def _encode(self, arch: Architecture) -> np.ndarray:
        """Canonical numbering, padded (or cut) to the widest member: one-hot ops, upper adjacency."""
        canon = arch.canonical()
        n = min(canon.num_nodes, self._width)
        ops = np.zeros((self._width, len(self.ops)), dtype=bool)
        vocab = {op: i for i, op in enumerate(self.ops)}
        for v in range(n):
            if canon.ops[v] in vocab:
                ops[v, vocab[canon.ops[v]]] = True
        adj = np.zeros((self._width, self._width), dtype=bool)
        adj[:n, :n] = canon.adjacency[:n, :n].astype(bool)
        return np.concatenate([ops.ravel(), adj[np.triu_indices(self._width, 1)]])

    def validate(self, arch: Architecture) -> None:
        self.base.validate(arch)
        if arch not in self:
            raise self._error("the benchmark table has no record of this architecture")

    def enumerate(self) -> Iterator[Architecture]:
        return iter(self._list)

    def size(self) -> int:
        return len(self._list)

    def from_params(self, params: Mapping[str, Any]) -> Architecture:
        arch = self.base.from_params(params)
        self.validate(arch)
        return self._members[self.base.normalize(arch).key]
