"""Constrained search (BENCHMARKS.md, "Constrained search"): a search told the
constraint against the same search run without it and filtered afterwards;
and how far a predicted latency can be trusted as a constraint.

    python benchmarks/bench_constrained.py search --out benchmarks/results/constrained.json \
        [--strategies random,evolution,dele] [--seeds 10] [--dele-seeds 5] [--budget 150] [--jobs 2]
    python benchmarks/bench_constrained.py table benchmarks/results/constrained.json   # its table again
    python benchmarks/bench_constrained.py predicted --out benchmarks/results/constrained-predicted.json \
        [--table fbnet] [--device pixel3] [--seeds 0] [--train 1000]
    python benchmarks/bench_constrained.py batch --out benchmarks/results/constrained-batch.json \
        [--parents 10] [--networks 2000] [--repeats 5] [--seed 0]

Protocol (search): the experiment ``experiments/nb201-cifar10-dele-pixel3.yaml``
(NB201 cifar10, objective ``c10_valid_val_acc_200``, constraint: latency on a
Pixel 3 at most 5 ms, HELP table). For each strategy and seed 0..S-1, one
search with the constraint and one without (the same configuration with
``constraints`` removed), each of ``--budget`` evaluations, in-process. For
both, after 50, 100 and 150 evaluations: the test accuracy
(``c10_test_acc_200``) of the best *feasible* candidate evaluated so far
(mean and sd over seeds), and for the unconstrained search the share of
seeds whose incumbent breaks the constraint. The constrained optimum is the
best feasible cell of the table by the objective.

Protocol (predicted): per seed, a permutation of the latency table's
networks (``numpy.random.default_rng(seed)``); ``narformer_v2`` with
``LATENCY_SETTINGS`` (what ``flownas fit-latency`` fits, through the same
``fit_latency_predictor``) is fitted on the first ``--train`` latencies.
On the other networks, for bounds at the 10/25/50/75 % quantiles of the
table's latencies: precision (share of the networks the prediction admits
that truly meet the bound), recall (share of those meeting it that are
admitted) and the largest true latency admitted, relative to the bound. Last,
the rate at which ``ConstrainedSpace`` draws feasible members of the whole
space under the median bound (rejection), the predictor saved and read back
by the ``predicted`` evaluator.

Protocol (batch): the same predictor fitted on ``--train`` networks; the
bound is the median predicted latency of ``--networks`` networks sampled
with ``--seed``. Timed (median of ``--repeats``, each on a fresh space, so
nothing is cached): the constrained neighbourhoods of ``--parents`` feasible
parents, through the one-at-a-time path every space inherits and through
``ConstrainedSpace.neighbours`` (one ``evaluate_many`` call each; the two
must list the same members), and the sampled networks, one
``Constraint.value`` each against one ``Constraint.values``.
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


def summarize(runs: list[dict], optimum: float) -> dict:
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
            # evaluations until the constrained optimum is evaluated (beyond the budget: budget + 1)
            found = [next((i + 1 for i, row in enumerate(r["rows"]) if row["feasible"] and row["value"] >= optimum - 1e-9),
                          len(r["rows"]) + 1) for r in group]
            out[key]["found_optimum_share"] = sum(f <= len(r["rows"]) for f, r in zip(found, group)) / len(group)
            out[key]["median_evals_to_optimum"] = statistics.median(found)
            out[key]["feasible_share_of_evaluations"] = statistics.fmean(
                sum(row["feasible"] for row in r["rows"]) / len(r["rows"]) for r in group)
    return out


def print_table(data: dict) -> None:
    best = data["constrained_optimum"]
    print(f"constrained optimum: val {best['objective']:.2f}, test {best['test']:.2f}")
    print("| search | " + " | ".join(f"after {n}" for n in CHECKPOINTS)
          + " | incumbent breaks it | optimum found | median evaluations to it | feasible evaluations |")
    print("|---|" + "---|" * (len(CHECKPOINTS) + 4))
    for key, s in data["summary"].items():
        cells = [f"{s[str(n)]['test_of_best_feasible_mean']:.2f} ± {s[str(n)]['sd']:.2f}"
                 if s[str(n)]["test_of_best_feasible_mean"] is not None else "-" for n in CHECKPOINTS]
        last = s[str(CHECKPOINTS[-1])]
        median = s["median_evals_to_optimum"]
        print(f"| {key} ({len(s['seeds'])} seeds) | " + " | ".join(cells)
              + f" | {last['incumbent_infeasible_share']:.0%} | {s['found_optimum_share']:.0%} | "
              + (f"{median:g}" if median <= data["budget"] else f"> {data['budget']}")
              + f" | {s['feasible_share_of_evaluations']:.0%} |")


def cmd_predicted(args) -> int:
    import tempfile
    import time

    import numpy as np
    import torch
    from flownas.benchmarks.base import load_benchmark
    from flownas.evaluators.predicted import LATENCY_SETTINGS, fit_latency_predictor
    from flownas.registry import EVALUATORS, get_space
    from flownas.search.constraints import ConstrainedSpace, Constraint
    torch.set_num_threads(args.threads)
    _, ms = load_benchmark(args.table).latencies(args.device)
    quantiles = (10, 25, 50, 75)
    bounds = {q: float(np.percentile(ms, q)) for q in quantiles}
    print(f"protocol: {args.table} {args.device}, narformer_v2 {LATENCY_SETTINGS}, train {args.train}, "
          f"seeds {args.seeds}", file=sys.stderr)
    per_seed = []
    for seed in args.seeds:
        fit = fit_latency_predictor(args.table, args.device, train_size=args.train, seed=seed)
        predicted, true = fit.predicted, fit.held_out_ms
        rows = {}
        for q, bound in bounds.items():
            admitted, meets = predicted <= bound, true <= bound
            rows[str(q)] = {"bound_ms": bound, "precision": float((admitted & meets).sum() / max(admitted.sum(), 1)),
                            "recall": float((admitted & meets).sum() / max(meets.sum(), 1)),
                            "worst_admitted_over_bound": float(true[admitted].max() / bound) if admitted.any() else None}
        with tempfile.TemporaryDirectory() as tmp:   # the search reads the saved predictor back
            fit.model.save(f"{tmp}/latency.pt")
            evaluator = EVALUATORS.create("predicted", path=f"{tmp}/latency.pt", metric="latency_ms")
            space = ConstrainedSpace(get_space(args.table), [Constraint("latency_ms", evaluator, max=bounds[50])])
            rng = np.random.default_rng(seed)
            start = time.perf_counter()
            drawn = [space.sample(rng) for _ in range(200)]
            draw_s = (time.perf_counter() - start) / len(drawn)
        per_seed.append({"seed": seed, "mape": fit.mape, "fit_s": fit.fit_s, "bounds": rows,
                         "feasible_draw_ms": 1e3 * draw_s, "drawn": len(drawn)})
        print(f"seed {seed}: MAPE {fit.mape:.2f} %, fit {fit.fit_s:.0f} s, a feasible draw {1e3 * draw_s:.1f} ms",
              file=sys.stderr)
    data = {"date": datetime.date.today().isoformat(), "table": args.table, "device": args.device,
            "train": args.train, "seeds": args.seeds, "params": LATENCY_SETTINGS,
            "command": "python benchmarks/bench_constrained.py " + " ".join(sys.argv[1:]), "per_seed": per_seed}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(data, indent=1) + "\n")
    print("| bound (quantile of the table) | bound ms | precision | recall | worst admitted / bound |")
    print("|---|---:|---:|---:|---:|")
    for q in quantiles:
        rows = [s["bounds"][str(q)] for s in per_seed]
        mean = lambda k: statistics.fmean(r[k] for r in rows)   # noqa: E731
        worst = max(r["worst_admitted_over_bound"] or 0 for r in rows)
        print(f"| {q} % | {rows[0]['bound_ms']:.2f} | {mean('precision'):.3f} | {mean('recall'):.3f} | {worst:.3f} |")
    return 0


def cmd_batch(args) -> int:
    import time

    import numpy as np
    import torch
    from flownas.evaluators.predicted import LATENCY_SETTINGS, fit_latency_predictor
    from flownas.registry import EVALUATORS, get_space
    from flownas.search.constraints import ConstrainedSpace, Constraint
    from flownas.spaces.base import SearchSpace
    torch.set_num_threads(args.threads)
    print(f"protocol: {args.table} {args.device}, narformer_v2 {LATENCY_SETTINGS} fitted on {args.train} networks "
          f"(seed {args.seed}), bound = median predicted latency of {args.networks} sampled networks; the "
          f"neighbourhoods of {args.parents} feasible parents, and the {args.networks} networks, evaluated one at "
          f"a time (as before 2026-12-07) and in one evaluate_many call; {args.repeats} repeats, median; "
          f"torch threads {args.threads}", file=sys.stderr)
    fit = fit_latency_predictor(args.table, args.device, train_size=args.train, seed=args.seed)
    path = Path(args.out).with_suffix(".pt")
    path.parent.mkdir(parents=True, exist_ok=True)
    fit.model.save(path)
    evaluator = EVALUATORS.create("predicted", path=str(path), metric="latency_ms")
    base = get_space(args.table)
    rng = np.random.default_rng(args.seed)
    networks = [base.sample(rng) for _ in range(args.networks)]
    bound = float(np.median(evaluator.model.predict(networks)))
    constraint = Constraint("latency_ms", evaluator, max=bound)
    parents = [ConstrainedSpace(base, [constraint]).sample(rng) for _ in range(args.parents)]

    def fresh():   # no cached values: every repeat computes them all
        return ConstrainedSpace(base, [constraint])

    def timed(fn) -> float:
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    one = [SearchSpace.neighbours(fresh(), p) for p in parents]   # the inherited, one-at-a-time path
    many = [fresh().neighbours(p) for p in parents]
    assert [[a.key for a in n] for n in one] == [[a.key for a in n] for n in many], "different neighbourhoods"
    size = sum(len(base.neighbours(p)) for p in parents)
    rows = {
        "neighbourhoods": (size, timed(lambda: [SearchSpace.neighbours(fresh(), p) for p in parents]),
                           timed(lambda: [fresh().neighbours(p) for p in parents])),
        "sampled networks": (len(networks), timed(lambda: [constraint.value(a) for a in networks]),
                             timed(lambda: constraint.values(networks))),
    }
    data = {"date": datetime.date.today().isoformat(), "table": args.table, "device": args.device,
            "train": args.train, "seed": args.seed, "bound_ms": bound, "repeats": args.repeats,
            "threads": args.threads, "command": "python benchmarks/bench_constrained.py " + " ".join(sys.argv[1:]),
            "rows": {k: {"architectures": n, "one_at_a_time_s": a, "batched_s": b} for k, (n, a, b) in rows.items()}}
    Path(args.out).write_text(json.dumps(data, indent=1) + "\n")
    path.unlink()
    print("| evaluated | architectures | one at a time: ms per architecture | batched | speed-up |")
    print("|---|---:|---:|---:|---:|")
    for what, (n, a, b) in rows.items():
        print(f"| {what} | {n} | {1e3 * a / n:.2f} | {1e3 * b / n:.2f} | {a / b:.1f}× |")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("search", help="constrained against unconstrained-then-filtered searches")
    p.add_argument("--out", required=True)
    p.add_argument("--strategies", default="random,evolution,dele")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--dele-seeds", type=int, default=5, help="DELE's searches take minutes each")
    p.add_argument("--budget", type=int, default=150)
    p.add_argument("--jobs", type=int, default=2)
    p = sub.add_parser("predicted", help="a predicted latency as a constraint: precision and recall")
    p.add_argument("--out", required=True)
    p.add_argument("--table", default="fbnet", choices=("fbnet", "ofa"))
    p.add_argument("--device", default="pixel3")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--train", type=int, default=1000)
    p.add_argument("--threads", type=int, default=1)
    p = sub.add_parser("batch", help="a predicted-latency constraint evaluated one at a time and in batches")
    p.add_argument("--out", required=True)
    p.add_argument("--table", default="fbnet", choices=("fbnet", "ofa"))
    p.add_argument("--device", default="pixel3")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train", type=int, default=300)
    p.add_argument("--parents", type=int, default=10)
    p.add_argument("--networks", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p = sub.add_parser("table", help="the table of a search results file")
    p.add_argument("json")
    args = ap.parse_args(argv)
    return {"predicted": cmd_predicted, "search": cmd_search, "table": cmd_table,
            "batch": cmd_batch}[args.command](args)


def cmd_search(args) -> int:
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

    def done(run: dict) -> None:
        runs.append(run)
        print(f"{run['strategy']:>10} {'constrained' if run['constrained'] else 'free':>11} seed "
              f"{run['seed']}: {run['wall_s']:.0f} s", file=sys.stderr)
    if args.jobs == 1:
        for task in tasks:
            done(one_search(*task))
    else:
        with cf.ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            for future in cf.as_completed([pool.submit(one_search, *t) for t in tasks]):
                done(future.result())
    runs.sort(key=lambda r: (r["strategy"], not r["constrained"], r["seed"]))
    data = {"date": datetime.date.today().isoformat(), "protocol": __doc__.split("Protocol (search):")[1].split(
                "Protocol (predicted)")[0].strip(), "experiment": EXPERIMENT.name, "budget": args.budget,
            "constrained_optimum": best, "command": "python benchmarks/bench_constrained.py " + " ".join(sys.argv[1:]),
            "summary": summarize(runs, best["objective"]), "runs": runs}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    head = json.dumps({k: v for k, v in data.items() if k != "runs"}, indent=1)[:-2]   # one line per run
    Path(args.out).write_text(head + ',\n "runs": [\n' + ",\n".join(json.dumps(r) for r in runs) + "\n ]\n}\n")
    print_table(data)
    return 0


def cmd_table(args) -> int:
    """The table again from a results file (summarized anew from its runs)."""
    data = json.loads(Path(args.json).read_text())
    data["summary"] = summarize(data["runs"], data["constrained_optimum"]["objective"])
    print_table(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
