"""The ``Strategy`` interface (ask/tell, as Optuna's) and what all strategies share.

A strategy proposes architectures (``ask``) and learns from their outcomes
(``tell``). Its whole state is a function of its hyper-parameters, its seed
and the sequence of ask/tell calls, so a search is rebuilt exactly by
replaying that sequence from the ledger (see ``flownas.search.loop``).

The base class guarantees novelty: ``ask`` never returns an architecture
isomorphic to one already asked or told (after the space's ``normalize``),
so no architecture is evaluated twice in one search. Subclasses implement
``_propose`` (one architecture at a time, so that each proposal already
counts as known for the next) and usually ``_tell``; ``tell`` also accepts
architectures the strategy did not propose (a warm start from recorded
results).
"""
from __future__ import annotations

import abc
import inspect
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable, Mapping

import numpy as np

from ..arch import Architecture
from ..errors import ArchitectureError, ConfigError
from ..seeding import as_rng
from ..spaces.base import SearchSpace

# rejection sampling gives up after this many repeats in a row, then
# enumerates the unseen rest of a finite space of at most _ENUMERABLE members
MAX_TRIES = 200
_ENUMERABLE = 200_000


@dataclass(frozen=True)
class Told:
    """One outcome: ``value`` is the objective (higher is better), None if the evaluation failed."""

    arch: Architecture
    value: float | None
    metrics: Mapping[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.value is None


class Strategy(abc.ABC):
    """Ask/tell search strategy over one ``space``; every random choice uses ``seed``."""

    name: ClassVar[str] = ""

    def __init__(self, space: SearchSpace | str, *, seed: int = 0):
        if isinstance(space, str):   # a registered space's name
            from ..registry import get_space
            space = get_space(space)
        if not isinstance(space, SearchSpace):
            raise ConfigError(f"space: expected a SearchSpace or a registered space's name, got "
                              f"{type(space).__name__}")
        self.space = space
        self.seed = seed
        self.rng = as_rng(seed)
        self.history: list[Told] = []            # in the order told
        self._pending: dict[str, Architecture] = {}
        self._told: dict[str, Told] = {}

    # -- the interface ---------------------------------------------------
    def ask(self, n: int = 1) -> list[Architecture]:
        """Up to ``n`` new architectures; fewer (maybe none) when the space runs out."""
        out: list[Architecture] = []
        misses = 0
        while len(out) < n and misses < MAX_TRIES:
            arch = self._propose()
            if arch is None:
                break
            arch = self.space.normalize(arch)
            if self.is_new(arch):
                self._pending[arch.key] = arch
                out.append(arch)
            else:
                misses += 1
                self._discard(arch)
        return out

    def tell(self, arch: Architecture, value: float | None,
             metrics: Mapping[str, Any] | None = None) -> None:
        """The outcome of ``arch`` (asked or not); ``value`` None means it failed."""
        if value is not None and not np.isfinite(float(value)):
            raise ConfigError(f"tell: the value must be a finite number, or None for a failure; got {value}")
        if not isinstance(arch, Architecture):
            raise ArchitectureError(f"tell: expected an Architecture, got {type(arch).__name__}")
        if arch.space and arch.space != self.space.name:   # it would fail at the next ask, far from here
            raise ArchitectureError(f"tell: the architecture belongs to space {arch.space!r}, not to the "
                                    f"searched space {self.space.name!r}")
        arch = self.space.normalize(arch)
        told = Told(arch, None if value is None else float(value), dict(metrics or {}))
        self._pending.pop(arch.key, None)
        self._told[arch.key] = told
        self.history.append(told)
        self._tell(told)

    def reserve(self, archs: Iterable[Architecture]) -> None:
        """Mark architectures as being evaluated elsewhere, so they are never proposed."""
        for arch in archs:
            arch = self.space.normalize(arch)
            if arch.key not in self._told:
                self._pending[arch.key] = arch

    def describe(self, arch: Architecture) -> dict[str, Any]:
        """What the strategy knew when it proposed ``arch`` (recorded in the ledger)."""
        return {}

    # -- for subclasses --------------------------------------------------
    @abc.abstractmethod
    def _propose(self) -> Architecture | None:
        """One proposal that should pass ``is_new`` (else it is dropped and
        ``_propose`` called again); None when the strategy has nothing left."""

    def _tell(self, told: Told) -> None:
        """Learn from one outcome (already in ``self.history``)."""

    def _discard(self, arch: Architecture) -> None:
        """A proposal that ``ask`` dropped because it was not new."""

    def is_new(self, arch: Architecture) -> bool:
        key = self.space.normalize(arch).key
        return key not in self._pending and key not in self._told

    @property
    def num_known(self) -> int:
        """Architectures asked or told so far."""
        return len(self._pending) + len(self._told)

    def told(self, arch: Architecture) -> Told | None:
        return self._told.get(self.space.normalize(arch).key)

    def successes(self) -> list[Told]:
        return [t for t in self.history if not t.failed]

    def best(self, n: int = 1) -> list[Told]:
        """The ``n`` best outcomes so far (ties: the earlier told first)."""
        ranked = sorted(enumerate(self.successes()), key=lambda it: (-it[1].value, it[0]))
        return [t for _, t in ranked[:n]]

    def sample_new(self, rng: np.random.Generator | None = None) -> Architecture | None:
        """A random member that is not known yet; None when there is none."""
        rng = self.rng if rng is None else rng
        for _ in range(MAX_TRIES):
            arch = self.space.normalize(self.space.sample(rng))
            if self.is_new(arch):
                return arch
        rest = self._unseen_members()
        return None if not rest else rest[int(rng.integers(len(rest)))]

    def mutate_new(self, parent: Architecture, rng: np.random.Generator | None = None,
                   steps: int = 1) -> Architecture | None:
        """A new architecture ``steps`` mutations away from ``parent`` (more if
        every such one is known); None if none is found."""
        rng = self.rng if rng is None else rng
        for attempt in range(MAX_TRIES // 4):
            arch = parent
            for _ in range(steps + attempt // 10):   # widen the search when nearby is all known
                arch = self.space.mutate(arch, rng)
            arch = self.space.normalize(arch)
            if self.is_new(arch):
                return arch
        return None

    def _unseen_members(self) -> list[Architecture]:
        size = self.space.size()
        if size is None or size > _ENUMERABLE or self.num_known >= size:
            return []
        seen = set(self._pending) | set(self._told)
        out, keys = [], set()
        for arch in self.space.enumerate():
            arch = self.space.normalize(arch)
            if arch.key not in seen and arch.key not in keys:
                keys.add(arch.key)
                out.append(arch)
        return out

    # -- hyper-parameters (scikit-learn style) ---------------------------
    def get_params(self) -> dict[str, Any]:
        """The arguments of ``__init__`` but the space (seed included), as stored on ``self``."""
        sig = inspect.signature(type(self).__init__)
        return {p: getattr(self, p) for p, prm in sig.parameters.items()
                if p not in ("self", "space") and prm.kind in (prm.POSITIONAL_OR_KEYWORD, prm.KEYWORD_ONLY)}

    def fresh(self) -> "Strategy":
        """A new strategy with the same space, hyper-parameters and seed, nothing told."""
        return type(self)(self.space, **self.get_params())

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({self.space.name!r}, {params})"
