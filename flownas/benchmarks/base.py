"""Where the benchmark tables live and how they are read.

Tables are never part of the repository: they live in a data directory named
by the ``FLOWNAS_DATA`` environment variable, one folder per benchmark, each
with a README of provenance and schema. ``TABLES`` pins every known file with
its sha256, so ``flownas data fetch`` can verify a download and an error can say
exactly which file is missing.
"""
from __future__ import annotations

import abc
import functools
import gzip
import json
import os
import warnings
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator

from ..arch import Architecture
from ..errors import ArchitectureError, DataError, NotInTableError

DATA_ENV = "FLOWNAS_DATA"

# folder/file -> sha256 (from each folder's README)
TABLES: dict[str, str] = {
    "nasbench201/nb201_all.jsonl.gz": "18170f970f0b5699adfaaa82ae9d8f0b2f2340edb144e6666d51474c71b4774f",
    "nasbench201/nb201_latency_help.jsonl.gz": "6fd31d82d87dbbf773aca28e5bba7fbc0e369336053169b03af2f2f46ab94695",
    "nasbench201/nb201_nats_tss_subset1000.jsonl.gz": "4b8973323beccc87d07a1887266ee4216efdaa5ac79c89a0ffa7b26c931faa3a",
    "nasbench201/nb201_zc_subset.jsonl.gz": "0c6c2fcc392e55d7850655f01ac77f162c3d83a6b97f60c052e1eddfb4334d21",
    "nasbench101/nb101_subset20k.jsonl.gz": "3f46dce87b73cad4890bf428c2686ccccef634df6f46b84e964e13efadd15021",
    "nasbench101/nb101_zc_subset.jsonl.gz": "49060ea63cf5f9bbfea0923d85dc71bdb3629f99bb1918bc88d3c0deedca25e1",
    "nasbench301_darts/nb301_zc_subset.jsonl.gz": "f7902f0ac95032f7eb5eccf2a2849a7daae7d628b452a4b9ac013e190894e623",
    "transnasbench101/tnb101_zc_subset.jsonl.gz": "7d27388624636a5c7454681572b61952f1d95c8a3a0a3c5fd9ca056f25797d67",
    "fbnet_hwnasbench/fbnet_latency_help.jsonl.gz": "9805752db086a18565d049fbc6633b0415b58f572fbcb8b80e8f253e828291e2",
    "ofa_mbv3/ofa_latency_help.jsonl.gz": "fbb4fc53c8f9baea19407e4628c4e808af51fd0e000e062745b7840fd0fee117",
    "cifar10-mini/cifar10_mini.npz": "be4e1eecd25daefbe73481cd81f8ba890fabfb974659270b8097caf35118c89c",
}

# folder/file -> records of the pinned table (the "records" column of each folder's
# README); a table that holds another number is not the pinned one (a subset, a
# truncated download, another version), and loading it warns (``TableWarning``)
RECORDS: dict[str, int] = {
    "nasbench201/nb201_all.jsonl.gz": 15_625,
    "nasbench201/nb201_latency_help.jsonl.gz": 15_625,
    "nasbench201/nb201_nats_tss_subset1000.jsonl.gz": 1_000,
    "nasbench201/nb201_zc_subset.jsonl.gz": 3_312,
    "nasbench101/nb101_subset20k.jsonl.gz": 20_001,
    "nasbench101/nb101_zc_subset.jsonl.gz": 292,
    "nasbench301_darts/nb301_zc_subset.jsonl.gz": 1_218,
    "transnasbench101/tnb101_zc_subset.jsonl.gz": 9_926,
    "fbnet_hwnasbench/fbnet_latency_help.jsonl.gz": 5_000,
    "ofa_mbv3/ofa_latency_help.jsonl.gz": 5_000,
}


class TableWarning(UserWarning):
    """A benchmark table that is not the pinned one (its record count differs)."""


HOW_TO_GET = (
    "The tables are not shipped with flownas (see docs/data.md). Set FLOWNAS_DATA to the folder "
    "that holds them (nasbench201/, nasbench101/, ...; `make` uses ../shared/data when it exists), "
    "or download a file with `flownas data fetch FOLDER/FILE --url URL` (its sha256 is pinned and checked).")


