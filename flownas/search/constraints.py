"""Constraints: search only the architectures that satisfy them.

A constraint bounds one metric of a cheap evaluator: a latency looked up in
the HELP tables for a device, a latency measured here, the parameter count
from a table. ``ConstrainedSpace`` wraps a space so that every strategy,
unchanged, proposes feasible members only: an infeasible candidate is never
trained and costs no budget. A finite space is filtered once (its feasible
members become a ``TableSubspace``, whose mutations move to the nearest
feasible member); an infinite one is sampled and mutated by rejection.

In a configuration::

    constraints:
      - {metric: latency_ms, max: 5.0, evaluator: {name: latency_table, device: pixel3}}
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from ..arch import Architecture
from ..errors import ArchitectureError, ConfigError, DataError, FlownasError, NotInSpaceError
from ..evaluators.base import Evaluator
from ..spaces.base import SearchSpace
from .subspace import Subspace, TableSubspace

# a finite space up to this size is filtered once, member by member
ENUMERABLE = 200_000
# rejection sampling (infinite spaces) gives up after this many infeasible draws in a row;
# a mutation then falls back to a feasible sample
MAX_TRIES = 1000
MUTATION_TRIES = 100
# architectures per evaluate_many call when a space or neighbourhood is filtered
BATCH = 4096


def check_bounds(metric: str, max: float | None, min: float | None) -> None:
    if max is None and min is None:
        raise ConfigError(f"constraint on {metric!r}: give max, min or both")
    for name, bound in (("max", max), ("min", min)):
        if bound is not None and not math.isfinite(bound):   # NaN: nothing compares within it
            raise ConfigError(f"constraint on {metric!r}: {name} must be a finite number, got {bound}")
    if max is not None and min is not None and min > max:
        raise ConfigError(f"constraint on {metric!r}: min {min:g} is above max {max:g}")


@dataclass(frozen=True)
class Constraint:
    """``min <= evaluator's metric <= max`` (either bound may be None)."""

    metric: str
    evaluator: Evaluator
    max: float | None = None
    min: float | None = None

    def __post_init__(self):
        check_bounds(self.metric, self.max, self.min)

    def value(self, arch: Architecture) -> float:
        return _finite(self.metric, arch, self.values([arch])[0])

    def values(self, archs: Sequence[Architecture]) -> list[float]:
        """The metric of each architecture, in one ``evaluate_many`` call (a
        value may be NaN or infinite: ``value`` refuses those)."""
        try:
            results = self.evaluator.evaluate_many(archs)
        except DataError:
            raise
        except FlownasError as exc:   # e.g. a latency table of another space: say which constraint asked
            raise ConfigError(f"constraint {self}: {exc}") from None
        if len(results) != len(archs):   # an evaluate_many of your own that drops or adds some
            raise ConfigError(f"constraint {self}: evaluate_many gave {len(results)} results "
                              f"for {len(archs)} architectures")
        out = []
        for result in results:
            if self.metric not in result.metrics:
                raise ConfigError(f"constraint: the evaluator {_name(self.evaluator)} gives no metric "
                                  f"{self.metric!r} (it gives: {', '.join(sorted(result.metrics))})")
            out.append(float(result.metrics[self.metric]))
        return out

    def holds(self, value: float) -> bool:
        return (self.max is None or value <= self.max) and (self.min is None or value >= self.min)

    def __str__(self) -> str:
        return f"{bounds_text(self.metric, self.max, self.min)} ({_name(self.evaluator)})"


def _finite(metric: str, arch: Architecture, value: float) -> float:
    """``value``, unless it is NaN or infinite: nothing can be said of such an architecture."""
    if not math.isfinite(value):
        raise ArchitectureError(f"constraint: {metric} of {arch!r} is {value}")
    return value


def bounds_text(metric: str, max: float | None, min: float | None) -> str:
    """``latency_ms <= 5``, ``params >= 1e+06``, or both joined by ``and``."""
    bounds = [f"{metric} <= {max:g}" if max is not None else None, f"{metric} >= {min:g}" if min is not None else None]
    return " and ".join(b for b in bounds if b)


def _name(evaluator: Evaluator) -> str:
    from ..registry import EVALUATORS
    for name in EVALUATORS.names():
        if type(evaluator) is EVALUATORS.get(name):
            return name
    return type(evaluator).__name__


