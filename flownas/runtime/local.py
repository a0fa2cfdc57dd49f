"""Executors on this machine: in the calling process (one slot) or on a pool
of worker processes. ``local`` picks one of them by the number of workers."""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import itertools
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import threading
import weakref
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from ..errors import ConfigError
from ..registry import EXECUTORS
from .base import Executor, WorkerLost, check_max_retries


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
    """One submitted call: the future handed out, and how often it killed its worker."""

    id: int
    fn: Callable[..., Any]
    args: tuple
    kwargs: dict
    future: cf.Future = field(default_factory=cf.Future)
    deaths: int = 0


@EXECUTORS.register("process")
class ProcessExecutor(Executor):
    """A pool of ``workers`` processes (spawned: no state leaks from the driver).

    When a worker dies (a crash, an OOM kill) the pool breaks and every call
    in flight fails with it, though one killed it. Each call notes its worker's
    pid when it starts, so the one whose worker died is known: that death
    counts against it, and the others run again as they were, in a fresh pool.
    A call that killed its worker more than ``max_retries`` times fails with
    ``WorkerLost`` (Ray's rule). Where the dead worker's call is not known (it
    died before noting its pid, or was ended by a signal like the pool's own
    SIGTERM), each call in flight runs again alone, nothing beside it, and a
    death counts against one that ran alone. Every rerun is reported through
    ``on_retry``. Outcomes resolve the futures as they come; a broken pool is
    dealt with inside ``wait`` (as in ``SearchLoop``, which waits on them).

    Workers ignore SIGINT: Ctrl-C in a terminal signals the whole process
    group, and the driver alone handles it (``flownas: interrupted``); its
    ``shutdown(cancel=True)`` then ends the workers, whose candidates stay
    RUNNING in the ledger and run again on resume.
    """

    def __init__(self, workers: int = 2, max_retries: int = 2):
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        check_max_retries(max_retries)
        self.workers = workers
        self.max_retries = max_retries
        self._pool: cf.ProcessPoolExecutor | None = None
        # the pool's thread resolves outcomes, and a caller's done-callback may submit from there: one
        # re-entrant lock guards the executor's state
        self._lock = threading.RLock()
        self._running: dict[cf.Future, _Task] = {}   # the pool's future -> its task
        self._suspects: list[_Task] = []   # in flight when the pool broke, no culprit known: each runs alone
        self._alone: _Task | None = None   # the suspect running now, alone
        self._waiting: list[_Task] = []    # submitted while suspects run
        self._ids = itertools.count()
        self._pids: str | None = None      # a folder where each call notes its worker's pid

    def check_sendable(self, *objects: Any) -> None:
        _check_importable(*objects, deep=True)

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                      initializer=_ignore_sigint)

    def submit(self, fn: Callable[..., Any], /, *args: Any,
               resources: Mapping[str, float] | None = None, **kwargs: Any) -> cf.Future:
        _check_importable(fn, *args, *kwargs.values())
        task = _Task(next(self._ids), fn, args, kwargs)
        task.future.set_running_or_notify_cancel()
        with self._lock:
            self._waiting.append(task)
            self._dispatch()
        return task.future

    def _start(self, task: _Task) -> bool:
        """Submit ``task`` to the pool; False if the pool broke with calls in it (``wait`` sees to them)."""
        with _sigint_blocked():   # the pool spawns its workers here: they start with SIGINT held off
            for _ in range(2):
                if self._pool is None:
                    self._pool = self._new_pool()
                    if self._pids is None:
                        self._pids = tempfile.mkdtemp(prefix="flownas-pids-")
                        weakref.finalize(self, shutil.rmtree, self._pids, True)   # never shut down: still removed
                try:
                    inner = self._pool.submit(_noting_pid, self._pids, task.id, task.fn, task.args, task.kwargs)
                    break
                except BrokenProcessPool:   # a worker died since the last wait
                    with self._lock:
                        if self._running:
                            return False
                    self._pool.shutdown(wait=False, cancel_futures=True)   # it held no call: just replace it
                    self._pool = None
        with self._lock:
            self._running[inner] = task
        inner.add_done_callback(self._outcome)
        return True

    def _outcome(self, inner: cf.Future) -> None:
        """Resolve a call's future as soon as it has an outcome (in the pool's thread); a
        broken pool is left to ``wait``, which knows what runs again."""
        if isinstance(inner.exception(), BrokenProcessPool):
            return
        with self._lock:
            task = self._running.pop(inner, None)
        if task is None:   # cancelled by shutdown
            return
        if inner.exception() is not None:
            task.future.set_exception(inner.exception())
        else:
            task.future.set_result(inner.result())

    def wait(self, futures: Iterable[cf.Future], timeout: float | None = None
             ) -> tuple[set[cf.Future], set[cf.Future]]:
        return self._wait_collecting(futures, timeout, self._collect)

    def _collect(self, futures: set[cf.Future], seconds: float | None) -> bool:
        with self._lock:
            running = list(self._running)
            own = {t.future for t in [*self._running.values(), *self._waiting, *self._suspects]}
        if not own & futures:
            return False
        cf.wait(running, timeout=seconds, return_when=cf.FIRST_COMPLETED)
        if any(f.done() and isinstance(f.exception(), BrokenProcessPool) for f in running):
            self._broken()
        self._dispatch()
        return True

    def _broken(self) -> None:
        """A worker died, and the pool with it. The call whose worker died (by the
        pids the calls noted, and the exit codes) is charged with the death; the
        others in flight run again as they were. No culprit known: each runs alone."""
        pool, self._pool = self._pool, None
        with self._lock:
            running = list(self._running)
        cf.wait(running, timeout=30)   # the pool fails every call in it at once; let it finish doing so
        processes = dict(getattr(pool, "_processes", None) or {})
        for process in processes.values():   # the pool ends the live ones (SIGTERM): their exit codes come soon
            with contextlib.suppress(Exception):
                process.join(2)
        crashed = {pid for pid, process in processes.items() if process.exitcode not in (None, 0, -signal.SIGTERM)}
        with self._lock:   # the state, as the pool's thread may submit meanwhile
            # calls that finished before the break keep their outcomes (their callbacks)
            broken = [f for f in self._running if f.done() and isinstance(f.exception(), BrokenProcessPool)]
            in_flight = [self._running.pop(f) for f in broken]
            pool.shutdown(wait=False, cancel_futures=True)
            pids = {t.id: _noted_pid(self._pids, t.id) for t in in_flight}
            for task in in_flight:   # a rerun notes its new pid: an old note must not charge it
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(self._pids, str(task.id)))
            culprits = [t for t in in_flight if pids[t.id] in crashed]
            alone = self._alone in in_flight and len(in_flight) == 1
            self._alone = None
            if alone:
                culprits = in_flight
            # the dead worker is known (a call's, or one that ran none of these): all rerun at once
            known = bool(culprits) or bool(crashed - set(pids.values()))
            again, notes = [], []
            for task in in_flight:
                if task in culprits:
                    task.deaths += 1
                    if task.deaths > self.max_retries:
                        task.future.set_exception(WorkerLost(f"its worker process died each time it ran "
                                                             f"({task.deaths} times)"))
                        continue
                    notes.append((task, "WorkerLost: its worker process died"))
                elif known:
                    notes.append((task, "WorkerLost: another worker process died and the pool with it "
                                        "(runs again)"))
                else:
                    notes.append((task, "WorkerLost: a worker process died while it ran beside others "
                                        "(runs again alone)"))
                (again if known else self._suspects).append(task)
            self._waiting[:0] = again   # before anything submitted since
        for task, reason in notes:   # after the calls are queued: a raising on_retry loses none
            if self.on_retry is not None:
                self.on_retry(task.future, reason)

    def _dispatch(self) -> None:
        """Suspects run one at a time, with nothing beside them; else what waits, up to ``workers``."""
        with self._lock:
            if self._alone is not None and self._alone.future.done():
                self._alone = None
            if self._alone is not None:
                return
            if self._suspects:
                if self._running:
                    return
                self._alone = self._suspects.pop(0)
                if not self._start(self._alone):
                    self._suspects.insert(0, self._alone)
                    self._alone = None
                return
            while self._waiting and len(self._running) < self.workers:
                task = self._waiting.pop(0)   # taken first: a start may run callbacks that submit
                if not self._start(task):
                    self._waiting.insert(0, task)
                    return   # the pool broke: the next wait deals with it

    def shutdown(self, cancel: bool = False) -> None:
        if cancel:
            self._alone = None
            with self._lock:
                running = list(self._running.values())
                self._running.clear()
            for task in [*running, *self._suspects, *self._waiting]:
                if not task.future.done():
                    task.future.set_exception(cf.CancelledError("cancelled by shutdown"))
            self._suspects.clear()
            self._waiting.clear()
        else:
            while True:
                with self._lock:
                    pending = [t.future for t in self._running.values()]
                pending += [t.future for t in [*self._suspects, *self._waiting]]
                if not pending:
                    break
                self.wait(pending)
        if self._pids is not None:
            shutil.rmtree(self._pids, ignore_errors=True)
            self._pids = None
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


