"""The search loop: strategy -> evaluator (through an executor) -> ledger -> tell.

Asynchronous: with an executor of W workers, W candidates are in flight;
when one finishes, its outcome is written to the ledger, told to the
strategy (which refits its predictor when due), and the next candidate is
dispatched. Every candidate is written to the ledger before it starts and
when it ends.

Resume is a replay. The loop runs again from the start with a fresh strategy
of the same seed; a dispatch that the ledger already holds is checked against
it (same architecture) instead of being evaluated, and completions are
served from the ledger in their recorded order. Finished candidates are thus
never evaluated again, candidates that were running when the search died run
again, and the strategy and its predictor end in exactly the state they had,
so a deterministic strategy with a tabular evaluator finishes with exactly
the result of an uninterrupted run. If the strategy proposes something else
than the ledger holds (it is not deterministic), the loop falls back to a
warm start: a fresh strategy is told every recorded outcome in order, and a
later resume of that search starts with a warm start.

``retry_failed`` runs the failed candidates again (a transient error: a GPU
out of memory, a full disk): it is a warm start in which the failures are not
told; the retries are dispatched first, each as a new trial that supersedes
the failed one in the ledger (``Ledger.retry``), and cost no budget.
"""
from __future__ import annotations

import concurrent.futures as cf
import math
import time
import warnings
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ..arch import Architecture
from ..errors import ConfigError, DataError, FlownasError
from ..evaluators.base import Evaluator
from ..runtime.base import Evaluation, Executor, evaluate
from ..spaces.base import SearchSpace
from ..store import Ledger, Record
from .base import Strategy


@dataclass(frozen=True)
class Budget:
    """Stop dispatching after ``evaluations`` candidates or once the finished
    ones cost ``cost_s`` (simulated or real seconds); None = no limit."""

    evaluations: int | None = 100
    cost_s: float | None = None

    def __post_init__(self):
        if self.evaluations is None and self.cost_s is None:
            raise ValueError("a budget needs evaluations or cost_s")


@dataclass
class SearchResult:
    records: list[Record]            # finished candidates, in completion order
    best: Record | None
    stopped: str                     # "budget" | "exhausted"
    replayed: int                    # outcomes served from the ledger
    warm_started: bool
    wall_s: float
    workers: int = 1
    busy_s: float = 0.0              # evaluation time of the candidates run (not replayed) by this run
    retried: int = 0                 # failed candidates run again (retry_failed)

    @property
    def failures(self) -> int:
        return sum(r.state == "failed" for r in self.records)

    @property
    def utilization(self) -> float | None:
        """Share of the workers' time spent evaluating: busy / (workers x wall time)."""
        return self.busy_s / (self.workers * self.wall_s) if self.wall_s > 0 else None


class SearchAborted(FlownasError):
    """The search cannot go on (e.g. every evaluation fails)."""


def known_metrics(space, strategy: Strategy, evaluator: Evaluator) -> set[str] | None:
    """The metrics the strategy is told (the evaluator's and the constrained
    ones), where the evaluator lists them; a metric the strategy needs
    (Optuna ``objectives``) that is not among them is a ConfigError now.
    None: the evaluator does not list them (the strategy checks the first
    result). The loop calls it before it dispatches anything, and so does
    ``flownas.search.api.build``, before a run directory exists."""
    needed = list(getattr(strategy, "needed_metrics", None) or ())
    names = getattr(evaluator, "metric_names", None)
    if not needed or not callable(names):
        return None
    known = set(names())
    while space is not None:
        known.update(c.metric for c in getattr(space, "constraints", ()))
        space = getattr(space, "base", None)
    missing = [m for m in needed if m not in known]
    if missing:
        raise ConfigError(f"strategy.objectives: the evaluator gives no metric {missing[0]!r} "
                          f"(it gives: {', '.join(sorted(known))})")
    return known


class _Diverged(Exception):
    def __init__(self, seq: int, why: str):
        super().__init__(f"candidate #{seq}: {why}")
        self.seq = seq


@dataclass
class _Flight:
    record: Record
    future: cf.Future | None = None   # None: the outcome comes from the ledger


Callback = Callable[[Record, "SearchLoop"], None]


