"""Search with DELE vs with its encoder alone: the ``predictor`` strategy on
NB201 cifar10 (tabular), ``flownas bench search``'s protocol, one seed at a time.

Both configurations are ``experiments/nb201-cifar10-predictor.yaml``'s
strategy (ensemble 3, UCB, 10 random architectures first, refit every 10) and
its encoder (FlowerFormer, 50 epochs, dim 32, 2 layers); ``dele`` adds the
experts, pre-trained on ``--pool-size`` cells of the NB201 low-fidelity table
(12-epoch accuracy, params, NASWOT) once per process and reused by every refit
and seed. Every finished seed is appended to ``--out`` (JSON lines) and not
run again; the summary is ``flownas.search.bench.summarize``'s.

    FLOWNAS_DATA=/work/shared/data PYTHONPATH=. python benchmarks/bench_dele_search.py \\
        --predictor dele --seeds 0 1 2 --budget 100
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from flownas.search.api import build
from flownas.search.bench import bench_config, bench_search, optimum, summarize
from flownas.search.config import SearchConfig

ENCODER = {"epochs": 50, "dim": 32, "layers": 2}


def config(predictor: str, pool_size: int, pretrain_epochs: int) -> SearchConfig:
    spec = {"name": predictor, **ENCODER}
    if predictor == "dele":
        spec.update(pool_size=pool_size, pretrain_epochs=pretrain_epochs)
    return SearchConfig.from_dict({
        "space": "nb201", "dataset": "cifar10", "seed": 0, "budget": 100,
        "strategy": {"name": "predictor", "ensemble": 3, "acquisition": "ucb", "beta": 1.0, "num_init": 10,
                     "refit_every": 10},
        "predictor": spec})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--predictor", choices=["flowerformer", "dele"], required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(30)))
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--pool-size", type=int, default=2000, help="cells of the table DELE pre-trains on")
    ap.add_argument("--pretrain-epochs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", help="JSON lines, one finished seed each (default runs/search_<predictor>.jsonl)")
    ap.add_argument("--report", action="store_true", help="only summarize what --out holds")
    args = ap.parse_args(argv)

    import torch
    torch.set_num_threads(args.threads)
    cfg = bench_config(config(args.predictor, args.pool_size, args.pretrain_epochs), args.budget)
    out = Path(args.out or f"runs/search_{args.predictor}.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    runs = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    done = {r["seed"] for r in runs}
    todo = [s for s in args.seeds if s not in done]
    if todo and not args.report:
        def progress(run):
            with out.open("a") as fh:
                fh.write(json.dumps({**run, "config": cfg.to_dict()}) + "\n")
            print(f"seed {run['seed']}: test {run['test'][-1]:.3f} ({run['wall_s']:.0f} s)", file=sys.stderr,
                  flush=True)
        runs += bench_search(cfg, todo, progress=progress)["runs"]
    runs = [r for r in runs if r["seed"] in args.seeds]
    parts = build(cfg)
    summary = summarize(runs, optimum(parts.evaluator, parts.space), args.budget)
    print(json.dumps({"predictor": args.predictor, "seeds": sorted(r["seed"] for r in runs),
                      "config": cfg.to_dict(), **summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
