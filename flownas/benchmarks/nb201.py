"""NAS-Bench-201 tables (``$FLOWNAS_DATA/nasbench201``): accuracies of all
15,625 cells (200- and 12-epoch runs), params, NASWOT, HELP latencies on 27
devices, zero-cost proxies for a 1,104-cell subset and NATS training times for
1,000 cells. Lookups go through the NB201 string, so any node numbering of a
cell finds its record."""
from __future__ import annotations

from typing import Any

from ..arch import Architecture
from ..registry import BENCHMARKS
from ..spaces.nb201 import NB201Space
from .base import Benchmark, read_jsonl_gz, table_path

MAIN = "nasbench201/nb201_all.jsonl.gz"
LATENCY = "nasbench201/nb201_latency_help.jsonl.gz"
ZERO_COST = "nasbench201/nb201_zc_subset.jsonl.gz"
NATS = "nasbench201/nb201_nats_tss_subset1000.jsonl.gz"

# dataset -> (search objective column, test column, 12-epoch column)
DATASETS = {
    "cifar10": ("c10_valid_val_acc_200", "c10_test_acc_200", "c10_valid_val_acc_12"),
    "cifar100": ("c100_test_acc_200", "c100_test_acc_200", "c100_val_acc_12"),
    "ImageNet16-120": ("in16_test_acc_200", "in16_test_acc_200", "in16_val_acc_12"),
}


@BENCHMARKS.register("nb201")
class NB201Table(Benchmark):
    name = "nb201"
    space = "nb201"

    def __init__(self):
        self._space = NB201Space()
        self._rows = {r["arch"]: r for r in read_jsonl_gz(table_path(MAIN))}
        self._extras: dict[str, dict[str, Any]] | None = None

    def _key(self, arch: Architecture) -> str:
        return self._key_of(self._space.to_string, arch)

    def row(self, arch: Architecture) -> dict[str, Any]:
        """The main table's record (accuracies, params, NASWOT), no extras."""
        key = self._key(arch)
        try:
            return self._rows[key]
        except KeyError:
            raise self._missing(arch, key) from None

    def query(self, arch: Architecture) -> dict[str, Any]:
        key = self._key(arch)
        if key not in self._rows:
            raise self._missing(arch, key)
        out = dict(self._rows[key])
        for section, values in self.extras().items():
            if key in values:
                out[section] = values[key]
        return out

    def extras(self) -> dict[str, dict[str, Any]]:
        """Latency, zero-cost and training-time sections, loaded on first use."""
        if self._extras is None:
            latency = {r["arch"]: r["latency_ms"] for r in read_jsonl_gz(table_path(LATENCY))}
            zero_cost: dict[str, dict[str, Any]] = {}
            for r in read_jsonl_gz(table_path(ZERO_COST)):
                rec = {k: v for k, v in r.items() if k not in ("arch", "idx", "dataset", "src")}
                zero_cost.setdefault(r["arch"], {})[r["dataset"]] = rec
            nats = {r["arch"]: r["results"] for r in read_jsonl_gz(table_path(NATS))}
            self._extras = {"latency_ms": latency, "zero_cost": zero_cost, "nats": nats}
        return self._extras

    def archs(self) -> list[Architecture]:
        return [self._space.from_string(s) for s in self._rows]

    def __len__(self) -> int:
        return len(self._rows)