class SearchLoop:
    """Runs one search; ``run`` also resumes whatever ``ledger`` already holds."""

    def __init__(self, space: SearchSpace, strategy: Strategy, evaluator: Evaluator, ledger: Ledger, *,
                 executor: Executor | None = None, budget: Budget = Budget(),
                 callbacks: Sequence[Callback] = (), fidelity: Any = None,
                 max_consecutive_failures: int = 20, retry_failed: bool = False):
        from ..runtime.local import InlineExecutor
        self.space = space
        self.strategy = strategy
        self.evaluator = evaluator
        self.ledger = ledger
        self.executor = executor or InlineExecutor()
        self.budget = budget
        self.callbacks = list(callbacks)
        self.fidelity = fidelity
        self.max_consecutive_failures = max_consecutive_failures
        self.retry_failed = retry_failed
        # progress, read by callbacks
        self.finished: list[Record] = []
        self.best: Record | None = None
        self.cost_s = 0.0
        self.replayed = 0
        self.warm_started = False
        self.retried = 0
        self.busy_s = 0.0
        self.started = time.perf_counter()
        self.executor.on_retry = self._retried

    # -- the loop ----------------------------------------------------------
    def run(self) -> SearchResult:
        # an evaluator that cannot evaluate this space at all (a table of another space, a predictor
        # file that is not there) says so now, not once per candidate
        check = getattr(self.evaluator, "check", None)
        if callable(check):
            check(self.space)
        self._known_metrics = self._check_metrics()
        records = self.ledger.records()
        self.ledger.repair(records)
        self._recorded = {r.seq: r for r in records}
        self._log = deque(sorted((r for r in records if r.finished), key=lambda r: r.done))
        self._inflight: dict[int, _Flight] = {}
        self._retry: deque[Record] = deque()
        self._next_seq = self._next_done = 0
        self._failures_in_a_row = 0
        self.started = time.perf_counter()
        stopped = "budget"
        try:
            retry = self.retry_failed and any(r.state == "failed" for r in records)
            if retry or self.ledger.meta.get("warm_started"):   # that history cannot be replayed
                self._warm_start(retry=retry)
            while True:
                try:
                    if not self._fill() and not self._inflight:
                        stopped = "exhausted"
                        break
                    if not self._inflight:
                        break
                    self._complete_one()
                except _Diverged as exc:
                    self._warm_start(exc)
            if self.finished and self.best is None:   # fewer than max_consecutive_failures, but all of them
                raise SearchAborted(f"all {len(self.finished)} evaluations failed, none completed; the first: "
                                    f"{self.finished[0].error} (after fixing the cause, --resume --retry-failed "
                                    f"runs them again)")
        finally:
            self.executor.shutdown(cancel=True)
        return SearchResult(list(self.finished), self.best, stopped, self.replayed, self.warm_started,
                            time.perf_counter() - self.started, self.executor.workers, self.busy_s,
                            self.retried)

    def _check_metrics(self) -> set[str] | None:
        known = known_metrics(self.space, self.strategy, self.evaluator)
        self._tell_known_metrics(self.strategy, known)
        return known

    @staticmethod
    def _tell_known_metrics(strategy: Strategy, known: set[str] | None) -> None:
        if known is not None and hasattr(strategy, "known_metrics"):
            strategy.known_metrics = set(known)

    def _budget_left(self) -> bool:
        b = self.budget
        recorded = self._recorded.get(self._next_seq)
        if recorded is not None and recorded.finished:   # spent already: replayed even past a smaller budget,
            return True                                   # so the summary shows what the ledger holds
        return ((b.evaluations is None or self._next_seq < b.evaluations)
                and (b.cost_s is None or self.cost_s < b.cost_s))

    def _fill(self) -> bool:
        """Dispatch until every worker is busy; False when the strategy has nothing left."""
        while self._retry and len(self._inflight) < self.executor.workers:   # failed ones first, no budget
            record = self.ledger.retry(self._retry.popleft())
            self.retried += 1
            self._inflight[record.seq] = _Flight(record, self._submit(record.arch))
        while len(self._inflight) < self.executor.workers and self._budget_left():
            proposed = self.strategy.ask(1)
            if not proposed:
                return False
            arch = proposed[0]
            info = {**self.strategy.describe(arch), **self.space.describe(arch)}
            seq = self._next_seq
            recorded = self._recorded.get(seq)
            if recorded is not None:
                if recorded.arch.key != arch.key:
                    raise _Diverged(seq, "the strategy proposed another architecture than the ledger holds")
                self._next_seq += 1
                flight = _Flight(recorded)
                if not recorded.finished:
                    self.ledger.restart(recorded)
                    flight.future = self._submit(arch)
            else:
                self._next_seq += 1
                tid = self.ledger.start(seq, arch, info)
                flight = _Flight(Record(seq, tid, arch, info), self._submit(arch))
            self._inflight[seq] = flight
        return True

    def _submit(self, arch: Architecture) -> cf.Future:
        return self.executor.submit(evaluate, self.evaluator, arch, self.fidelity)

    def _complete_one(self) -> None:
        if self._log:   # replaying: the next completion is the recorded one
            record = self._log[0]
            if record.seq not in self._inflight:
                if not self._budget_left():   # dispatching stopped at a smaller budget (a running one) before it:
                    self._log.popleft()        # spent already, so shown all the same, and told as an outcome
                    self.replayed += 1
                    self._accept(record)
                    return
                raise _Diverged(record.seq, "it finished in the ledger before the replay dispatched it")
            self._log.popleft()
            del self._inflight[record.seq]
            self.replayed += 1
            self._accept(record)
            return
        live = {f.future: seq for seq, f in self._inflight.items() if f.future is not None}
        if not live:
            raise _Diverged(min(self._inflight), "the ledger holds no outcome for it")
        done, _ = self.executor.wait(live)
        seq = min(live[f] for f in done)   # several done at once: the earliest dispatched first
        flight = self._inflight.pop(seq)
        record = flight.record
        self._settle(record, flight.future)
        self.busy_s += record.wall_s or 0.0
        self.ledger.finish(record)
        self._accept(record)

    def _retried(self, future: cf.Future, error: str) -> None:
        """The executor runs a candidate again after its worker died: record the death."""
        for flight in self._inflight.values():
            if flight.future is future:
                self.ledger.note_failure(flight.record, error)

    def _settle(self, record: Record, future: cf.Future) -> None:
        """Fill ``record`` with the outcome of ``future`` (a result or a failure)."""
        record.done = self._next_done
        exc = future.exception()
        if isinstance(exc, (DataError, ConfigError)):
            # missing tables, a misconfigured evaluator: not this candidate's failure but every one's.
            # Stop; this candidate stays RUNNING in the ledger and runs again on --resume
            raise exc
        if exc is None:
            evaluation: Evaluation = future.result()
            metrics = dict(evaluation.result.metrics)
            value = metrics.get(self.evaluator.objective)
            record.wall_s = evaluation.wall_s
            if isinstance(value, (int, float)) and math.isfinite(value):
                record.state, record.value = "complete", float(value)
                record.metrics, record.cost_s = metrics, float(evaluation.result.cost_s)
                record.evaluation_info = dict(evaluation.result.info)
                return
            exc = ValueError(f"the result has no finite objective {self.evaluator.objective!r}")
        record.state, record.value, record.cost_s = "failed", None, 0.0
        record.error = f"{type(exc).__name__}: {exc}"

    def _accept(self, record: Record) -> None:
        """Tell the strategy and update the progress."""
        # the constrained metrics too, so that a multi-objective strategy can trade one off
        self.strategy.tell(record.arch, record.value, {**record.info.get("constraints", {}), **record.metrics})
        self.finished.append(record)
        self._next_done = max(self._next_done, record.done + 1)
        self.cost_s += record.cost_s or 0.0
        if record.state == "complete":
            self._failures_in_a_row = 0
            if self.best is None or record.value > self.best.value:
                self.best = record
        else:
            self._failures_in_a_row += 1
        for callback in self.callbacks:
            callback(record, self)
        if self._failures_in_a_row >= self.max_consecutive_failures:
            raise SearchAborted(f"{self._failures_in_a_row} evaluations failed in a row; "
                                f"the last: {record.error}")

    def _warm_start(self, diverged: _Diverged | None = None, retry: bool = False) -> None:
        """Continue from the recorded outcomes with a fresh strategy (no replay);
        with ``retry``, the failed candidates are queued to run again instead."""
        if diverged is not None:
            warnings.warn(f"the strategy did not replay the recorded search ({diverged}); continuing from "
                          f"the recorded outcomes instead (warm start)", RuntimeWarning, stacklevel=2)
        self.warm_started = True
        if not self.ledger.meta.get("warm_started"):
            self.ledger.update_meta(warm_started=True)
        futures = {seq: f.future for seq, f in self._inflight.items() if f.future is not None}
        records = self.ledger.records()
        failed = [r for r in records if r.state == "failed"] if retry else []
        again = {r.seq for r in failed}
        self.strategy = self.strategy.fresh()
        self._tell_known_metrics(self.strategy, getattr(self, "_known_metrics", None))
        self.finished, self.best, self.cost_s = [], None, 0.0
        self._failures_in_a_row = self._next_done = 0
        for record in sorted((r for r in records if r.finished and r.seq not in again), key=lambda r: r.done):
            self._accept(record)
        running = [r for r in records if not r.finished]
        self.strategy.reserve(r.arch for r in running + failed)
        self._retry = deque(failed)
        self._inflight = {}
        for record in running:
            future = futures.get(record.seq)
            if future is None:
                self.ledger.restart(record)
                future = self._submit(record.arch)
            self._inflight[record.seq] = _Flight(record, future)
        self._recorded, self._log = {}, deque()
        self._next_seq = max((r.seq for r in records), default=-1) + 1
