"""NAS-Bench-101 tables (``$FLOWNAS_DATA/nasbench101``): a 20,001-cell subset
with 4/12/36/108-epoch CIFAR-10 validation accuracies, params and training
time, and zero-cost proxies for 292 cells. Lookups go through NB101's module
fingerprint, so any numbering (and any unpruned form) of a cell finds its
record. Read the folder's README: no test accuracies, and the accuracies look
like the maximum over NB101's 3 repeats, not their mean."""
from __future__ import annotations

from typing import Any

from ..arch import Architecture
from ..registry import BENCHMARKS
from ..spaces.nb101 import NB101Space
from .base import Benchmark, read_jsonl_gz, table_path

MAIN = "nasbench101/nb101_subset20k.jsonl.gz"
ZERO_COST = "nasbench101/nb101_zc_subset.jsonl.gz"


@BENCHMARKS.register("nb101")
class NB101Table(Benchmark):
    name = "nb101"
    space = "nb101"

    def __init__(self):
        self._space = NB101Space()
        self._rows = {r["hash"]: r for r in read_jsonl_gz(table_path(MAIN))}
        self._zero_cost: dict[str, dict[str, Any]] | None = None

    def _key(self, arch: Architecture) -> str:
        return self._key_of(self._space.fingerprint, arch)

    def row(self, arch: Architecture) -> dict[str, Any]:
        """The 20k table's record (accuracies, params, time), no zero-cost section."""
        key = self._key(arch)
        try:
            return self._rows[key]
        except KeyError:
            raise self._missing(arch, f"the cell with NB101 hash {key}") from None

    def query(self, arch: Architecture) -> dict[str, Any]:
        key = self._key(arch)
        zero_cost = self.zero_cost().get(key)
        if key not in self._rows and zero_cost is None:
            raise self._missing(arch, f"the cell with NB101 hash {key} "
                                      f"(the 20k subset holds ~4.7% of the 423,624 cells)")
        out = dict(self._rows.get(key, {"hash": key}))
        if zero_cost is not None:
            out["zero_cost"] = zero_cost
        return out

    def zero_cost(self) -> dict[str, dict[str, Any]]:
        """hash -> the zero-cost record (proxies, flops, params, 108-epoch samples), loaded on first use."""
        if self._zero_cost is None:
            self._zero_cost = {r["hash"]: {k: v for k, v in r.items() if k not in ("hash", "matrix", "ops")}
                               for r in read_jsonl_gz(table_path(ZERO_COST))}
        return self._zero_cost

    def archs(self) -> list[Architecture]:
        # the table's cells are pruned (README): no normalize needed
        return [Architecture(r["ops"], r["matrix"], space=self.space) for r in self._rows.values()]

    def __len__(self) -> int:
        return len(self._rows)
