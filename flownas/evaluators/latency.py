"""Latency of a candidate: measured on the local device, or looked up in the
HELP latency tables of the benchmarks (NB201: 27 device settings; FBNet: 27;
OFA MobileNetV3: 12).

Both evaluators maximise ``neg_latency_ms`` (= -``latency_ms``), so that a
search prefers fast networks; as a constraint or second objective read
``latency_ms`` itself.
"""
from __future__ import annotations

import time
from typing import Any, Mapping

from ..arch import Architecture
from ..errors import ConfigError, NotInTableError
from ..registry import EVALUATORS
from .base import Evaluator, Result


@EVALUATORS.register("latency")
class LatencyEvaluator(Evaluator):
    """Forward latency of the built network on this machine: ``warmup``
    untimed passes, then the median of ``repeats`` timed passes of a batch of
    ``batch_size`` inputs of the space's ``input_shape``."""

    objective = "neg_latency_ms"

    def __init__(self, *, batch_size: int = 1, device: str = "cpu", warmup: int = 5, repeats: int = 20,
                 num_classes: int = 10, model_options: Mapping[str, Any] | None = None,
                 input_shape: tuple[int, ...] | None = None, num_threads: int | None = None):
        if batch_size < 1 or repeats < 1 or warmup < 0:
            raise ConfigError(f"latency needs batch_size >= 1, repeats >= 1 and warmup >= 0, got "
                              f"{batch_size}, {repeats}, {warmup}")
        from .training import check_device
        check_device(device, "latency device")
        self.batch_size = batch_size
        self.device = device
        self.warmup = warmup
        self.repeats = repeats
        self.num_classes = num_classes
        self.model_options = dict(model_options or {})
        self.input_shape = tuple(input_shape) if input_shape else None
        self.num_threads = num_threads

    def evaluate(self, arch: Architecture, fidelity: Any = None) -> Result:
        import torch

        from ..registry import get_space
        from .engine.latency import measure_latency
        from .engine.models import build_model
        from .training import torch_device

        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        start = time.perf_counter()
        model = build_model(arch, self.num_classes, self.model_options)
        shape = self.input_shape or _input_shape(arch, get_space(arch.space).input_shape)
        device = torch_device(self.device)
        timing = measure_latency(model, shape, batch_size=self.batch_size, device=device,
                                 warmup=self.warmup, repeats=self.repeats)
        metrics = {"latency_ms": timing["median_ms"], "neg_latency_ms": -timing["median_ms"],
                   "latency_min_ms": timing["min_ms"],
                   "throughput": 1e3 * self.batch_size / timing["median_ms"]}
        info = {"device": str(device), "batch_size": self.batch_size, "input_shape": shape, "repeats": self.repeats,
                "threads": torch.get_num_threads() if device.type == "cpu" else None}
        return Result(metrics=metrics, cost_s=time.perf_counter() - start, info=info)


def _input_shape(arch: Architecture, default: tuple[int, ...]) -> tuple[int, ...]:
    """The space's input shape at the architecture's own input resolution
    (an attribute of its input node, e.g. OFA MobileNetV3), if it has one."""
    for node in arch.attrs or ():
        if "resolution" in node:
            r = int(node["resolution"])
            return (default[0], r, r)
    return tuple(default)


def table_latency(arch: Architecture, device: str, table: str | None = None) -> float:
    """The recorded latency (ms) of ``arch`` on ``device`` (e.g. ``pixel3``,
    ``1080ti_32``, ``gold_6226``) from the named table, or else from the first
    table of the arch's space that records latencies."""
    from ..benchmarks.base import load_benchmark, tables_of
    names = [table] if table else tables_of(arch.space)
    for name in names:
        latencies = load_benchmark(name).query(arch).get("latency_ms")
        if latencies is None:
            continue
        if device not in latencies:
            raise ConfigError(f"{name} table has no latency device {device!r} "
                              f"(known: {', '.join(sorted(latencies))})")
        return float(latencies[device])
    raise NotInTableError(f"no latency table records {arch!r} (tables tried: {', '.join(names) or 'none'})")


@EVALUATORS.register("latency_table")
class TableLatencyEvaluator(Evaluator):
    """Latency of ``device`` from the HELP tables; a lookup, so ``cost_s`` is 0."""

    objective = "neg_latency_ms"

    def __init__(self, device: str, *, table: str | None = None):
        self.device = device
        self.table = table

    def check(self, space) -> None:
        """A table of ``space`` records latencies, on ``device``: a typo in the
        device, or a space no latency table covers, stops the search before it starts."""
        from ..benchmarks.base import load_benchmark, tables_of
        names = [self.table] if self.table else tables_of(space.name)
        for name in names:
            table = load_benchmark(name)
            latencies = table.query(table.archs()[0]).get("latency_ms")
            if latencies is None:
                continue
            if self.device not in latencies:
                raise ConfigError(f"latency_table: the {name} table has no latency device {self.device!r} "
                                  f"(known: {', '.join(sorted(latencies))})")
            return
        raise ConfigError(f"latency_table: no latency table covers space {space.name!r} (its tables: "
                          f"{', '.join(names) or 'none'}; tables with latencies: nb201, fbnet, ofa)")

    def evaluate(self, arch: Architecture, fidelity: Any = None) -> Result:
        ms = table_latency(arch, self.device, self.table)
        return Result(metrics={"latency_ms": ms, "neg_latency_ms": -ms}, cost_s=0.0,
                      info={"device": self.device, "source": "table"})
