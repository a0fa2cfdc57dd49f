"""Cheap experts from the benchmark tables: low-fidelity signals of an
architecture, as {signal: value}, for multi-fidelity search and DELE.

* NB201 (table ``nb201``): ``acc_12`` (validation accuracy of the separate
  12-epoch run on the chosen dataset; for cifar10 the cifar10-valid run, on
  the training half), ``test_acc_12`` (test accuracy of a 12-epoch run; for
  cifar10 a second run, on the whole training set), ``params`` (M) and
  ``naswot`` (NASWOT score, missing for 341 cells); ``params`` and ``naswot``
  cost no training (``ZERO_COST``);
* NB101 (table ``nb101``, once installed): ``acc_4``, ``acc_12``, ``acc_36``
  (CIFAR-10 validation accuracy of the 4/12/36-epoch runs) and ``params``;
* TransNAS-Bench-101 micro and macro (table ``transnas``; the dataset is the
  Taskonomy task, e.g. ``class_scene``): per task, the network's ``params``
  (M) and ``flops`` (M) with that task's head, and the zero-cost proxies of
  the table computed on that task (``naswot``, ``snip``, ``fisher``,
  ``grad_norm``, ``grasp``, ``jacov``, ``l2_norm``, ``plain``); all cost no
  training. The table's ``epe_nas`` is left out: it is missing for all but
  part of jigsaw.

A per-dataset signal can be read from another dataset with ``@``:
``acc_12@cifar100`` is the 12-epoch accuracy on CIFAR-100 whatever the
dataset searched (a cell that learns one dataset well tends to learn the
others: these runs are more low-fidelity experts for DELE).

A signal the table lacks for an architecture is ``None``.
"""
from __future__ import annotations

import functools
import statistics
from typing import Any, Iterable

from ..arch import Architecture
from ..benchmarks.transnas import TASK_METRICS
from ..errors import ConfigError
from ..registry import EVALUATORS
from .base import Evaluator, Result

# TransNAS signal -> column of a task's record
_TRANSNAS_COLUMNS = {"params": "params_m", "flops": "flops_m", "naswot": "zc_nwot", "snip": "zc_snip",
                     "fisher": "zc_fisher", "grad_norm": "zc_grad_norm", "grasp": "zc_grasp", "jacov": "zc_jacov",
                     "l2_norm": "zc_l2_norm", "plain": "zc_plain"}
# a TransNAS record nests its metrics per task: a field is the path tasks/TASK/COLUMN
_TRANSNAS = ("transnas", {name: {task: f"tasks/{task}/{column}" for task in TASK_METRICS}
                          for name, column in _TRANSNAS_COLUMNS.items()})

# space -> (table, {signal: field of the table record or a per-dataset mapping})
SIGNALS: dict[str, tuple[str, dict[str, Any]]] = {
    "nb201": ("nb201", {
        "acc_12": {"cifar10": "c10_valid_val_acc_12", "cifar100": "c100_val_acc_12",
                   "ImageNet16-120": "in16_val_acc_12"},
        "test_acc_12": {"cifar10": "c10_test_acc_12", "cifar100": "c100_test_acc_12",
                        "ImageNet16-120": "in16_test_acc_12"},
        "params": "params_m_c10",
        "naswot": "naswot_score",
    }),
    "nb101": ("nb101", {"acc_4": "val_acc_4", "acc_12": "val_acc_12", "acc_36": "val_acc_36", "params": "params"}),
    "transnas_micro": _TRANSNAS,
    "transnas_macro": _TRANSNAS,
}
# epochs of the run behind each accuracy signal (for the simulated cost)
EPOCHS = {"acc_4": 4, "acc_12": 12, "test_acc_12": 12, "acc_36": 36}
#: signals that need no training: read off the network (params) or one
#: forward pass of it at initialization (NASWOT); the others are trainings
ZERO_COST = ("params", "naswot", *_TRANSNAS_COLUMNS)


def zero_cost_signals(space: str) -> tuple[str, ...]:
    """The space's table signals that cost no training (``ZERO_COST``)."""
    return tuple(s for s in signal_names(space) if s in ZERO_COST)


def signal_names(space: str) -> tuple[str, ...]:
    if space not in SIGNALS:
        raise ConfigError(f"no low-fidelity table signals for space {space!r} (known: {', '.join(SIGNALS)})")
    return tuple(SIGNALS[space][1])


def every_signal(space: str, dataset: str = "cifar10") -> tuple[str, ...]:
    """Every low-fidelity column of the space's table for ``dataset``: its
    signals, then each per-dataset one on the other datasets (``name@other``)."""
    names = list(signal_names(space))
    for name, spec in SIGNALS[space][1].items():
        if isinstance(spec, dict):
            names += [f"{name}@{other}" for other in spec if other != dataset]
    return tuple(names)


def check_signals(space: str, names: Iterable[str] | None, dataset: str = "cifar10") -> tuple[str, ...]:
    """``names`` (default: all of the space's signals), checked against the
    space and ``dataset``; two names that read one column are an error."""
    known = signal_names(space)
    names = known if names is None else tuple(names)
    unknown = [s for s in names if _split(s, dataset)[0] not in known]
    if unknown:
        raise ConfigError(f"unknown {space} signals {', '.join(unknown)} (known: {', '.join(known)}, "
                          "and name@dataset for a per-dataset one)")
    seen: dict[str, str] = {}
    for name in names:
        column = _field(space, name, dataset)
        if column in seen:
            raise ConfigError(f"signals {seen[column]!r} and {name!r} are the same column {column!r} of the "
                              f"{space} table on {dataset}: keep one")
        seen[column] = name
    return names


