"""Executors on this machine: in the calling process (one slot) or on a pool
of worker processes. ``local`` picks one of them by the number of workers."""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import signal
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Mapping

from ..registry import EXECUTORS
from .base import Executor


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


@EXECUTORS.register("process")
class ProcessExecutor(Executor):
    """A pool of ``workers`` processes (spawned: no state leaks from the driver).

    If a worker dies, the futures then in flight fail with
    ``BrokenProcessPool`` and the next ``submit`` starts a fresh pool.

    Workers ignore SIGINT: Ctrl-C in a terminal signals the whole process
    group, and the driver alone handles it (``flownas: interrupted``); its
    ``shutdown(cancel=True)`` then ends the workers, whose candidates stay
    RUNNING in the ledger and run again on resume.
    """

    def __init__(self, workers: int = 2):
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        self.workers = workers
        self._pool: cf.ProcessPoolExecutor | None = None

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                      initializer=_ignore_sigint)

    def submit(self, fn: Callable[..., Any], /, *args: Any,
               resources: Mapping[str, float] | None = None, **kwargs: Any) -> cf.Future:
        with _sigint_blocked():   # the pool spawns its workers here: they start with SIGINT held off
            if self._pool is None:
                self._pool = self._new_pool()
            try:
                return self._pool.submit(fn, *args, **kwargs)
            except BrokenProcessPool:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._new_pool()
                return self._pool.submit(fn, *args, **kwargs)

    def shutdown(self, cancel: bool = False) -> None:
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
def local(workers: int = 1) -> Executor:
    """This machine: in-process for one worker, a process pool for several."""
    return InlineExecutor() if workers == 1 else ProcessExecutor(workers)
