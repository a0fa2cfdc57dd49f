"""The search benchmark behind BENCHMARKS.md ("Search"): every strategy on every
experiment of experiments/, many seeds, then one plot and one markdown table.

    python benchmarks/bench_search.py run --out bench-out/search [--seeds 30] [--only nb201-cifar10] [--strategies random,evolution]
    python benchmarks/bench_search.py report --out bench-out/search --plot benchmarks/figures/search.png
    # tuning: other seeds, strategy settings overridden, a tag in the file name
    python benchmarks/bench_search.py run --out bench-out/tune --first-seed 100 --seeds 10 --budget 100 \
        --only nb201-cifar10 --strategies predictor --set neighbours=true --tag nbr

``run`` writes one JSON per (experiment, strategy), the same figures as
``flownas bench search`` (which it calls through the same functions); an
existing JSON is kept, and each finished seed is appended at once to
``EXPERIMENT--STRATEGY.runs.jsonl``, so an interrupted run continues where it
stopped (``report`` also summarizes such partial runs, with their seed count). The strategies come
from the experiment configs: ``predictor`` and its predictor from
``NAME-predictor.yaml``, ``evolution`` from ``NAME-evolution.yaml``,
``dele`` from ``NAME-dele.yaml``, ``predictor-evolution`` with the same
predictor as ``predictor``, ``optuna`` (its default sampler, TPE) and
``random``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ("nb201-cifar10", "nb201-cifar100", "nb201-imagenet16", "nb101-cifar10")
STRATEGIES = ("random", "evolution", "optuna", "predictor", "predictor-evolution", "dele")


def config_for(experiment: str, strategy: str):
    from flownas.search.config import Component, SearchConfig
    guided = SearchConfig.load(ROOT / "experiments" / f"{experiment}-predictor.yaml")
    if strategy == "predictor":
        return guided
    if strategy in ("evolution", "dele"):
        return SearchConfig.load(ROOT / "experiments" / f"{experiment}-{strategy}.yaml")
    if strategy in ("random", "optuna"):   # optuna: its default sampler, TPE
        return replace(guided, strategy=Component(strategy), predictor=None)
    keep = {k: v for k, v in guided.strategy.params.items() if k in ("ensemble", "acquisition", "beta")}
    return replace(guided, strategy=Component("predictor-evolution", {**keep, "refit_every": 10}))


def run(args) -> None:
    import torch
    from flownas.search.bench import bench_config, bench_search, write_json
    from flownas.search.config import SearchConfig
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    overrides = dict(parse_setting(s) for s in args.set)
    for experiment in args.only.split(","):
        for strategy in args.strategies.split(","):
            path = out / f"{experiment}--{strategy}{'@' + args.tag if args.tag else ''}.json"
            if path.exists():
                print(f"{path} exists, kept", file=sys.stderr)
                continue
            config = bench_config(config_for(experiment, strategy), args.budget)
            config = with_overrides(config, overrides)
            partial = path.with_suffix(".runs.jsonl")
            done = [json.loads(line) for line in partial.read_text().splitlines()] if partial.exists() else []
            # runs of this configuration; re-reading an older record fills the keys added since
            done = [r for r in done if SearchConfig.from_dict(r["config"]).to_dict() == config.to_dict()]

            def keep(result, config=config, partial=partial):
                with partial.open("a") as f:
                    f.write(json.dumps({**result, "config": config.to_dict()}) + "\n")

            start = time.perf_counter()
            data = bench_search(config, seeds, jobs=args.jobs, progress=keep, done=done)
            data["command"] = " ".join(["python benchmarks/bench_search.py run", f"--only {experiment}",
                                        f"--strategies {strategy}", f"--first-seed {args.first_seed}",
                                        f"--seeds {args.seeds}", f"--budget {args.budget}", f"--jobs {args.jobs}"]
                                       + [f"--set {s}" for s in args.set]
                                       + ([f"--tag {args.tag}"] if args.tag else []))
            write_json(path, data)
            c = data["checkpoints"]
            print(f"{experiment} {strategy}: " + ", ".join(f"{n}: {v['mean']:.3f}" for n, v in c.items())
                  + f"; optimum {data['found_share']:.0%}, median {data['median_evals_to_optimum']}"
                  + f" ({time.perf_counter() - start:.0f} s)", flush=True)


def with_overrides(config, overrides: dict):
    """``config`` with ``--set`` applied: ``KEY`` sets a strategy parameter,
    ``predictor.KEY`` a predictor parameter, ``predictor`` the predictor's name
    (its parameters then start empty)."""
    from flownas.search.config import Component
    strategy = {k: v for k, v in overrides.items() if not k.startswith("predictor")}
    predictor = config.predictor
    if "predictor" in overrides:
        predictor = Component(str(overrides["predictor"]))
    tuned = {k.split(".", 1)[1]: v for k, v in overrides.items() if k.startswith("predictor.")}
    if tuned:
        if predictor is None:
            sys.exit(f"--set predictor.*: the {config.strategy.name} strategy has no predictor")
        predictor = replace(predictor, params={**predictor.params, **tuned})
    return replace(config, strategy=replace(config.strategy, params={**config.strategy.params, **strategy}),
                   predictor=predictor)


def parse_setting(text: str):
    """``key=value`` of ``--set``; the value read as YAML (true, 3, 0.5, ucb)."""
    import yaml
    key, sep, value = text.partition("=")
    if not sep or not key:
        sys.exit(f"--set {text!r}: expected KEY=VALUE")
    return key, yaml.safe_load(value)


def report(args) -> None:
    out = Path(args.out)
    results = {}
    for path in sorted(out.glob("*--*.runs.jsonl")):   # partial runs; a finished JSON replaces them
        runs = [json.loads(line) for line in path.read_text().splitlines()]
        experiment, strategy = path.name[:-len(".runs.jsonl")].split("--")
        results[(experiment, strategy)] = partial_summary(runs)
    for path in sorted(out.glob("*--*.json")):
        experiment, strategy = path.stem.split("--")
        results[(experiment, strategy)] = json.loads(path.read_text())
    if not results:
        sys.exit(f"no results in {out}")
    print("| experiment | strategy | seeds | 25 | 50 | 100 | 150 | optimum found | median evals to it | s per search |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    def order(item):   # a tagged run (``predictor@nbr``) after its strategy
        (experiment, strategy), _ = item
        return EXPERIMENTS.index(experiment), STRATEGIES.index(strategy.split("@")[0]), strategy

    for (experiment, strategy), d in sorted(results.items(), key=order):
        cells = [f"{d['checkpoints'][n]['mean']:.2f} ± {d['checkpoints'][n]['sd']:.2f}" if n in d["checkpoints"]
                 else "" for n in ("25", "50", "100", "150")]
        median = d["median_evals_to_optimum"]
        print(f"| {experiment} | {strategy} | {len(d['seeds'])} | " + " | ".join(cells)
              + f" | {d['found_share']:.0%} | {median if median is not None else '> ' + str(d['budget'])}"
              + f" | {d['wall_s']['median']:.1f} |")
    if args.plot:
        plot(results, Path(args.plot))


def partial_summary(runs):
    """The figures of an unfinished benchmark, from its finished seeds."""
    from flownas.search.api import build
    from flownas.search.bench import optimum, summarize
    from flownas.search.config import SearchConfig
    config = SearchConfig.from_dict(runs[0]["config"])
    parts = build(config)
    best = optimum(parts.evaluator, parts.space)
    budget = config.budget.evaluations
    return {"config": runs[0]["config"], "seeds": sorted(r["seed"] for r in runs), "budget": budget,
            "objective": parts.evaluator.objective, "test_metric": parts.evaluator.test_metric,
            "optimum": best, **summarize(runs, best, budget), "runs": sorted(runs, key=lambda r: r["seed"])}


def plot(results, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    experiments = [e for e in EXPERIMENTS if any(k[0] == e for k in results)]
    fig, axes = plt.subplots(1, len(experiments), figsize=(4.6 * len(experiments), 3.8), squeeze=False)
    for ax, experiment in zip(axes[0], experiments):
        for strategy in STRATEGIES:
            d = results.get((experiment, strategy))
            if d is None:
                continue
            curves = np.array([[np.nan if v is None else v for v in r["test"]] for r in d["runs"]])
            mean = np.nanmean(curves, axis=0)
            x = np.arange(1, len(mean) + 1)
            ax.plot(x, mean, label=f"{strategy} ({len(curves)} seeds)")
            ax.fill_between(x, mean - np.nanstd(curves, axis=0) / np.sqrt(len(curves)),
                            mean + np.nanstd(curves, axis=0) / np.sqrt(len(curves)), alpha=0.2)
        any_d = next(d for k, d in results.items() if k[0] == experiment)
        metric = any_d["test_metric"] or any_d["objective"]
        best = any_d["optimum"]["test"] if any_d["test_metric"] else any_d["optimum"]["objective"]
        ax.axhline(best, color="black", linewidth=0.8, linestyle=":", label="test of the best-objective cell")
        finite = [statistics.fmean(r["test"][min(len(r["test"]), 20) - 1] for r in d["runs"])
                  for k, d in results.items() if k[0] == experiment]
        ax.set_ylim(min(finite) - 0.3, best + 0.3 * (best - min(finite)) + 0.05)
        ax.set_title(experiment, fontsize=10)
        ax.set_xlabel("evaluations")
        ax.set_ylabel(f"{metric} of the incumbent")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle("mean over seeds (band: ± 1 s.e.)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"plot: {path}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run")
    p.add_argument("--out", required=True)
    p.add_argument("--seeds", type=int, default=30)
    p.add_argument("--budget", type=int, default=150)
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--only", default=",".join(EXPERIMENTS))
    p.add_argument("--strategies", default=",".join(STRATEGIES))
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a strategy setting, or predictor.KEY / predictor=NAME (repeatable)")
    p.add_argument("--tag", help="suffix of the result files (EXPERIMENT--STRATEGY@TAG.json)")
    p.set_defaults(func=run)
    p = sub.add_parser("report")
    p.add_argument("--out", required=True)
    p.add_argument("--plot")
    p.set_defaults(func=report)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
