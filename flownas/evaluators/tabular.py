"""``TabularEvaluator``: a candidate's score looked up in a benchmark table.

The search objective is a validation accuracy; a test accuracy, where the
table has one, is recorded beside it and never steers the search. The cost
reported is the training time the benchmark logged (simulated: the lookup
itself takes microseconds), so budgets by cost behave as with real training.

Per benchmark and dataset (see experiments/README.md for the reasons):

* NB201 cifar10: objective ``c10_valid_val_acc_200`` (200-epoch validation
  accuracy of the cifar10-valid run), test ``c10_test_acc_200``.
* NB201 cifar100 / ImageNet16-120: the table has no 200-epoch validation
  accuracy for all cells, so the objective is the 12-epoch validation
  accuracy (``c100_val_acc_12`` / ``in16_val_acc_12``, a low-fidelity proxy
  with no test-set leakage) and the test is the 200-epoch x-test accuracy.
* NB101 (cifar10): objective ``val_acc_108``; the table has no test column.
* NB301 (DARTS, cifar10): objective ``val_acc_surrogate``, the NB301
  surrogate's predicted validation accuracy of 1,218 genotypes (a search of
  the table searches those); no test column, and no training time: cost 0.

Cost: NB101 logs ``train_time_108_s`` for every cell. NB201 logs training
time only for the 1,000 cells of the NATS subset; for the others the cost is
estimated per dataset and schedule by a least-squares fit of those 1,000
times on the cell's op counts (R^2 = 0.995); ``info["cost_source"]`` says
which one a result used.
"""
from __future__ import annotations

import difflib
import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..arch import Architecture
from ..errors import ArchitectureError, ConfigError, NotInTableError
from ..registry import EVALUATORS
from .base import Evaluator, Result


@dataclass(frozen=True)
class _Dataset:
    objective: str
    test: str | None
    prefix: str            # columns of this dataset start with it


