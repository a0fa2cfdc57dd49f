"""Executors on this machine: in the calling process (one slot) or on a pool
of worker processes. ``local`` picks one of them by the number of workers."""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import signal
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from ..registry import EXECUTORS
from .base import Executor, WorkerLost


@EXECUTORS.register("inline")
class InlineExecutor(Executor):
    """Runs each function when it is submitted, in this process: one slot,
    no pickling, the same order every time (the reference for determinism)."""

    workers = 1

    def submit(self, fn: Callable[..., Any], /, *args: Any,
               resources: Mapping[str, float] | None = None, **kwargs: Any) -> cf.Future:
        future: cf.Future = cf.Future()
        future.set_running_or_notify_cancel()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:  # the caller reads it from the future, as with a pool
            future.set_exception(exc)
        return future


@dataclass(eq=False)
class _Task:
    """One submitted call: the future handed out, and how often a worker died running it alone."""

    fn: Callable[..., Any]
    args: tuple
    kwargs: dict
    future: cf.Future = field(default_factory=cf.Future)
    deaths: int = 0


@EXECUTORS.register("process")
class ProcessExecutor(Executor):
    """A pool of ``workers`` processes (spawned: no state leaks from the driver).

    When a worker dies (a crash, an OOM kill) the pool breaks and every call
    in flight fails with it, though only one killed it. So each of them runs
    again, alone: a death counts against a call only when it ran alone, and
    one that killed its worker alone more than ``max_retries`` times fails
    with ``WorkerLost`` (Ray's rule). The others are not failed for it. Every
    run again is reported through ``on_retry``; new calls wait meanwhile.

    Workers ignore SIGINT: Ctrl-C in a terminal signals the whole process
    group, and the driver alone handles it (``flownas: interrupted``); its
    ``shutdown(cancel=True)`` then ends the workers, whose candidates stay
    RUNNING in the ledger and run again on resume.
    """

    def __init__(self, workers: int = 2, max_retries: int = 2):
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        if not isinstance(max_retries, int) or isinstance(max_retries, bool) or max_retries < 0:
            raise ValueError(f"max_retries must be an integer >= 0, got {max_retries!r}")
        self.workers = workers
        self.max_retries = max_retries
        self._pool: cf.ProcessPoolExecutor | None = None
        self._running: dict[cf.Future, _Task] = {}   # the pool's future -> its task
        self._suspects: list[_Task] = []   # in flight when the pool broke: each runs again alone
        self._alone: _Task | None = None   # the suspect running now, alone
        self._waiting: list[_Task] = []    # submitted while suspects run

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                      initializer=_ignore_sigint)

    def submit(self, fn: Callable[..., Any], /, *args: Any,
               resources: Mapping[str, float] | None = None, **kwargs: Any) -> cf.Future:
        task = _Task(fn, args, kwargs)
        task.future.set_running_or_notify_cancel()
        if self._suspects or self._alone is not None:
            self._waiting.append(task)
        else:
            self._start(task)
        return task.future

    def _start(self, task: _Task) -> None:
        with _sigint_blocked():   # the pool spawns its workers here: they start with SIGINT held off
            if self._pool is None:
                self._pool = self._new_pool()
            try:
                inner = self._pool.submit(task.fn, *task.args, **task.kwargs)
            except BrokenProcessPool:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._new_pool()
                inner = self._pool.submit(task.fn, *task.args, **task.kwargs)
        self._running[inner] = task

    def wait(self, futures: Iterable[cf.Future], timeout: float | None = None
             ) -> tuple[set[cf.Future], set[cf.Future]]:
        return self._wait_collecting(futures, timeout, self._collect)

    def _collect(self, futures: set[cf.Future], seconds: float | None) -> bool:
        if not self._running:
            return False
        finished, _ = cf.wait(list(self._running), timeout=seconds, return_when=cf.FIRST_COMPLETED)
        if any(isinstance(inner.exception(), BrokenProcessPool) for inner in finished):
            self._broken()
        else:
            for inner in finished:
                self._resolve(inner)
        self._dispatch()
        return True

    def _resolve(self, inner: cf.Future) -> None:
        task = self._running.pop(inner)
        if task is self._alone:
            self._alone = None
        if inner.exception() is not None:
            task.future.set_exception(inner.exception())
        else:
            task.future.set_result(inner.result())

    def _broken(self) -> None:
        """A worker died, and the pool with it: what finished before is kept; every
        other call in flight is a suspect, and a death counts against one that ran alone."""
        for inner in list(self._running):
            if inner.done() and not isinstance(inner.exception(), BrokenProcessPool):
                self._resolve(inner)
        suspects = list(self._running.values())
        self._running.clear()
        self._alone = None
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None
        for task in suspects:
            if len(suspects) == 1:
                task.deaths += 1
            if task.deaths > self.max_retries:
                task.future.set_exception(WorkerLost(
                    f"its worker process died each time it ran alone ({task.deaths} times)"))
                continue
            if self.on_retry is not None:
                self.on_retry(task.future, "WorkerLost: its worker process died" if len(suspects) == 1 else
                              "WorkerLost: a worker process died while it ran beside others (runs again alone)")
            self._suspects.append(task)

    def _dispatch(self) -> None:
        """Suspects run one at a time, with nothing beside them; then the calls that waited."""
        if self._running:
            return
        if self._suspects:
            self._alone = self._suspects.pop(0)
            self._start(self._alone)
            return
        while self._waiting:
            self._start(self._waiting.pop(0))

    def shutdown(self, cancel: bool = False) -> None:
        if cancel:
            self._alone = None
            for task in [*self._running.values(), *self._suspects, *self._waiting]:
                task.future.set_exception(cf.CancelledError("cancelled by shutdown"))
            self._suspects.clear()
            self._waiting.clear()
        else:
            while self._running or self._suspects or self._waiting:
                self.wait([t.future for t in [*self._running.values(), *self._suspects, *self._waiting]])
        if self._pool is None:
            return
        pool, self._pool = self._pool, None
        if not cancel:
            pool.shutdown(wait=True)
            return
        # the workers ignore SIGINT and would finish their evaluations (the interpreter's exit
        # waits for them): end them now; their candidates are left to run again on resume
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            with contextlib.suppress(Exception):
                process.terminate()
        for process in processes:
            with contextlib.suppress(Exception):
                process.join(5)
        self._running.clear()


def _ignore_sigint() -> None:
    """Pool initializer: a worker leaves Ctrl-C to the driver (no traceback per worker)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@contextlib.contextmanager
def _sigint_blocked():
    """Hold SIGINT off this thread while worker processes may be spawned: a child
    inherits the mask, so a Ctrl-C during its start-up (before ``_ignore_sigint``)
    stays pending and is then discarded, instead of a KeyboardInterrupt traceback.
    The driver gets a Ctrl-C that arrived meanwhile as soon as the mask is restored."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@EXECUTORS.register("local")
def local(workers: int = 1, max_retries: int = 2) -> Executor:
    """This machine: in-process for one worker, a process pool for several
    (``max_retries``: how often a call whose worker died runs again)."""
    return InlineExecutor() if workers == 1 else ProcessExecutor(workers, max_retries)