def data_root(required: bool = True) -> Path | None:
    """The data directory named by ``FLOWNAS_DATA``."""
    value = os.environ.get(DATA_ENV)
    if not value:
        if not required:
            return None
        raise DataError(f"{DATA_ENV} is not set. {HOW_TO_GET}")
    root = Path(value).expanduser()
    if not root.is_dir():
        if not required:
            return None
        raise DataError(f"{DATA_ENV}={value} is not a directory. {HOW_TO_GET}")
    return root


def table_path(name: str) -> Path:
    """Path of a table file (``folder/file``), with an error that says how to get it."""
    path = data_root() / name
    if not path.is_file():
        sha = TABLES.get(name)
        pin = f" (sha256 {sha})" if sha else ""
        raise DataError(f"missing benchmark table {path}{pin}. {HOW_TO_GET}")
    return path


def read_jsonl_gz(path: Path) -> Iterator[dict[str, Any]]:
    """Records of a gzip JSON-lines table; a broken line names file and line.
    Read to the end, a pinned table (``RECORDS``, by its folder/file name) that
    holds another number of records than the pinned one gives a ``TableWarning``."""
    path = Path(path)
    count = 0
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{lineno}: malformed JSON line ({exc.msg})") from None
                count += 1
                yield record
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read gzip JSON lines ({exc})") from None
    check_count(path, count)


def check_count(path: Path, count: int) -> None:
    """Warn when the table at ``path`` (known by its folder/file name) does not hold
    the pinned table's number of records: searches and benchmarks on it run over
    another set of architectures than the published table's."""
    name = f"{path.parent.name}/{path.name}"
    expected = RECORDS.get(name)
    if expected is not None and count != expected:
        warnings.warn(f"benchmark table {name} ({path}) holds {count:,} records, the pinned table "
                      f"{expected:,}: it is not the pinned table (a subset or a broken copy?); "
                      f"`flownas data list` checks its sha256", TableWarning, stacklevel=3)


class Benchmark(abc.ABC):
    """A tabular ground truth: architecture -> recorded metrics."""

    name: ClassVar[str]
    space: ClassVar[str]

    @abc.abstractmethod
    def query(self, arch: Architecture) -> dict[str, Any]:
        """All recorded metrics of ``arch``; raises ``NotInTableError``."""

    @abc.abstractmethod
    def archs(self) -> list[Architecture]:
        """Every architecture the table holds, in table order."""

    def __len__(self) -> int:
        return len(self.archs())

    def __contains__(self, arch: Architecture) -> bool:
        try:
            self.query(arch)
        except NotInTableError:
            return False
        return True

    def _missing(self, arch: Architecture, shown: str) -> NotInTableError:
        return NotInTableError(f"{self.name} table has no record of {shown}")

    def _key_of(self, to_key: Callable[[Architecture], Any], arch: Architecture) -> Any:
        """``to_key(arch)`` (the space's string, fingerprint ...); an architecture
        the space rejects is simply not in the table."""
        try:
            return to_key(arch)
        except ArchitectureError as exc:
            raise self._missing(arch, f"{arch!r}: {exc}") from None


def tables_of(space: str) -> list[str]:
    """The registered benchmark tables that hold architectures of ``space``, by name."""
    from ..registry import BENCHMARKS
    return [n for n in BENCHMARKS.names() if space in getattr(BENCHMARKS.get(n), "spaces", (BENCHMARKS.get(n).space,))]


def load_benchmark(name: str) -> Benchmark:
    """The benchmark registered as ``name``, loaded once per process and data
    folder (a process that points FLOWNAS_DATA elsewhere reads that table)."""
    return _load_benchmark(name, os.environ.get(DATA_ENV))


@functools.lru_cache(maxsize=None)
def _load_benchmark(name: str, root: str | None) -> Benchmark:
    from ..registry import BENCHMARKS
    return BENCHMARKS.get(name)()


load_benchmark.cache_clear = _load_benchmark.cache_clear   # as when it was the cached function itself