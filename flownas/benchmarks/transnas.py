"""TransNAS-Bench-101 zero-cost subset (``$FLOWNAS_DATA/transnasbench101``, from
NASLib): 711 micro cells and 725 macro skeletons, each with, per Taskonomy
task, the final validation metric, FLOPs, params and 9 zero-cost proxies.
The proxies' failure sentinel -1e8 is read as missing (None). Lookups go
through the spaces' TransNAS strings, so any node numbering finds its record."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..arch import Architecture
from ..errors import ArchitectureError, DataError, NotInTableError
from ..registry import BENCHMARKS
from ..spaces.transnas import TransNASMacroSpace, TransNASMicroSpace
from .base import Benchmark, read_jsonl_gz, table_path

TABLE = "transnasbench101/tnb101_zc_subset.jsonl.gz"
MISSING = -1e8
# task -> what val_metric is (NASLib's mapping; higher is better for all)
TASK_METRICS = {
    "class_scene": "valid_top1", "class_object": "valid_top1", "jigsaw": "valid_top1",
    "room_layout": "valid_neg_loss", "segmentsemantic": "valid_acc",
    "autoencoder": "valid_ssim", "normal": "valid_ssim",
}
_NOT_METRICS = ("arch", "space", "task", "op_indices")


@BENCHMARKS.register("transnas")
class TransNASTable(Benchmark):
    name = "transnas"
    space = "transnas_micro"
    spaces = ("transnas_micro", "transnas_macro")

    def __init__(self):
        self._spaces = {"micro": TransNASMicroSpace(), "macro": TransNASMacroSpace()}
        path = table_path(TABLE)
        # (space, arch string) -> task -> metrics
        self._rows: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        for lineno, r in enumerate(read_jsonl_gz(path), 1):
            where = f"{path}:{lineno}"
            space = self._spaces.get(r.get("space"))
            if space is None or r.get("task") not in TASK_METRICS:
                raise DataError(f"{where}: unknown space {r.get('space')!r} or task {r.get('task')!r}")
            tasks = self._rows.get((r["space"], r.get("arch")))
            if tasks is None:   # a new architecture: check its string once
                try:
                    key = space.to_string(space.from_string(r["arch"]))
                except (ArchitectureError, KeyError) as exc:
                    raise DataError(f"{where}: not a TransNAS {r['space']} architecture ({exc})") from None
                if key != r["arch"]:
                    raise DataError(f"{where}: {r['arch']!r} is not in normal form ({key!r})")
                tasks = self._rows[r["space"], key] = {}
            if r["task"] in tasks:
                raise DataError(f"{where}: {r['arch']} has two {r['task']} records")
            metrics = {k: (None if v == MISSING else v) for k, v in r.items() if k not in _NOT_METRICS}
            tasks[r["task"]] = {"metric": TASK_METRICS[r["task"]], **metrics}

    def _key(self, arch: Architecture) -> tuple[str, str]:
        kind = {"transnas_micro": "micro", "transnas_macro": "macro"}.get(getattr(arch, "space", None))
        if kind is None:
            raise NotInTableError(f"transnas table holds architectures of spaces {', '.join(self.spaces)}, "
                                  f"not {getattr(arch, 'space', arch)!r}")
        return kind, self._key_of(self._spaces[kind].to_string, arch)

    def query(self, arch: Architecture) -> dict[str, Any]:
        """``{"arch", "space", "tasks": {task: {"metric", "val_metric", "flops_m", "params_m", "zc_*"}}}``;
        a proxy that failed (-1e8 in the source) is None."""
        key = self._key(arch)
        if key not in self._rows:   # the table is a subset: say so, as NB101's does
            held = sum(kind == key[0] for kind, _ in self._rows)   # a miss is rare: count then
            total = self._spaces[key[0]].size()
            raise self._missing(arch, f"{key[1]} (the table holds {held:,} of the {total:,} {key[0]} cells)")
        return {"arch": key[1], "space": key[0],
                "tasks": {task: dict(m) for task, m in self._rows[key].items()}}

    def archs(self, space: str | None = None) -> list[Architecture]:
        """Every architecture of ``space`` ("micro" or "macro"; None: both), in table order."""
        kinds = self._kinds(space)
        return [self._spaces[k].from_string(s) for k, s in self._rows if k in kinds]

    def tasks(self) -> list[str]:
        return list(TASK_METRICS)

    def archs_and_targets(self, task: str = "class_scene", space: str = "micro",
                          metric: str = "val_metric") -> tuple[list[Architecture], np.ndarray]:
        """The architectures of ``space`` that have a ``task`` record, and that record's
        ``metric`` (default the validation metric; higher is better), for predictor training."""
        if task not in TASK_METRICS:
            raise DataError(f"unknown TransNAS task {task!r} (known: {', '.join(TASK_METRICS)})")
        (kind,) = self._kinds(space)
        archs, ys = [], []
        for (k, s), tasks in self._rows.items():
            if k == kind and task in tasks:
                if metric not in tasks[task]:
                    raise DataError(f"unknown TransNAS metric {metric!r} "
                                    f"(known: {', '.join(sorted(tasks[task]))})")
                if tasks[task][metric] is not None:
                    archs.append(self._spaces[k].from_string(s))
                    ys.append(tasks[task][metric])
        return archs, np.asarray(ys, dtype=np.float64)

    def _kinds(self, space: str | None) -> tuple[str, ...]:
        if space is None:
            return tuple(self._spaces)
        kind = space.removeprefix("transnas_")
        if kind not in self._spaces:
            raise DataError(f"unknown TransNAS space {space!r} (micro or macro)")
        return (kind,)

    def __len__(self) -> int:
        return len(self._rows)