class ConstrainedSpace(Subspace):
    """The members of ``space`` that satisfy every constraint."""

    def __init__(self, space: SearchSpace, constraints: Sequence[Constraint]):
        if not constraints:
            raise ConfigError("a constrained space needs at least one constraint")
        super().__init__(space)
        self.constraints = tuple(constraints)
        self._values: dict[str, dict[str, float]] = {}
        self.feasible_members: SearchSpace | None = None   # finite spaces: a TableSubspace of the feasible
        size = space.size()
        if size is not None and size <= ENUMERABLE:
            self._filter(list(space.enumerate()))
        else:   # a metric the evaluator does not give fails now, not at the search's first proposal
            self.values(space.sample(np.random.default_rng(0)))

    def __repr__(self) -> str:
        return f"<space {self.name} where {'; '.join(map(str, self.constraints))}>"

    # -- what the constraints say of an architecture ------------------------
    def values(self, arch: Architecture) -> dict[str, float]:
        """Each constrained metric of ``arch`` (computed once per architecture)."""
        arch = self.base.normalize(arch)
        self._compute([arch])
        values = self._values[arch.key]
        for metric, value in values.items():
            _finite(metric, arch, value)
        return values

    def _compute(self, archs: Sequence[Architecture]) -> None:
        """Fill the cache for the normalized ``archs`` not in it, each
        constraint's evaluator called once for all of them."""
        todo = list({a.key: a for a in archs if a.key not in self._values}.values())
        for start in range(0, len(todo), BATCH):
            chunk = todo[start:start + BATCH]
            columns = [c.values(chunk) for c in self.constraints]
            for i, arch in enumerate(chunk):
                self._values[arch.key] = {c.metric: column[i] for c, column in zip(self.constraints, columns)}

    def _feasible_among(self, archs: Sequence[Architecture]) -> list[Architecture]:
        """The feasible ones of ``archs`` (normalized), in order; a member whose
        metric is NaN is left out, as a rejected assignment is."""
        archs = [self.base.normalize(a) for a in archs]
        self._compute(archs)
        out = []
        for arch in archs:
            try:
                if self.feasible(arch):
                    out.append(arch)
            except ArchitectureError:
                continue
        return out

    def broken(self, arch: Architecture) -> list[Constraint]:
        values = self.values(arch)
        return [c for c in self.constraints if not c.holds(values[c.metric])]

    def feasible(self, arch: Architecture) -> bool:
        return not self.broken(arch)

    def describe(self, arch: Architecture) -> dict[str, Any]:
        """Recorded in the ledger with each candidate: its constrained metrics."""
        return {"constraints": dict(self.values(arch))}

    def _filter(self, members: list[Architecture]) -> None:
        members = [self.base.normalize(a) for a in members]
        self._compute(members)
        feasible = [a for a in members if self.feasible(a)]
        if not feasible:
            raise ConfigError(f"no architecture of space {self.name!r} satisfies "
                              f"{'; '.join(map(str, self.constraints))}: {self._ranges(members)}")
        self.feasible_members = TableSubspace(self.base, feasible)

    def _ranges(self, archs: Sequence[Architecture]) -> str:
        parts = []
        for c in self.constraints:
            vs = [self.values(a)[c.metric] for a in archs]
            parts.append(f"{c.metric} ranges from {min(vs):g} to {max(vs):g}")
        return ", ".join(parts) + f" over {len(archs)} members"

    # -- the space ------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Architecture:
        if self.feasible_members is not None:
            return self.feasible_members.sample(rng)
        return self._rejection(lambda: self.base.sample(rng), "samples")

    def mutate(self, arch: Architecture, rng: np.random.Generator) -> Architecture:
        if self.feasible_members is not None:
            return self.feasible_members.mutate(arch, rng)
        arch = self.base.normalize(arch)
        try:
            return self._rejection(lambda: self.base.mutate(arch, rng), "mutations", MUTATION_TRIES)
        except ArchitectureError:   # a member whose neighbours all break a bound: start afresh
            return self._rejection(lambda: self.base.sample(rng), "samples", exclude=arch.key)

    def _rejection(self, draw, what: str, tries: int = MAX_TRIES, exclude: str | None = None) -> Architecture:
        tried = []
        for _ in range(tries):
            arch = self.base.normalize(draw())
            if arch.key != exclude and self.feasible(arch):
                return arch
            tried.append(arch)
        raise ArchitectureError(f"{tries} {what} in a row broke the constraints of space {self.name!r}: "
                                f"{self._ranges(tried)}; loosen {'; '.join(map(str, self.constraints))}")

    def neighbours(self, arch: Architecture) -> list[Architecture]:
        """The base space's neighbours within the constraints, computed in one
        batch (a parent of the ``predictor`` strategy brings its whole neighbourhood)."""
        if self.feasible_members is not None:
            return self.feasible_members.neighbours(arch)
        return self._feasible_among(self.base.neighbours(self.base.normalize(arch)))

    def validate(self, arch: Architecture) -> None:
        self.base.validate(arch)
        broken = self.broken(arch)
        if broken:
            values = self.values(arch)
            raise NotInSpaceError(self.name, "breaks the constraint " + "; ".join(
                f"{c} with {c.metric} = {values[c.metric]:g}" for c in broken))

    def enumerate(self) -> Iterator[Architecture]:
        if self.feasible_members is None:   # too large to filter up front (or infinite: the base raises)
            return (a for a in self.base.enumerate() if self.feasible(a))
        return self.feasible_members.enumerate()

    def size(self) -> int | None:
        return None if self.feasible_members is None else self.feasible_members.size()

    def from_params(self, params: Mapping[str, Any]) -> Architecture:
        arch = self.base.normalize(self.base.from_params(params))
        self.validate(arch)
        return arch