def _check_importable(*objects: Any, deep: bool = False) -> None:
    """Spawned workers find a class or function by its module: one defined in an
    interactive session (a notebook cell, ``python -c``) is not there, and each
    worker would fail to read the call (an unpickling error per candidate).
    ``deep``: also what the objects hold (their pickle's references)."""
    main = sys.modules.get("__main__")
    if main is None or getattr(main, "__file__", None):
        return
    for obj in objects:
        owner = obj if callable(obj) and hasattr(obj, "__qualname__") else type(obj)
        name = owner.__qualname__ if getattr(owner, "__module__", None) == "__main__" else None
        if name is None and deep:
            name = _main_reference(obj)
        if name is not None:
            raise ConfigError(f"{name} is defined in an interactive session (a notebook): worker "
                              f"processes cannot import it; define it in a module file and import it from there, "
                              f"or search with one worker")


def _main_reference(obj: Any) -> str | None:
    """The first ``__main__`` name ``obj``'s pickle refers to (its opcodes are read, not run)."""
    import pickle
    import pickletools
    try:
        data = pickle.dumps(obj)
    except Exception:   # noqa: BLE001 - not picklable at all: the pool says so itself
        return None
    strings, memo, top = [], [], None   # the strings pushed, the memo, the string just pushed
    for op, arg, _ in pickletools.genops(data):
        pushed = None
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
            pushed = arg
        elif op.name in ("BINGET", "LONG_BINGET") and arg < len(memo):
            pushed = memo[arg]
        elif op.name == "MEMOIZE":
            memo.append(top)
            continue   # the stack's top is unchanged
        elif op.name == "GLOBAL" and str(arg).startswith("__main__ "):
            return str(arg).split(" ", 1)[1]
        elif op.name == "STACK_GLOBAL" and len(strings) >= 2 and strings[-2] == "__main__":
            return strings[-1]
        if pushed is not None:
            strings.append(pushed)
        top = pushed
    return None


def _noting_pid(folder: str, task_id: int, fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    """What a worker runs: the call, after noting which process runs it (written before
    the call starts, so a worker that dies in it is known by its pid)."""
    with open(os.path.join(folder, str(task_id)), "w") as fh:
        fh.write(str(os.getpid()))
    return fn(*args, **kwargs)


def _noted_pid(folder: str | None, task_id: int) -> int | None:
    try:
        with open(os.path.join(folder or "", str(task_id))) as fh:
            return int(fh.read())
    except (OSError, ValueError):
        return None


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
    check_max_retries(max_retries)   # a single worker never retries, but a bad value is still one
    return InlineExecutor() if workers == 1 else ProcessExecutor(workers, max_retries)
