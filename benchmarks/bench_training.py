"""Training throughput of ``TrainingEvaluator`` on CPU (images/s).

Protocol: three NB201 cells (the smallest, a middle and the largest of the
zero-cost subset by params), each built at full size (C=16, N=5) and at the
tiny size of the tests (C=8, N=1), trained for one epoch on ``--images``
cifar10-mini training images (batch 128, SGD, crop + flip, seed 0) with
``--threads`` torch threads. Reported: training images per second of the
optimisation steps (``info["train_images_per_s"]``: batch preparation,
forward, backward, update; wall clock, so it drops on a loaded machine), the
training images per CPU-second of the whole call (process time, incl. data
loading and validation on the 932 held-out images: a lower bound that load
does not change) and the call's wall and CPU seconds.

    FLOWNAS_DATA=/work/shared/data PYTHONPATH=. python benchmarks/bench_training.py --threads 1
"""
from __future__ import annotations

import argparse
import sys
import time

from flownas.benchmarks.base import read_jsonl_gz, table_path
from flownas.evaluators.training import TrainingEvaluator
from flownas.spaces.nb201 import NB201Space

SIZES = {"full (C=16, N=5)": {"C": 16, "N": 5}, "tiny (C=8, N=1)": {"C": 8, "N": 1}}


def cells() -> list[tuple[str, float]]:
    rows = sorted((r["params_m"], r["arch"]) for r in read_jsonl_gz(table_path("nasbench201/nb201_zc_subset.jsonl.gz"))
                  if r["dataset"] == "cifar10")
    return [(arch, params) for params, arch in (rows[0], rows[len(rows) // 2], rows[-1])]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--images", type=int, default=1024, help="training images per epoch")
    p.add_argument("--batch-size", type=int, default=128)
    args = p.parse_args(argv)
    space = NB201Space()
    print(f"1 epoch of {args.images} cifar10-mini images, batch {args.batch_size}, CPU, {args.threads} thread(s)\n")
    print("| network | cell (params of the C=16 net) | params | train images/s (wall) | "
          "images/CPU-s (whole call) | wall s | CPU s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for size, options in SIZES.items():
        ev = TrainingEvaluator("cifar10-mini", epochs=1, batch_size=args.batch_size, max_train_images=args.images,
                               model_options=options, num_threads=args.threads, seed=0)
        for arch, params_m in cells():
            start_cpu = time.process_time()
            r = ev.evaluate(space.from_string(arch))
            cpu = time.process_time() - start_cpu
            print(f"| {size} | `{arch}` ({params_m:.2f} M) | {r.metrics['params']:,} | "
                  f"{r.info['train_images_per_s']:.0f} | {r.info['train_images'] / cpu:.0f} | "
                  f"{r.info['wall_s']:.1f} | {cpu:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
