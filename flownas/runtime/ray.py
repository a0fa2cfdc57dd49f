"""``RayExecutor``: each evaluation a Ray task, on this machine or a cluster.

``address`` names a running cluster (``"auto"``, ``"host:port"``, or a Ray
client URL ``"ray://host:10001"``); without one, a local Ray instance is
started (and stopped again by ``shutdown``). A process that has already
called ``ray.init`` keeps its connection: the executor uses it and leaves it
open. Ray is imported only here, when the executor first submits, so nothing
else in flownas pays for it.

Each task asks for ``num_cpus`` and ``num_gpus`` (fractions allowed: four
tasks of 0.25 GPU share one device); Ray sets ``CUDA_VISIBLE_DEVICES`` on the
worker. The function and its arguments (the evaluator, the architecture) are
pickled with every task, so evaluators hold configuration and load datasets
and tables on the worker (``flownas.evaluators.base``).

A task whose worker process or node died is submitted again, up to
``max_retries`` times; each such death is reported through ``on_retry`` (the
search loop writes it to the ledger) and the last one, when the retries are
spent, becomes the future's exception. Exceptions raised by the function
itself are not retried: they are the candidate's outcome, as on any other
executor. ``shutdown(cancel=True)`` (Ctrl-C, an aborted search) cancels the
tasks in flight, killing their worker processes.
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from ..errors import ConfigError, DataError, key_error
from ..registry import EXECUTORS
from .base import Executor, WorkerLost, check_max_retries

# the worker, its node or the result's copy was lost: the task itself did not fail
_WORKER_LOST = ("WorkerCrashedError", "NodeDiedError", "LocalRayletDiedError", "ObjectLostError",
                "OutOfMemoryError")
_WAIT_SLICE_S = 1.0   # ray.wait in slices, so Ctrl-C is seen between them


def _call(fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    """What a Ray worker runs: the submitted function. Missing data there is
    said to be the worker's: the driver's shell may well have FLOWNAS_DATA."""
    try:
        return fn(*args, **kwargs)
    except DataError as exc:
        import socket
        raise type(exc)(f"on the Ray worker on {socket.gethostname()}: {exc} (a node's workers see the environment "
                        f"its `ray start` ran in)") from None


@dataclass
class _Task:
    fn: Callable[..., Any]
    args: tuple
    kwargs: dict
    options: dict[str, Any]
    future: cf.Future = field(default_factory=cf.Future)
    attempts: int = 0


@EXECUTORS.register("ray")
class RayExecutor(Executor):
    """Evaluations as Ray tasks; ``workers`` of them in flight.

    ``local_cpus``/``local_gpus`` are the resources of a local instance this
    executor starts (default: what Ray detects); ``runtime_env`` is passed to
    ``ray.init`` (e.g. ``{"working_dir": "."}`` to ship the code to a cluster
    whose workers do not have flownas installed).

    The futures of ``submit`` are resolved inside ``wait`` (which also reruns
    the tasks of dead workers): wait on them, as ``SearchLoop`` does, before
    ``future.result()``.
    """

    def __init__(self, workers: int = 1, address: str | None = None, num_cpus: float = 1.0,
                 num_gpus: float = 0.0, max_retries: int = 2, local_cpus: int | None = None,
                 local_gpus: int | None = None, runtime_env: dict | None = None):
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        for name, value in (("num_cpus", num_cpus), ("num_gpus", num_gpus)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        if num_gpus > 1 and num_gpus != int(num_gpus):
            raise ValueError(f"num_gpus above 1 must be a whole number (Ray's rule), got {num_gpus}")
        check_max_retries(max_retries)
        self.workers = workers
        self.address = address
        self.on_this_machine = address is None   # an instance of its own; a cluster's nodes have their own disks
        if address is not None and not _address_form(address):
            hint = " (leave it out for an instance of its own)" if address == "local" else ""
            raise key_error("executor.address", f"{address!r} is not auto, HOST:PORT or ray://HOST:PORT{hint}")
        # Ray itself retries a wrong host:port for minutes: check now, before a run directory or --check says yes
        unreachable = _unreachable(address) if address is not None else None
        if unreachable:
            raise self._no_cluster(unreachable)
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.max_retries = max_retries
        self.local_cpus = local_cpus
        self.local_gpus = local_gpus
        self.runtime_env = runtime_env
        self._tasks: dict[Any, _Task] = {}    # ObjectRef -> the task it computes
        self._remote = None
        self._owns_ray = False

    # -- connection --------------------------------------------------------
    def _connect(self):
        import ray
        if self._remote is not None:
            return ray
        if not ray.is_initialized():
            options: dict[str, Any] = {"logging_level": logging.WARNING, "runtime_env": self.runtime_env}
            if self.address is None:   # "local": a new instance, even beside a `ray start` cluster of this machine
                options.update(address="local", num_cpus=self.local_cpus, num_gpus=self.local_gpus,
                               include_dashboard=False)
            else:
                options["address"] = self.address
                _token_auth_if_available()
            with _keeping_sigterm():
                try:
                    ray.init(**options)
                except ConnectionError as exc:
                    raise self._no_cluster(_first_line(exc)) from None
            self._owns_ray = self.address is None
        self._check_resources(ray.cluster_resources())
        self._remote = ray.remote(max_retries=0, retry_exceptions=False)(_call)
        return ray

    def check(self) -> None:
        """Connect to the cluster ``address`` names and compare each evaluation's
        ``num_cpus``/``num_gpus`` with what it has; then disconnect (a check
        leaves a connection it found open). Without an address, compare them
        with the instance this executor would start, without starting it."""
        if self.address is None:
            self._check_local_resources()
            return
        import ray
        connected_before = ray.is_initialized()
        try:
            self._connect()
        finally:
            self._remote = None
            if not connected_before and ray.is_initialized():
                ray.shutdown()

    def _no_cluster(self, reason: str) -> ConfigError:
        return key_error("executor.address", f"no Ray cluster at {self.address!r}: {reason} (start one with "
                                             f"`ray start --head`; a cluster with token authentication needs its "
                                             f"token here: ~/.ray/auth_token or RAY_AUTH_TOKEN)")

    def _check_resources(self, available: Mapping[str, float], has: str = "the Ray cluster has",
                         sources: Mapping[str, str] | None = None) -> None:
        """A task asking for more than the cluster has would wait forever: say so now."""
        for key, name in (("num_gpus", "GPU"), ("num_cpus", "CPU")):
            wanted, have = getattr(self, key), available.get(name, 0)
            if wanted > have:
                source = (sources or {}).get(name, "ray.cluster_resources()")
                raise ConfigError(f"executor.{key}: each evaluation asks for {wanted:g} {name}s, but {has} "
                                  f"{have:g} ({source})")

    def _check_local_resources(self) -> None:
        """The CPUs and GPUs ``ray.init`` would give an instance of its own:
        ``local_cpus``/``local_gpus``, or what this process may use (as Ray counts them)."""
        cpus, cpu_source = self.local_cpus, "local_cpus"
        if cpus is None:
            cpu_source = "the CPUs this process may use"
            try:   # as Ray counts them: container CPU limits included
                from ray._private.utils import get_num_cpus
                cpus = get_num_cpus()
            except Exception:   # noqa: BLE001 - a private function: any change of Ray's falls back
                cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        gpus, gpu_source = self.local_gpus, "local_gpus"
        if gpus is None:
            import torch
            gpus, gpu_source = torch.cuda.device_count(), "the GPUs torch sees"   # CUDA_VISIBLE_DEVICES, as Ray
        self._check_resources({"CPU": cpus, "GPU": gpus}, "Ray's instance on this machine would have",
                              {"CPU": cpu_source, "GPU": gpu_source})

    # -- the Executor interface ---------------------------------------------
    def submit(self, fn: Callable[..., Any], /, *args: Any,
               resources: Mapping[str, float] | None = None, **kwargs: Any) -> cf.Future:
        self._connect()
        task = _Task(fn, args, kwargs, {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus, **(resources or {})})
        task.future.set_running_or_notify_cancel()
        self._launch(task)
        return task.future

    def _launch(self, task: _Task) -> None:
        try:
            ref = self._remote.options(**task.options).remote(task.fn, task.args, task.kwargs)
        except TypeError as exc:   # Ray's error for what cloudpickle cannot serialize
            raise ConfigError(f"{getattr(task.fn, '__name__', task.fn)} and its arguments cannot be sent to "
                              f"Ray workers (evaluators must be picklable): {_first_line(exc)}") from None
        task.attempts += 1
        self._tasks[ref] = task

    def wait(self, futures: Iterable[cf.Future], timeout: float | None = None
             ) -> tuple[set[cf.Future], set[cf.Future]]:
        return self._wait_collecting(futures, timeout, self._collect_ready)

    def _collect_ready(self, futures: set[cf.Future], seconds: float | None) -> bool:
        """Resolve the tasks of ``futures`` that finish within ``seconds`` (one
        slice at most, so Ctrl-C is seen between slices)."""
        refs = [ref for ref, task in self._tasks.items() if task.future in futures]
        if not refs:
            return False
        import ray
        slice_s = _WAIT_SLICE_S if seconds is None else min(_WAIT_SLICE_S, seconds)
        ready, rest = ray.wait(refs, num_returns=1, timeout=slice_s)
        if ready and rest:   # collect everything done by now in one pass
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        for ref in ready:
            self._collect(ref)
        return True

    def _collect(self, ref) -> None:
        """Resolve the future of a finished task, or run the task again if its worker died."""
        import ray
        from ray.exceptions import RayTaskError
        task = self._tasks.pop(ref)
        try:
            value = ray.get(ref)
        except RayTaskError as exc:   # the function raised: its own exception is the outcome
            cause = exc.cause if isinstance(exc.cause, BaseException) else exc
            task.future.set_exception(cause)
        except Exception as exc:
            if type(exc).__name__ not in _WORKER_LOST:
                task.future.set_exception(exc)
                return
            error = f"{type(exc).__name__}: {_first_line(exc)}"
            if task.attempts > self.max_retries:
                task.future.set_exception(WorkerLost(f"the worker died in each of {task.attempts} attempts; "
                                                     f"the last: {error}"))
                return
            if self.on_retry is not None:
                self.on_retry(task.future, error)
            self._launch(task)
        else:
            task.future.set_result(value)

    def shutdown(self, cancel: bool = False) -> None:
        if self._remote is None and not self._owns_ray:
            return
        import ray
        if cancel:
            for ref, task in list(self._tasks.items()):
                ray.cancel(ref, force=True)   # kills the worker: training code need not look for a flag
                task.future.set_exception(cf.CancelledError("cancelled by shutdown"))
            self._tasks.clear()
        while self._tasks:
            self.wait([task.future for task in self._tasks.values()])
        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False
        self._remote = None

    def __repr__(self) -> str:
        where = self.address or "local"
        return (f"<RayExecutor workers={self.workers} address={where} num_cpus={self.num_cpus} "
                f"num_gpus={self.num_gpus} max_retries={self.max_retries}>")


def _token_auth_if_available() -> None:
    """Authenticate with a token when one exists and RAY_AUTH_MODE is unset, as
    ``ray start`` does: clusters it starts (Ray >= 2.52) require the token
    (``~/.ray/auth_token``, ``RAY_AUTH_TOKEN`` or ``RAY_AUTH_TOKEN_PATH``)."""
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available)
    except ImportError:   # a Ray without token authentication
        return
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def _address_form(address: Any) -> bool:
    """``auto``, ``HOST:PORT`` or ``ray://HOST:PORT`` (an IPv6 host in brackets)."""
    if address == "auto":
        return True
    if not isinstance(address, str):
        return False
    scheme, _, rest = address.rpartition("://")
    host, _, port = rest.rpartition(":")
    plain_host = bool(host) and (":" not in host or host.startswith("[") and host.endswith("]"))
    return scheme in ("", "ray") and plain_host and port.isdigit()


def _unreachable(address: str, timeout_s: float = 10.0) -> str | None:
    """Why nothing answers at a ``host:port`` or ``ray://host:port`` address
    (None when something does, or for ``auto``, which Ray resolves itself)."""
    import socket
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not port.isdigit():
        return None
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s).close()
    except OSError as exc:
        return f"nothing answers at {host or '127.0.0.1'}:{port} ({exc.strerror or exc})"
    return None


@contextlib.contextmanager
def _keeping_sigterm():
    """``ray.init`` installs a SIGTERM handler in the driver that exits at once
    (exit 1, no flownas line); keep the one the command installed, so that a
    batch scheduler's stop ends the search as Ctrl-C does."""
    import signal
    import threading
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
