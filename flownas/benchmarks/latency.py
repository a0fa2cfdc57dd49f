"""Latency tables of whole-network spaces (OFA MobileNetV3, HW-NAS-Bench FBNet):
one record per architecture, keyed by the space's normalized string, so any
node numbering (and, for OFA, any value in the inactive slots) finds it."""
from __future__ import annotations

import abc
from typing import Any, ClassVar

from ..arch import Architecture
from ..errors import DataError, FlownasError, UnknownNameError
from ..spaces.base import SearchSpace
from .base import Benchmark, read_jsonl_gz, table_path


class LatencyTable(Benchmark):
    """Subclasses name the ``table`` file, the space, and how a record's key is read."""

    table: ClassVar[str]

    def __init__(self):
        self._space = self.make_space()
        path = table_path(self.table)
        self._rows: dict[str, dict[str, Any]] = {}
        for lineno, record in enumerate(read_jsonl_gz(path), 1):
            try:
                key = self.record_key(record)
            except (FlownasError, KeyError, TypeError) as exc:
                raise DataError(f"{path}:{lineno}: not a {self.space} record ({exc})") from None
            if key in self._rows:
                raise DataError(f"{path}:{lineno}: {key} is recorded twice "
                                f"(rows {self._rows[key].get('i')} and {record.get('i')})")
            self._rows[key] = record

    @abc.abstractmethod
    def make_space(self) -> SearchSpace:
        """The space whose ``to_string`` keys the table."""

    @abc.abstractmethod
    def record_key(self, record: dict[str, Any]) -> str:
        """The space's string of a table record (checked)."""

    def query(self, arch: Architecture) -> dict[str, Any]:
        """The table's record plus ``arch``, the architecture's normalized string."""
        key = self._key_of(self._space.to_string, arch)
        try:
            return {**self._rows[key], "arch": key}
        except KeyError:
            raise self._missing(arch, key) from None

    def archs(self) -> list[Architecture]:
        return [self._space.from_string(key) for key in self._rows]

    def devices(self) -> list[str]:
        """The latency settings (``latency_ms`` keys) of the table."""
        return sorted(next(iter(self._rows.values()))["latency_ms"])

    def latencies(self, device: str) -> tuple[list[Architecture], list[float]]:
        """Every architecture and its latency (ms) on ``device``, in table order."""
        if device not in self.devices():
            raise UnknownNameError(f"{self.name} table has no device {device!r} (known: {', '.join(self.devices())})")
        return self.archs(), [float(r["latency_ms"][device]) for r in self._rows.values()]

    def __len__(self) -> int:
        return len(self._rows)
