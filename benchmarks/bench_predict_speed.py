"""How fast a fitted predictor scores the whole NB201 table (issue 3: under
1.5 s for all 15,625 cells on 2 CPU cores).

Protocol: fit the predictor (its defaults unless --param) on the first
--train-size cells of the table for --epochs epochs (speed does not depend on
how well it learned), score 500 cells once to warm up, then --repeats times:
build fresh Architecture objects for every cell of the table (so the
featurization is paid each time, as for a new candidate pool) and time
``predict`` on all of them. Prints the median and the range.

    FLOWNAS_DATA=/work/shared/data python benchmarks/bench_predict_speed.py --threads 2
"""
from __future__ import annotations

import argparse
import json
import statistics
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--predictor", default="flowerformer")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--train-size", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--param", action="append", default=[], help="KEY=JSON, a predictor parameter")
    args = ap.parse_args()

    import torch

    import flownas.predictors  # noqa: F401  (registers the predictors)
    from flownas.benchmarks.base import load_benchmark
    from flownas.registry import PREDICTORS

    torch.set_num_threads(args.threads)
    params = {"epochs": args.epochs, "seed": args.seed}
    for item in args.param:
        key, _, value = item.partition("=")
        params[key] = json.loads(value)
    table = load_benchmark("nb201")
    train = table.archs()[:args.train_size]
    y = [table.query(a)["c10_valid_val_acc_200"] for a in train]
    predictor = PREDICTORS.get(args.predictor)(**params).fit(train, y)
    predictor.predict(table.archs()[:500])
    times = []
    for _ in range(args.repeats):
        pool = table.archs()
        start = time.perf_counter()
        predictor.predict(pool)
        times.append(time.perf_counter() - start)
    print(f"protocol: {args.predictor} {params} fitted on the first {args.train_size} NB201 cells, seed "
          f"[{args.seed}]; predict all {len(pool):,} cells (fresh objects), {args.repeats} repeats after a "
          f"warm-up; torch threads {torch.get_num_threads()}, torch {torch.__version__}")
    print(f"predict all: median {statistics.median(times):.3f} s (min {min(times):.3f}, max {max(times):.3f}); "
          f"{len(pool) / statistics.median(times):,.0f} archs/s")


if __name__ == "__main__":
    main()
