"""HW-NAS-Bench FBNet latency table (``$FLOWNAS_DATA/fbnet_hwnasbench``, from
HELP): 5,000 architectures of the FBNet space with measured latency in 27
device settings (GPUs at batch 1/32/64, server CPUs, phones, Raspberry Pi 4,
Eyeriss, FPGA). No accuracy. Lookups go through the block list, so any node
numbering finds its record."""
from __future__ import annotations

from typing import Any

from ..errors import DataError
from ..registry import BENCHMARKS
from ..spaces.fbnet import FBNetSpace, blocks_string
from .latency import LatencyTable


@BENCHMARKS.register("fbnet")
class FBNetTable(LatencyTable):
    name = "fbnet"
    space = "fbnet"
    table = "fbnet_hwnasbench/fbnet_latency_help.jsonl.gz"

    def make_space(self) -> FBNetSpace:
        return FBNetSpace()

    def record_key(self, record: dict[str, Any]) -> str:
        blocks = self._space.block_names(record["op_idx"])
        if "ops" in record and list(blocks) != list(record["ops"]):
            raise DataError(f"op_idx {record['op_idx']} and ops {record['ops']} disagree")
        return blocks_string(blocks)
