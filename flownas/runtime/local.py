"""Executors on this machine: in the calling process (one slot) or on a pool
of worker processes. ``local`` picks one of them by the number of workers."""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
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
    """

    def __init__(self, workers: int = 2):
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        self.workers = workers
        self._pool: cf.ProcessPoolExecutor | None = None

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))

    def submit(self, fn: Callable[..., Any], /, *args: Any,
               resources: Mapping[str, float] | None = None, **kwargs: Any) -> cf.Future:
        if self._pool is None:
            self._pool = self._new_pool()
        try:
            return self._pool.submit(fn, *args, **kwargs)
        except BrokenProcessPool:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            return self._pool.submit(fn, *args, **kwargs)

    def shutdown(self, cancel: bool = False) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=not cancel, cancel_futures=cancel)
            self._pool = None


@EXECUTORS.register("local")
def local(workers: int = 1) -> Executor:
    """This machine: in-process for one worker, a process pool for several."""
    return InlineExecutor() if workers == 1 else ProcessExecutor(workers)
