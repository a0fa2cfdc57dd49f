"""The ``Executor`` interface: where evaluations run.

It is shaped like ``concurrent.futures``: ``submit`` returns a
``concurrent.futures.Future`` at once and ``wait`` returns when at least one
of the given futures is done, so the search loop keeps ``workers``
evaluations in flight and dispatches the next candidate as soon as one
finishes. An executor retries or reports; it never records: the loop writes
every outcome, and every retry reported through ``on_retry``, to the ledger.
"""
from __future__ import annotations

import abc
import concurrent.futures as cf
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from ..arch import Architecture
from ..evaluators.base import Evaluator, Result


@dataclass(frozen=True)
class Evaluation:
    """What a worker sends back: the evaluator's result and its wall time."""

    result: Result
    wall_s: float


def evaluate(evaluator: Evaluator, arch: Architecture, fidelity: Any = None) -> Evaluation:
    """The function every executor runs on a worker for one candidate."""
    start = time.perf_counter()
    result = evaluator.evaluate(arch, fidelity)
    return Evaluation(result, time.perf_counter() - start)


class WorkerLost(RuntimeError):
    """The worker running a call died more often than ``max_retries`` allowed."""


def check_max_retries(max_retries: Any) -> None:
    """How often a call whose worker died runs again: a whole number >= 0."""
    if not isinstance(max_retries, int) or isinstance(max_retries, bool) or max_retries < 0:
        raise ValueError(f"max_retries must be an integer >= 0, got {max_retries!r}")


class Executor(abc.ABC):
    """Runs functions asynchronously on ``workers`` slots."""

    workers: int = 1
    # whether evaluations run on this machine (their data is looked for here before a search starts)
    on_this_machine: bool = True
    # on_retry(future, error): the function of ``future`` runs again because its
    # worker died; called in the thread that calls ``wait`` (the loop records it)
    on_retry: Callable[[cf.Future, str], None] | None = None

    @abc.abstractmethod
    def submit(self, fn: Callable[..., Any], /, *args: Any,
               resources: Mapping[str, float] | None = None, **kwargs: Any) -> cf.Future:
        """Start ``fn(*args, **kwargs)``; ``resources`` (e.g. ``{"num_gpus": 1}``)
        is a placement request that executors without such resources ignore."""

    def wait(self, futures: Iterable[cf.Future], timeout: float | None = None
             ) -> tuple[set[cf.Future], set[cf.Future]]:
        """(done, not_done), returning as soon as one future is done."""
        done, pending = cf.wait(list(futures), timeout=timeout, return_when=cf.FIRST_COMPLETED)
        return set(done), set(pending)

    def _wait_collecting(self, futures: Iterable[cf.Future], timeout: float | None,
                         collect: Callable[[set[cf.Future], float | None], bool]
                         ) -> tuple[set[cf.Future], set[cf.Future]]:
        """``wait`` for an executor that resolves its futures itself:
        ``collect(futures, seconds)`` waits that long at most (None: as long as
        it takes) for its own work and resolves what finished; it returns
        False when none of ``futures`` is its own (they are waited for plainly)."""
        futures = set(futures)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            done = {f for f in futures if f.done()}
            if done:
                return done, futures - done
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not collect(futures, left):   # futures from elsewhere
                return Executor.wait(self, futures, left)
            if left == 0:   # time is up: what one look collected
                done = {f for f in futures if f.done()}
                return done, futures - done

    def shutdown(self, cancel: bool = False) -> None:
        """Release the workers; ``cancel`` drops what has not started."""

    def check_sendable(self, *objects: Any) -> None:
        """Raise ``ConfigError`` if these (an evaluator) cannot reach this
        executor's workers; before the search starts, not at each candidate."""

    def check(self) -> None:
        """``--check``: raise ``ConfigError`` if this executor could not run the
        search's evaluations at all (a cluster without the resources asked for).
        Starts nothing that would outlive the check."""

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.shutdown(cancel=exc_type is not None)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} workers={self.workers}>"