def _split(signal: str, dataset: str) -> tuple[str, str]:
    """``name@other`` -> (name, other); a plain name -> (name, ``dataset``)."""
    base, _, other = signal.partition("@")
    return base, other or dataset


def _field(space: str, signal: str, dataset: str) -> str:
    base, dataset = _split(signal, dataset)
    spec = SIGNALS[space][1][base]
    if isinstance(spec, str):
        if "@" in signal:
            raise ConfigError(f"signal {base!r} of {space} is the same on every dataset: drop '@{dataset}'")
        return spec
    if dataset not in spec:
        raise ConfigError(f"signal {base!r} of {space} has no dataset {dataset!r} (known: {', '.join(spec)})")
    return spec[dataset]


def low_fidelity_signals(arch: Architecture, dataset: str = "cifar10",
                         signals: Iterable[str] | None = None) -> dict[str, float | None]:
    """The table's low-fidelity signals of ``arch`` (all of its space's by default)."""
    from ..benchmarks.base import load_benchmark
    names = check_signals(arch.space, signals, dataset)
    record = load_benchmark(SIGNALS[arch.space][0]).query(arch)
    out = {}
    for name in names:
        value = _read(record, _field(arch.space, name, dataset))
        out[name] = None if value is None else float(value)
    return out


def _read(record: dict[str, Any], field: str) -> Any:
    """A field of a table record; ``a/b/c`` is a path into nested records."""
    for part in field.split("/"):
        if not isinstance(record, dict):
            return None
        record = record.get(part)
    return record


def table_pool(space: str, dataset: str = "cifar10", signals: Iterable[str] | None = None,
               ) -> tuple[list[Architecture], dict[str, list[float | None]]]:
    """Every architecture of the space's table and its signals, in table order
    (the unlabeled pool on which DELE pre-trains its experts)."""
    archs, columns = _table_pool(space, dataset, check_signals(space, signals, dataset))
    return list(archs), {name: list(column) for name, column in columns.items()}


@functools.lru_cache(maxsize=8)
def _table_pool(space: str, dataset: str, names: tuple[str, ...]):
    # kept per process: a search refits DELE every round, and the same
    # Architecture objects keep their cached fingerprints (the pre-training key)
    from ..benchmarks.base import load_benchmark
    fields = {name: _field(space, name, dataset) for name in names}
    bench = load_benchmark(SIGNALS[space][0])
    archs = tuple(a for a in bench.archs() if a.space == space)   # TransNAS: one table, two spaces
    row = getattr(bench, "row", bench.query)   # NB201: the main record, without the extras
    records = [row(a) for a in archs]
    return archs, {name: tuple(_read(r, f) for r in records) for name, f in fields.items()}


@EVALUATORS.register("low_fidelity")
class LowFidelityTable(Evaluator):
    """Serves table signals as metrics; ``objective`` (default ``acc_12``) is
    what a search maximises. ``cost_s`` simulates the training behind an
    accuracy objective: NB201 uses the NATS 12-epoch training time of the
    architecture where recorded (1,000 cells) and the median of those
    elsewhere; NB101 scales its recorded 108-epoch time by epochs / 108.
    ``fidelity`` is ignored (each signal has its own)."""

    def __init__(self, space: str = "nb201", *, dataset: str = "cifar10", signals: Iterable[str] | None = None,
                 objective: str = "acc_12"):
        self.space = space
        self.dataset = dataset
        self.signals = check_signals(space, signals, dataset)   # fails now on a dataset the table lacks
        if objective not in self.signals:
            raise ConfigError(f"objective {objective!r} is not among the signals {', '.join(self.signals)}")
        self.objective = objective

    def check(self, space) -> None:
        """The searched space is the one this table serves (before any candidate runs)."""
        import numpy as np
        arch = space.sample(np.random.default_rng(0))
        if arch.space != self.space:
            hint = f" (give it space: {arch.space})" if arch.space in SIGNALS else ""
            raise ConfigError(f"evaluator: this LowFidelityTable serves space {self.space!r}, not the searched "
                              f"space {arch.space!r}{hint}")

    def evaluate(self, arch: Architecture, fidelity: Any = None) -> Result:
        if arch.space != self.space:
            raise ConfigError(f"this LowFidelityTable serves space {self.space!r}, not {arch.space!r}")
        metrics = low_fidelity_signals(arch, self.dataset, self.signals)
        return Result(metrics=metrics, cost_s=self._cost(arch), info={"source": SIGNALS[self.space][0]})

    def _cost(self, arch: Architecture) -> float:
        base, dataset = _split(self.objective, self.dataset)
        epochs = EPOCHS.get(base)
        if epochs is None:
            return 0.0
        from ..benchmarks.base import load_benchmark
        bench = load_benchmark(SIGNALS[self.space][0])
        record = bench.query(arch)
        if self.space == "nb101":
            return float(record.get("train_time_108_s") or 0.0) * epochs / 108
        nats = record.get("nats", {}).get(dataset, {}).get(str(epochs))
        if nats is not None:
            return float(nats["train_time_s"])
        return _median_nats_time(dataset, str(epochs))


@functools.lru_cache(maxsize=None)
def _median_nats_time(dataset: str, hp: str) -> float:
    from ..benchmarks.base import load_benchmark
    nats = load_benchmark("nb201").extras()["nats"]
    times = [r[dataset][hp]["train_time_s"] for r in nats.values() if dataset in r and hp in r[dataset]]
    return float(statistics.median(times)) if times else 0.0
