"""Constrained search (BENCHMARKS.md, "Constrained search"): a search told the
constraint against the same search run without it and filtered afterwards.

    python benchmarks/bench_constrained.py --out benchmarks/results/constrained.json \
        [--strategies random,evolution,dele] [--seeds 10] [--dele-seeds 5] [--budget 150] [--jobs 2]

Protocol: the experiment ``experiments/nb201-cifar10-dele-pixel3.yaml``
(NB201 cifar10, objective ``c10_valid_val_acc_200``, constraint: latency on a
Pixel 3 at most 5 ms, HELP table). For each strategy and seed 0..S-1, one
search with the constraint and one without (the same configuration with
``constraints`` removed), each of ``--budget`` evaluations, in-process. For
both, after 50, 100 and 150 evaluations: the test accuracy
(``c10_test_acc_200``) of the best *feasible* candidate evaluated so far
(mean and sd over seeds), and for the unconstrained search the share of
seeds whose incumbent breaks the constraint. The constrained optimum is the
best feasible cell of the table by the objective.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime
import json
import multiprocessing
import statistics
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = ROOT / "experiments" / "nb201-cifar10-dele-pixel3.yaml"
CHECKPOINTS = (50, 100, 150)


def config_for(strategy: str, constrained: bool):
    from flownas.search.config import Component, SearchConfig
    config = SearchConfig.load(EXPERIMENT)
    if strategy != "dele":
        config = replace(config, strategy=Component(strategy), predictor=None)
    return config if constrained else replace(config, constraints=())


def one_search(strategy: str, constrained: bool, seed: int, budget: int) -> dict:
    """The candidates of one search in completion order: objective, test and feasibility."""
    import torch
    from flownas.search.api import build
    from flownas.search.bench import bench_config
    from flownas.search.loop import SearchLoop
    from flownas.store import Ledger
    torch.set_num_threads(1)
    config = replace(bench_config(config_for(strategy, constrained), budget), seed=seed)
    parts = build(config)
    feasible_space = build(config_for(strategy, True)).space
    ledger = Ledger.create(None, f"bench-{strategy}-{constrained}-{seed}", {"config": config.to_dict()})
    result = SearchLoop(parts.space, parts.strategy, parts.evaluator, ledger, executor=parts.executor,
                        budget=config.budget).run()
    rows = [{"value": r.value, "test": r.metrics.get(parts.evaluator.test_metric),
             "feasible": feasible_space.feasible(r.arch)} for r in result.records if r.state == "complete"]
    return {"strategy": strategy, "constrained": constrained, "seed": seed, "rows": rows,
            "wall_s": result.wall_s}


def incumbents(rows: list[dict], n: int) -> tuple[float | None, bool]:
    """After ``n`` evaluations: the test accuracy of the best feasible candidate,
    and whether the overall incumbent is feasible."""
    seen = rows[:n]
    feasible = [r for r in seen if r["feasible"]]
    best_feasible = max(feasible, key=lambda r: r["value"], default=None)
    best = max(seen, key=lambda r: r["value"], default=None)
    return (best_feasible["test"] if best_feasible else None), bool(best and best["feasible"])


def summarize(runs: list[dict]) -> dict:
    out = {}
    for strategy in sorted({r["strategy"] for r in runs}):
        for constrained in (True, False):
            group = [r for r in runs if r["strategy"] == strategy and r["constrained"] == constrained]
            if not group:
                continue
            key = f"{strategy} {'constrained' if constrained else 'unconstrained, filtered after'}"
            out[key] = {"seeds": [r["seed"] for r in group]}
            for n in CHECKPOINTS:
                results = [incumbents(r["rows"], n) for r in group]
                tests = [t for t, _ in results if t is not None]
                out[key][str(n)] = {"test_of_best_feasible_mean": statistics.fmean(tests) if tests else None,
                                    "sd": statistics.stdev(tests) if len(tests) > 1 else 0.0,
                                    "seeds_with_a_feasible_candidate": len(tests),
                                    "incumbent_infeasible_share": sum(not f for _, f in results) / len(group)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--strategies", default="random,evolution,dele")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--dele-seeds", type=int, default=5, help="DELE's searches take minutes each")
    ap.add_argument("--budget", type=int, default=150)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    from flownas.evaluators.tabular import TabularEvaluator
    from flownas.search.api import build
    from flownas.search.bench import optimum
    strategies = args.strategies.split(",")
    tasks = [(s, c, seed, args.budget) for s in strategies for c in (True, False)
             for seed in range(args.dele_seeds if s == "dele" else args.seeds)]
    print(f"protocol: {EXPERIMENT.name}, budget {args.budget}; seeds 0..{args.seeds - 1} "
          f"(dele: 0..{args.dele_seeds - 1}); {len(tasks)} searches", file=sys.stderr)
    best = optimum(TabularEvaluator(), build(config_for("evolution", True)).space)
    runs = []
    with cf.ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        for future in cf.as_completed([pool.submit(one_search, *t) for t in tasks]):
            run = future.result()
            runs.append(run)
            print(f"{run['strategy']:>10} {'constrained' if run['constrained'] else 'free':>11} seed "
                  f"{run['seed']}: {run['wall_s']:.0f} s", file=sys.stderr)
    summary = summarize(runs)
    data = {"date": datetime.date.today().isoformat(), "protocol": __doc__.split("Protocol:")[1].strip(),
            "experiment": EXPERIMENT.name, "budget": args.budget, "constrained_optimum": best,
            "command": "python benchmarks/bench_constrained.py " + " ".join(argv or sys.argv[1:]),
            "summary": summary, "runs": runs}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(data, indent=1) + "\n")
    print(f"constrained optimum: val {best['objective']:.2f}, test {best['test']:.2f}")
    print("| search | " + " | ".join(f"after {n}" for n in CHECKPOINTS) + " | incumbent breaks it (after 150) |")
    print("|---|" + "---|" * (len(CHECKPOINTS) + 1))
    for key, s in summary.items():
        cells = [f"{s[str(n)]['test_of_best_feasible_mean']:.2f} ± {s[str(n)]['sd']:.2f}"
                 if s[str(n)]["test_of_best_feasible_mean"] is not None else "-" for n in CHECKPOINTS]
        last = s[str(CHECKPOINTS[-1])]
        print(f"| {key} ({len(s['seeds'])} seeds) | " + " | ".join(cells)
              + f" | {last['incumbent_infeasible_share']:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
