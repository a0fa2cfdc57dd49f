"""NAS-Bench-301 / DARTS records (``$FLOWNAS_DATA/nasbench301_darts``): 1,218
genotypes with the NB301 *surrogate's* predicted CIFAR-10 validation accuracy
(not a measured one: see the folder's README), FLOPs, params and zero-cost
proxies from NAS-Bench-Suite-Zero. Lookups go through the architecture's
canonical key, so any numbering, input order or node order of a genotype
finds its record."""
from __future__ import annotations

from typing import Any

from ..arch import Architecture
from ..registry import BENCHMARKS
from ..spaces.darts import DartsSpace
from .base import Benchmark, read_jsonl_gz, table_path

MAIN = "nasbench301_darts/nb301_zc_subset.jsonl.gz"


@BENCHMARKS.register("nb301")
class NB301Table(Benchmark):
    name = "nb301"
    space = "darts"

    def __init__(self):
        self._space = DartsSpace()
        self._archs: list[Architecture] = []
        self._rows: dict[str, dict[str, Any]] = {}
        for r in read_jsonl_gz(table_path(MAIN)):
            arch = self._space.from_genotype(r["genotype"])
            self._archs.append(arch)
            row = {k: v for k, v in r.items() if not k.startswith("zc_")}
            row["zero_cost"] = {k: v for k, v in r.items() if k.startswith("zc_")}
            self._rows[arch.key] = row

    def query(self, arch: Architecture) -> dict[str, Any]:
        self._key_of(self._space.validate, arch)
        try:
            return dict(self._rows[arch.key])
        except KeyError:
            raise self._missing(arch, f"{self._space.to_string(arch)} (the table holds {len(self._rows):,} sampled "
                                      f"genotypes of DARTS's about 10^18)") from None

    def archs(self) -> list[Architecture]:
        return list(self._archs)

    def __len__(self) -> int:
        return len(self._rows)