_NB201 = {
    "cifar10": _Dataset("c10_valid_val_acc_200", "c10_test_acc_200", "c10_"),
    "cifar100": _Dataset("c100_val_acc_12", "c100_test_acc_200", "c100_"),
    "ImageNet16-120": _Dataset("in16_val_acc_12", "in16_test_acc_200", "in16_"),
}
_NB101 = {"cifar10": _Dataset("val_acc_108", None, "val_acc_")}
_NB301 = {"cifar10": _Dataset("val_acc_surrogate", None, "val_acc_")}
DATASETS: dict[str, dict[str, _Dataset]] = {"nb201": _NB201, "nb101": _NB101, "nb301": _NB301}
_NB201_OPS = ("skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


@EVALUATORS.register("tabular")
class TabularEvaluator(Evaluator):
    """Looks candidates up in ``benchmark`` (a registered table) for ``dataset``.

    ``objective``/``test_metric`` override the defaults above with any column
    of the table (e.g. ``c100_test_acc_200`` as objective: then the search
    selects on the column it reports as test, which flatters the result).
    A column given here is checked against the table when the evaluator is
    made (which loads the table); ``check(space)`` says whether the table
    holds the architectures of a search space.
    """

    def __init__(self, benchmark: str = "nb201", dataset: str = "cifar10",
                 objective: str | None = None, test_metric: str | None = None):
        if benchmark not in DATASETS:
            # the default evaluator of a space without a table of all its members lands here
            raise ConfigError(f"the tabular evaluator has no table {benchmark!r} (it has {', '.join(sorted(DATASETS))}); "
                              f"evaluate another space's candidates with another evaluator in the configuration "
                              f"file, e.g. evaluator: {{name: training, dataset: cifar10-mini}} or {{name: proxies}} "
                              f"(docs/evaluators.md)")
        datasets = DATASETS[benchmark]
        if dataset not in datasets:
            raise ConfigError(f"benchmark {benchmark!r} has no dataset {dataset!r} "
                              f"(known: {', '.join(datasets)})")
        spec = datasets[dataset]
        self.benchmark = benchmark
        self.dataset = dataset
        self.objective = objective or spec.objective
        self.test_metric = test_metric or spec.test
        self._prefix = spec.prefix
        given = {"objective": objective, "test_metric": test_metric}
        self._check_columns({key: column for key, column in given.items()
                             if column is not None and column not in (spec.objective, spec.test)})

    def __repr__(self) -> str:
        return f"TabularEvaluator(benchmark={self.benchmark!r}, dataset={self.dataset!r})"

    @property
    def table(self):
        from ..benchmarks.base import load_benchmark
        return load_benchmark(self.benchmark)

    def members(self) -> list[Architecture]:
        """Every architecture the table holds."""
        return self.table.archs()

    def _first_row(self) -> dict[str, Any]:
        """A record of the table: its columns (every record has the same ones)."""
        table = self.table
        members = table.archs()
        return table.query(members[0]) if members else {}

    def metric_names(self) -> set[str]:
        """Every metric ``evaluate`` can give: the numeric columns it keeps (a
        record without a value for one, such as NB201's naswot_score in 341
        cells, gives a result without that metric)."""
        return {k for k, v in self._first_row().items() if (v is None or _is_number(v)) and self._keeps(k)}

    def _keeps(self, column: str) -> bool:
        return (column.startswith(self._prefix) or column in (self.objective, self.test_metric)
                or column.startswith(("params", "naswot")))

    def _check_columns(self, columns: dict[str, str]) -> None:
        """Each of ``columns`` (option -> column) is a column of the table: a
        misspelled objective would otherwise fail every candidate of a search."""
        if not columns:
            return
        first = self._first_row()
        for key, column in columns.items():
            if not isinstance(column, str) or not column:
                raise ConfigError(f"{key} must be the name of a column of the {self.benchmark} table, got {column!r}")
            if column in first:
                continue
            numeric = sorted(k for k, v in first.items() if (v is None or _is_number(v)) and k != "idx")
            near = difflib.get_close_matches(column, numeric, n=1)
            hint = f"did you mean {near[0]!r}? " if near else ""
            raise ConfigError(f"{key} {column!r} is not a column of the {self.benchmark} table "
                              f"({hint}its numeric columns: {', '.join(numeric)})")

    def check(self, space) -> None:
        """Refuse a search ``space`` whose architectures the table does not hold
        (``benchmark: nb101`` on space nb201: every lookup would fail)."""
        from ..registry import BENCHMARKS
        holds = getattr(BENCHMARKS.get(self.benchmark), "space", self.benchmark)
        if space.name == holds:
            return
        table = self.table   # a missing table says so itself
        try:   # another name for the same cells (a wrapped or renamed space) passes if its members are there
            arch = space.sample(np.random.default_rng(0))
            if arch.space == space.name:   # (not a space restricted to this table's members of another space)
                table.query(arch)
                return
        except (NotInTableError, ArchitectureError):
            pass
        raise ConfigError(f"evaluator: the {self.benchmark} table holds architectures of space {holds!r}, not "
                          f"of the searched space {space.name!r}; give the space's own table "
                          f"(evaluator: {{name: tabular, benchmark: ...}}) or search space {holds!r}")

    def evaluate(self, arch: Architecture, fidelity: Any = None) -> Result:
        row = self.table.query(arch)
        for column in (self.objective, self.test_metric):
            if column is not None and column not in row:   # a column of the table (checked when made), not here
                raise NotInTableError(f"the {self.benchmark} table has no {column!r} for {arch!r}")
        metrics = {k: v for k, v in row.items() if _is_number(v) and self._keeps(k)}
        if self.benchmark == "nb201":
            cost, source = _nb201_cost(arch, self.dataset, "12" if self.objective.endswith("_12") else "200")
        elif self.benchmark == "nb101":
            cost, source = float(row["train_time_108_s"]), "table"
        else:   # NB301's surrogate accuracies come with no training time
            cost, source = 0.0, "none"
        return Result(metrics, cost, {"cost_source": source})


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _nb201_cost(arch: Architecture, dataset: str, hp: str) -> tuple[float, str]:
    from ..spaces.nb201 import NB201Space
    space = NB201Space()
    times, coef = _nb201_times(dataset, hp)
    key = space.to_string(arch)
    if key in times:
        return times[key], "table"
    return float(coef @ _op_counts(space.edge_ops(arch))), "estimate"


def _op_counts(ops) -> np.ndarray:
    return np.array([1.0] + [ops.count(o) for o in _NB201_OPS])


@functools.lru_cache(maxsize=None)
def _nb201_times(dataset: str, hp: str) -> tuple[dict[str, float], np.ndarray]:
    """Logged training times of the NATS subset, and the op-count model fitted on them."""
    from ..benchmarks.base import read_jsonl_gz, table_path
    from ..benchmarks.nb201 import NATS
    from ..spaces.nb201 import NB201Space
    space = NB201Space()
    times = {r["arch"]: float(r["results"][dataset][hp]["train_time_s"])
             for r in read_jsonl_gz(table_path(NATS))}
    X = np.array([_op_counts(space.edge_ops(space.from_string(a))) for a in times])
    coef, *_ = np.linalg.lstsq(X, np.array(list(times.values())), rcond=None)
    return times, coef
