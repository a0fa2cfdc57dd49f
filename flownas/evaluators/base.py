"""The ``Evaluator`` interface: how a candidate gets its real score.

``evaluate`` is pure with respect to its inputs (architecture, fidelity and the
evaluator's own configuration) so that it can run on any worker; evaluators
are pickled to workers, so they hold configuration and load heavy things
(tables, datasets) lazily on first use.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..arch import Architecture


@dataclass(frozen=True)
class Result:
    """``metrics`` holds at least the evaluator's objective (higher is better);
    ``cost_s`` is what the evaluation cost in seconds (simulated for tables)."""

    metrics: dict[str, Any]
    cost_s: float
    info: dict[str, Any] = field(default_factory=dict)


class Evaluator(abc.ABC):
    objective: str = "val_acc"   # the metric a search maximizes

    @abc.abstractmethod
    def evaluate(self, arch: Architecture, fidelity: Any = None) -> Result:
        ...

    def evaluate_many(self, archs: Sequence[Architecture], fidelity: Any = None) -> list[Result]:
        """``evaluate`` of each architecture. An evaluator that scores many
        at once faster (a saved predictor: one batched forward pass) overrides
        it; constraints use it to filter a whole space or neighbourhood."""
        return [self.evaluate(arch, fidelity) for arch in archs]

    def check(self, space) -> None:
        """Raise ``ConfigError`` if this evaluator cannot evaluate the members of
        ``space`` at all (a table of another space, a predictor file that is
        not there). The search loop calls it before it dispatches anything, so
        a search that could never succeed stops at once; a check that needs
        nothing but the evaluator's own options belongs in its constructor."""

    def check_here(self) -> None:
        """Raise ``ConfigError`` if what this evaluator reads from disk (a
        dataset) is not on this machine. Called, like ``check``, before
        anything is dispatched, but only when the executor runs evaluations on
        this machine: a Ray cluster's workers find their data on their own nodes."""
