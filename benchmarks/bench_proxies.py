"""Zero-cost proxies computed by flownas vs the published NAS-Bench-Suite-Zero
values, and what they cost.

Protocol: for every cifar10 record of ``nasbench201/nb201_zc_subset.jsonl.gz``
(1,104 NB201 cells) build the real network (C=16, N=5, 10 classes), initialise
it under ``--seed`` (PyTorch defaults), draw one seeded batch of ``--batch-size``
cifar10-mini training images and compute every proxy with ``ProxyEvaluator``.
Report, per proxy, the Spearman correlation between flownas's scores and the
published ones over those architectures, and both scores' Spearman with the
published 200-epoch validation accuracy. Scores are appended to a JSON-lines
cache (``--out``), so an interrupted run continues where it stopped.

``--cost N`` instead times each proxy alone on N architectures (ms per arch:
CPU time of the process, and wall time, ``--threads`` torch threads) after
one warm-up architecture.

    FLOWNAS_DATA=/work/shared/data PYTHONPATH=. python benchmarks/bench_proxies.py
    FLOWNAS_DATA=/work/shared/data PYTHONPATH=. python benchmarks/bench_proxies.py --cost 20
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from flownas.benchmarks.base import read_jsonl_gz, table_path
from flownas.evaluators.proxies import PROXIES, ProxyEvaluator
from flownas.spaces.nb201 import NB201Space

# flownas metric -> published field
PUBLISHED = {**{p: f"zc_{p}" for p in PROXIES}, "params": "params_m", "flops": "flops_m"}


def records(dataset: str) -> list[dict]:
    rows = [r for r in read_jsonl_gz(table_path("nasbench201/nb201_zc_subset.jsonl.gz")) if r["dataset"] == dataset]
    return sorted(rows, key=lambda r: r["idx"])


def compute(args) -> list[tuple[dict, dict]] | None:
    """Score the archs of this shard into the cache; the (published, ours)
    pairs of every arch, or None for one shard of several (the others' scores
    may not be in the cache yet)."""
    space = NB201Space()
    rows = records(args.dataset)
    order = np.random.default_rng(0).permutation(len(rows))[: args.limit]   # a random prefix when limited
    shard, shards = map(int, args.shard.split("/"))
    todo = order[shard::shards]   # this process's share; the report reads every shard's cache
    out = Path(args.out)
    done = {}
    if out.exists():
        done = {r["arch"]: r for r in map(json.loads, out.read_text().splitlines()) if r.get("seed") == args.seed}
    evaluator = ProxyEvaluator("cifar10-mini", batch_size=args.batch_size, seed=args.seed, num_threads=args.threads,
                               device=args.device)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as fh:
        for n, i in enumerate(todo, 1):
            rec = rows[i]
            if rec["arch"] in done:
                continue
            result = evaluator.evaluate(space.from_string(rec["arch"]))
            row = {"arch": rec["arch"], "seed": args.seed, "ms": 1e3 * result.cost_s, **result.metrics}
            fh.write(json.dumps(row) + "\n")
            fh.flush()
            done[rec["arch"]] = row
            if n % 25 == 0:
                print(f"{n}/{len(todo)} archs", file=sys.stderr, flush=True)
    if shards > 1:
        return None
    return [(rows[i], done[rows[i]["arch"]]) for i in order]


def report(pairs, args) -> None:
    print(f"NB201 {args.dataset}, {len(pairs)} archs of the NAS-Bench-Suite-Zero subset, seed {args.seed}, "
          f"batch {args.batch_size} of cifar10-mini\n")
    print("| metric | Spearman vs published | flownas vs val_acc_200 | published vs val_acc_200 | n |")
    print("|---|---:|---:|---:|---:|")
    acc = [pub["val_acc_200"] for pub, _ in pairs]
    for metric, field in PUBLISHED.items():
        both = [(ours[metric], pub[field], a) for (pub, ours), a in zip(pairs, acc)
                if pub.get(field) is not None and ours.get(metric) is not None]
        if not both:
            continue
        ours_v, pub_v, acc_v = map(np.asarray, zip(*both))
        rho = spearmanr(ours_v, pub_v)[0]
        print(f"| {metric} | {rho:.3f} | {spearmanr(ours_v, acc_v)[0]:.3f} | {spearmanr(pub_v, acc_v)[0]:.3f} "
              f"| {len(both)} |")
    ms = [ours["ms"] for _, ours in pairs]
    print(f"\nall proxies + params + FLOPs per arch (wall ms, {args.device}, {args.threads} CPU thread(s)): "
          f"median {statistics.median(ms):.0f}, p10 {np.percentile(ms, 10):.0f}, p90 {np.percentile(ms, 90):.0f}")


def cost(args) -> None:
    space = NB201Space()
    rows = records(args.dataset)
    picks = [rows[i] for i in np.random.default_rng(1).permutation(len(rows))[: args.cost + 1]]
    archs = [space.from_string(r["arch"]) for r in picks]
    print(f"ms per architecture (CPU, {args.threads} thread(s)), median over {args.cost} NB201 cells "
          f"(C=16, N=5), batch {args.batch_size}; CPU ms = process time (what load does not change)\n")
    print("| proxy | median CPU ms | p90 CPU ms | median wall ms |")
    print("|---|---:|---:|---:|")
    for name in PROXIES + (None,):   # None: build + params + FLOPs alone
        evaluator = ProxyEvaluator("cifar10-mini", proxies=[name] if name else [], objective=name or "params",
                                   batch_size=args.batch_size, seed=args.seed, num_threads=args.threads)
        cpu, wall = [], []
        for k, arch in enumerate(archs):
            start, start_cpu = time.perf_counter(), time.process_time()
            evaluator.evaluate(arch)
            if k:   # the first architecture warms up
                cpu.append(1e3 * (time.process_time() - start_cpu))
                wall.append(1e3 * (time.perf_counter() - start))
        label = f"{name} (+ build, params, FLOPs)" if name else "build, params, FLOPs only"
        print(f"| {label} | {statistics.median(cpu):.0f} | {np.percentile(cpu, 90):.0f} | "
              f"{statistics.median(wall):.0f} |", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="cifar10", choices=["cifar10"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--limit", type=int, help="only this many archs (a seeded random subset)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: the machine is shared)")
    p.add_argument("--out", default="runs/bench_proxies_cifar10.jsonl", help="JSON-lines cache of the scores")
    p.add_argument("--cost", type=int, help="time each proxy alone on this many archs instead")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (the network and the batch)")
    p.add_argument("--shard", default="0/1", help="K/M: compute every M-th arch from the K-th only, no report "
                   "(M processes with the same --out; a last call without --shard reports)")
    args = p.parse_args(argv)
    if args.cost:
        cost(args)
    elif (pairs := compute(args)) is not None:
        report(pairs, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
