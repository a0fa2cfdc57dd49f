"""``flownas bench search``: how fast a strategy finds good architectures on a
tabular benchmark, over many seeds.

Each seed runs one search (in-memory ledger, in-process evaluation) with the
same loop as ``flownas search``. Reported: the test accuracy of the incumbent
(the best by the search objective, i.e. validation accuracy) after 25 / 50 /
100 / 150 evaluations, mean and sd over seeds; the share of seeds that find
the global optimum (the best objective of the searched table) and the median
number of evaluations they need (seeds that never find it count as "not
within the budget"); the wall time per search.
"""
from __future__ import annotations

import datetime
import json
import os
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from ..store import Ledger
from .config import SearchConfig
from .loop import Budget, SearchLoop

CHECKPOINTS = (25, 50, 100, 150)


def optimum(evaluator, space) -> dict[str, Any]:
    """The best objective over every member of ``space`` (all tabulated), with its test metric."""
    best = None
    for arch in space.enumerate():
        metrics = evaluator.evaluate(arch).metrics
        if best is None or metrics[evaluator.objective] > best[evaluator.objective]:
            best = metrics
    return {"objective": best[evaluator.objective],
            "test": best.get(evaluator.test_metric) if evaluator.test_metric else None}


def run_seed(config: SearchConfig, seed: int, threads: int | None = None) -> dict[str, Any]:
    """One search; the incumbent's objective and test metric after each evaluation."""
    from .api import build
    if threads:
        import torch
        torch.set_num_threads(threads)
    config = replace(config, seed=seed)
    parts = build(config)
    ledger = Ledger.create(None, f"bench-{seed}", {"config": config.to_dict()})
    loop = SearchLoop(parts.space, parts.strategy, parts.evaluator, ledger, executor=parts.executor,
                      budget=config.budget)
    start = time.perf_counter()
    result = loop.run()
    wall = time.perf_counter() - start
    test = parts.evaluator.test_metric or parts.evaluator.objective
    objective, tests, best = [], [], None
    for r in result.records:
        if r.state == "complete" and (best is None or r.value > best.value):
            best = r
        objective.append(None if best is None else best.value)
        tests.append(None if best is None else best.metrics.get(test))
    return {"seed": seed, "objective": objective, "test": tests, "wall_s": wall, "failures": result.failures}


def summarize(runs: Sequence[dict[str, Any]], best: dict[str, Any], budget: int) -> dict[str, Any]:
    checkpoints = {}
    for n in sorted({*CHECKPOINTS, budget}):   # the budget itself too: the final incumbent over seeds
        if n > budget:
            continue
        values = [r["test"][n - 1] for r in runs if len(r["test"]) >= n and r["test"][n - 1] is not None]
        checkpoints[str(n)] = {"mean": statistics.fmean(values) if values else None,
                               "sd": statistics.stdev(values) if len(values) > 1 else 0.0, "seeds": len(values)}
    found = []
    for r in runs:
        r["found_at"] = next((i + 1 for i, v in enumerate(r["objective"])
                              if v is not None and v >= best["objective"] - 1e-9), None)
        found.append(r["found_at"])
    hits = sorted(f for f in found if f is not None)
    # median over all seeds, a seed that never finds it counting as beyond the budget
    ranked = sorted(f if f is not None else budget + 1 for f in found)
    median = statistics.median(ranked) if ranked else None
    walls = [r["wall_s"] for r in runs]
    return {"checkpoints": checkpoints, "found_share": len(hits) / len(runs) if runs else 0.0,
            "median_evals_to_optimum": median if median is not None and median <= budget else None,
            "wall_s": {"mean": statistics.fmean(walls), "median": statistics.median(walls), "max": max(walls)}}


def bench_search(config: SearchConfig, seeds: Sequence[int], jobs: int = 1, progress=None,
                 done: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """Run ``config`` once per seed (``jobs`` in parallel) and summarize;
    ``done``: runs of an interrupted benchmark (``run_seed`` results), kept."""
    from .api import build
    parts = build(config)
    best = optimum(parts.evaluator, parts.space)
    budget = config.budget.evaluations
    start = time.perf_counter()
    runs: list[dict[str, Any]] = list({r["seed"]: r for r in done if r["seed"] in seeds}.values())  # one per seed
    todo = [s for s in seeds if s not in {r["seed"] for r in runs}]
    if jobs == 1:
        for seed in todo:
            runs.append(run_seed(config, seed))
            if progress:
                progress(runs[-1])
    else:
        import concurrent.futures as cf
        import multiprocessing
        threads = max(1, (os.cpu_count() or 1) // jobs)
        with cf.ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(run_seed, config, seed, threads) for seed in todo]
            for future in cf.as_completed(futures):
                runs.append(future.result())
                if progress:
                    progress(runs[-1])
    runs.sort(key=lambda r: r["seed"])
    total = time.perf_counter() - start
    return {"date": datetime.date.today().isoformat(), "config": config.to_dict(), "seeds": list(seeds),
            "objective": parts.evaluator.objective, "test_metric": parts.evaluator.test_metric,
            "optimum": best, "budget": budget, **summarize(runs, best, budget), "total_wall_s": total,
            "jobs": jobs, "runs": runs}


def write_json(path: str | Path, data: dict[str, Any], flag: str = "--json") -> Path:
    """Write the benchmark's figures; where ``path`` cannot be written, they are
    kept in a temporary file that the error names (``flownas.data.save_output``)."""
    from ..data import save_output
    text = json.dumps(data, indent=1) + "\n"
    return save_output(path, flag, lambda p: p.write_text(text))


def bench_config(config: SearchConfig, budget: int) -> SearchConfig:
    """The configuration a benchmark runs: in-process, no storage, ``budget`` evaluations."""
    from .config import Component
    return replace(config, budget=Budget(evaluations=budget), executor=Component("inline"), storage=None)
