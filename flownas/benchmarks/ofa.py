"""Once-for-All MobileNetV3 latency table (``$FLOWNAS_DATA/ofa_mbv3``, from HELP):
5,000 subnets (kernel, expand, depth, resolution) with measured GPU latency in
12 settings (4 GPUs x batch 1/32/64). No accuracy. Lookups go through the
mobilenet space's normalized string, so slots beyond a stage's depth and the
node numbering do not matter."""
from __future__ import annotations

from typing import Any

from ..registry import BENCHMARKS
from ..spaces.mobilenet import MobileNetSpace, config_string
from .latency import LatencyTable


@BENCHMARKS.register("ofa")
class OFATable(LatencyTable):
    name = "ofa"
    space = "mobilenet"
    table = "ofa_mbv3/ofa_latency_help.jsonl.gz"

    def make_space(self) -> MobileNetSpace:
        return MobileNetSpace()

    def record_key(self, record: dict[str, Any]) -> str:
        return config_string(self._space.record_config(record))
