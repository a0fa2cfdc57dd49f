"""``flownas search``, ``flownas report`` and ``flownas bench search``."""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from ..cli import positive_int, resource, seed
from ..errors import ConfigError
from ..predictors_cli import SEEDS_HELP, parse_seed_spec
from ..store import shown_url

SEARCH_FLAGS = ("space", "dataset", "strategy", "predictor", "budget", "seed", "storage", "out", "name", "executor",
                "workers", "ray_address", "num_gpus", "num_cpus", "threads", "constraints")


def _add_search_flags(p: argparse.ArgumentParser, *, run_flags: bool = True, seed_flag: bool = True) -> None:
    p.add_argument("config", nargs="?", help="a YAML configuration (see experiments/); flags override it")
    p.add_argument("--space", help="search space (default nb201)")
    p.add_argument("--dataset", help="dataset of the evaluator (default cifar10)")
    p.add_argument("--strategy", help="random, evolution, predictor, predictor-evolution, optuna, ... "
                                      "(default predictor)")
    p.add_argument("--predictor", help="predictor of a predictor-guided strategy (default: the best registered)")
    p.add_argument("--budget", type=positive_int, help="number of evaluations (default 100)")
    if seed_flag:
        p.add_argument("--seed", type=seed)
    else:   # bench search: --seeds names them; --seed is refused, not read as --seeds (an abbreviation) or ignored
        p.add_argument("--seed", help=argparse.SUPPRESS)
    p.add_argument("--constraint", dest="constraints", action="append", metavar="BOUNDS EVALUATOR [KEY=VALUE ...]",
                   help="search only the members within a bound, as the summary prints it; repeat for more "
                        "(they replace the file's): 'latency_ms <= 5 latency_table device=pixel3', "
                        "'0.5 <= params_m_c10 <= 1 tabular'")
    p.add_argument("--threads", type=positive_int,
                   help="torch threads of the search process (default 1: fastest for the predictors' small graphs)")
    if run_flags:
        p.add_argument("--storage", help="ledger: SQLAlchemy URL or SQLite file (default RUN_DIR/ledger.db); a password in the "
                            "URL is never written, so --resume takes the URL again (or PGPASSWORD, ~/.pgpass)")
        p.add_argument("--out", help="run directory (default runs/NAME)")
        p.add_argument("--name", help="the search's name: its run directory runs/NAME and its study in the ledger "
                                      "(default: the configuration's name); another for each search into one "
                                      "database")
        p.add_argument("--executor", help="local (default), inline, process, ray, or a registered one")
        p.add_argument("--workers", type=positive_int, help="evaluations in flight (default 1)")
        p.add_argument("--ray-address", help="ray executor: the cluster (auto, HOST:PORT or ray://HOST:PORT; "
                                             "default: start Ray on this machine)")
        p.add_argument("--num-gpus", type=resource, help="ray executor: GPUs per evaluation (fractions allowed)")
        p.add_argument("--num-cpus", type=resource, help="ray executor: CPUs per evaluation (default 1)")


def register(subparsers) -> None:
    p = subparsers.add_parser("search", help="run (or --resume) a search",
                              description="Run a search: a configuration, flags, or both (flags win). "
                                          "Without arguments: a predictor-guided search on NB201 cifar10.")
    _add_search_flags(p)
    p.add_argument("--resume", action="store_true",
                   help="continue the search in the run directory (finished candidates are not re-evaluated)")
    p.add_argument("--retry-failed", action="store_true",
                   help="with --resume: run the failed candidates again first (e.g. after a transient error); "
                        "the failed trials stay in the ledger")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--check", action="store_true",
                   help="build everything the search needs (tables, constraints, components), say what it "
                        "would run, and stop: nothing is evaluated or written")
    p.set_defaults(func=_cmd_search)

    p = subparsers.add_parser("report", help="redraw a run directory's report (plots, CSV, best) from its ledger")
    p.add_argument("run_dir")
    p.add_argument("--storage", help="the ledger's URL with its password (the run directory keeps none)")
    p.set_defaults(func=_cmd_report)


def register_bench(subparsers) -> None:
    p = subparsers.add_parser("search", help="search efficiency of a strategy over many seeds (tabular)",
                              description="Runs one search per seed and reports the incumbent's test "
                                          "accuracy (or, on a table without a test column, the objective) "
                                          "after 25/50/100/150 evaluations and at the budget, how often and "
                                          "how soon the global optimum is found, and the wall time.")
    _add_search_flags(p, run_flags=False, seed_flag=False)
    p.add_argument("--seeds", type=parse_seed_spec, default=30, metavar="S",
                   help=f"{SEEDS_HELP}; a count starts at --first-seed (default 30)")
    p.add_argument("--first-seed", type=seed, help="a count of --seeds runs FIRST..FIRST+SEEDS-1 (default 0)")
    p.add_argument("--jobs", type=positive_int, default=1, help="seeds run in parallel processes (default 1)")
    p.add_argument("--json", help="write every figure and per-seed curve to this file "
                                  "(checked before the seeds run)")
    p.set_defaults(func=_cmd_bench, budget_default=150)


# -- search -------------------------------------------------------------------
def _flags(args) -> dict[str, Any]:
    return {k: getattr(args, k, None) for k in SEARCH_FLAGS}


def _config(args):
    """The configuration file (or None), and the configuration the flags make of
    it. On --resume the flags apply to the recorded configuration (``resume_run``),
    so here only the run directory is taken from them: on a default (local)
    configuration, --num-gpus would be refused."""
    from .config import SearchConfig
    base = SearchConfig.load(args.config) if args.config else None
    flags = _flags(args)
    if getattr(args, "resume", False):
        flags = {key: flags[key] for key in ("out", "name")}
    return base, (base or SearchConfig.from_dict({})).with_flags(**flags)


def _cmd_search(args) -> int:
    from .api import check_retry_failed, run_search
    check_retry_failed(args.retry_failed, args.resume)   # --check too
    given, config = _config(args)
    if args.check:
        return _check(args, given, config)
    progress = None if args.quiet else _Progress()
    try:
        if args.resume:
            run_dir = Path(args.out) if args.out else config.run_dir
            result, run, files = run_search(given, resume=True, run_dir=run_dir, flags=_flags(args),
                                            callbacks=[progress] if progress else [],
                                            retry_failed=args.retry_failed)
        else:
            result, run, files = run_search(config, callbacks=[progress] if progress else [],
                                            retry_failed=args.retry_failed)
    finally:
        if progress:
            progress.stop()
    _print_summary(run, result.records, files, result=result)
    return 0


def _check(args, given, config) -> int:
    import yaml
    from rich.console import Console
    from rich.table import Table
    from .api import budget_text, check_search
    if args.resume:
        found = check_search(given, resume=True, run_dir=Path(args.out) if args.out else config.run_dir,
                             flags=_flags(args))
    else:
        found = check_search(config)
    config, run, records = found["config"], found["run"], found["records"]
    table = Table(title="flownas search --check: nothing was run or written", show_header=False,
                  title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("run", f"{run.dir} ({shown_url(run.storage_url)}, study {run.study})")
    if records is None:
        table.add_row("state", "new search")
    else:
        finished = [r for r in records if r.finished]
        failed = sum(r.state == "failed" for r in finished)
        table.add_row("state", f"resumes: {len(finished)} finished ({failed} failed), "
                               f"{len(records) - len(finished)} in flight when it stopped")
    table.add_row("space", found["space"])
    table.add_row("objective", found["objective"] + (f" (test: {found['test_metric']})" if found["test_metric"] else ""))
    table.add_row("strategy", config.strategy.name + (f" + {config.predictor.name}" if config.predictor else ""))
    for c in config.constraints:
        table.add_row("constraint", str(c))
    table.add_row("budget", budget_text(config.budget))
    table.add_row("executor", f"{config.executor.name}, {found['workers']} worker(s)")
    Console().print(table)
    print("# the configuration as it would run\n" + yaml.safe_dump(config.to_dict(), sort_keys=False), end="")
    return 0


class _Progress:
    """A rich progress bar: evaluations, best so far, elapsed and ETA."""

    def __init__(self):
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("best {task.fields[best]}"), TimeElapsedColumn(),
                                 TextColumn("ETA"), TimeRemainingColumn(),
                                 console=Console(stderr=True), transient=False)
        self.task = None

    def __call__(self, record, loop) -> None:
        if self.task is None:
            self.progress.start()
            self.task = self.progress.add_task("search", total=loop.budget.evaluations, best="-")
        best = f"{loop.best.value:.4g}" if loop.best else "-"
        so_far = [f"replayed {loop.replayed}"] if loop.replayed else []
        so_far += [f"retried {loop.retried}"] if loop.retried else []
        label = f"search ({', '.join(so_far)})" if so_far else "search"
        self.progress.update(self.task, completed=len(loop.finished), best=best, description=label)

    def stop(self) -> None:
        if self.task is not None:
            self.progress.stop()


def _print_summary(run, records, files, result=None) -> None:
    from rich.console import Console
    from rich.table import Table
    from ..report import best_record
    ledger = run.open_ledger()
    try:
        meta = ledger.meta
    finally:
        ledger.close()
    config = meta["config"]
    best = best_record(records)
    table = Table(title="flownas search" if result is not None else "flownas report", show_header=False,
                  title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    name = lambda v: v if isinstance(v, str) else (v or {}).get("name")   # noqa: E731
    table.add_row("run", str(run.dir))
    table.add_row("ledger", f"{shown_url(run.storage_url)} (study {run.study})")
    table.add_row("search", f"{name(config['space'])} {config.get('dataset') or ''} · {name(config['strategy'])}"
                  + (f" + {name(config['predictor'])}" if config.get("predictor") else "")
                  + f" · seed {config['seed']}")
    finished = [r for r in records if r.finished]
    from .config import _budget
    budget = _budget(config["budget"])   # the recorded one
    failed = sum(r.state == "failed" for r in finished)
    details = [f"{failed} failed"]   # of the finished: "2 finished, 1 failed" read as three
    if result is not None:
        details += [f"{result.replayed} replayed from the ledger", f"stopped: {_stopped(result, budget, finished)}"]
    retried = sum(bool(r.retried) for r in finished)
    if retried:
        details.append(f"{retried} ran again after failing (--retry-failed)")
    line = f"{len(finished)} finished ({'; '.join(details)})"
    if result is None:   # a report: of which budget, and whether the search stopped part-way
        from .api import budget_text
        line += f" of a budget of {budget_text(budget)}"
        in_flight = len(records) - len(finished)
        if in_flight:
            line += f"; {in_flight} in flight when it stopped: continue it with --resume"
    table.add_row("evaluations", line)
    if config.get("constraints"):
        from .config import parse_constraints
        table.add_row("constraints", "; ".join(map(str, parse_constraints(config["constraints"]))))
    if best is not None:
        from ..registry import get_space
        space = get_space(name(config["space"]))
        table.add_row("best", space.to_string(best.arch))
        table.add_row(meta["objective"], f"{best.value:.4f} (evaluation {best.done + 1})")
        test = meta.get("test_metric")
        if test and test in best.metrics:
            table.add_row(test, f"{best.metrics[test]:.4f}")
        for metric, value in best.info.get("constraints", {}).items():
            table.add_row(metric, f"{value:g} (constrained)")
    cost = sum(r.cost_s or 0.0 for r in finished)
    amount = f"{cost / 3600:.1f} h" if cost >= 360 else f"{cost:.1f} s"
    tabular = name(config["evaluator"]) == "tabular"
    what = "training (simulated: the table's times)" if tabular else "evaluation"
    evaluator = config["evaluator"] if isinstance(config["evaluator"], dict) else {}
    if tabular and evaluator.get("benchmark") == "nb301":   # surrogate accuracies, no training times
        table.add_row("cost", "none recorded (the table logs no training times)")
    else:
        table.add_row("cost", f"{amount} of {what}")
    if result is not None:
        table.add_row("wall time", f"{result.wall_s:.1f} s")
        executor = name(config["executor"])
        line = f"{result.workers} ({executor})"
        if result.utilization is not None and result.busy_s > 0:
            line += f", busy evaluating {result.utilization:.0%} of the wall time"
        table.add_row("workers", line)
    deaths = sum(len(r.failures) for r in records)
    if deaths:
        table.add_row("worker deaths", f"{deaths} (the candidates ran again; see the trials' failures)")
    table.add_row("files", ", ".join(sorted(p.name for p in files.values())) or "-")
    Console().print(table)


# -- report -------------------------------------------------------------------
def _stopped(result, budget, finished: list) -> str:
    """Why the search stopped; for a budget, which one ran out."""
    if result.stopped != "budget":
        return result.stopped
    if budget.evaluations is not None and len(finished) >= budget.evaluations:
        return f"budget of {budget.evaluations} evaluations"
    if budget.cost_s is not None:
        return f"budget of {budget.cost_s:g} s of cost"
    return "budget"


def _cmd_report(args) -> int:
    from .api import Run, write_run_report
    run = Run.load(args.run_dir, args.storage)
    ledger = run.open_ledger()
    try:
        files = write_run_report(run, ledger)
        records = ledger.records()
    finally:
        ledger.close()
    _print_summary(run, records, files)
    return 0


# -- bench --------------------------------------------------------------------
def _cmd_bench(args) -> int:
    from ..cache import off_unless_set
    from ..data import check_output
    from .bench import bench_config, bench_search, write_json
    seeds = _bench_seeds(args)
    out = check_output(args.json, "--json") if args.json else None   # before the seeds run, not after
    off_unless_set()   # each seed's wall time includes DELE's pre-training
    if args.budget is None:
        args.budget = args.budget_default
    _, config = _config(args)
    config = bench_config(config, args.budget)
    label = _reported_metric(config)
    start = time.perf_counter()

    def progress(run):
        value = run["test"][-1]
        print(f"seed {run['seed']:>3}: {label} of the incumbent after {len(run['test'])} evaluations "
              f"{'-' if value is None else f'{value:.3f}'} ({run['wall_s']:.1f} s)", file=sys.stderr)

    data = bench_search(config, seeds, jobs=args.jobs, progress=progress)
    data["command"] = _bench_command(args)
    print(f"{config.space.name} {config.dataset or ''} {config.strategy.name}: {len(seeds)} seed{'s' if len(seeds) != 1 else ''}, "
          f"budget {args.budget}, {time.perf_counter() - start:.0f} s")
    print(f"optimum{' within the constraints' if config.constraints else ''}: "
          f"{data['objective']} {data['optimum']['objective']:.4f}"
          + (f", {data['test_metric']} {data['optimum']['test']:.4f}" if data["test_metric"] else ""))
    for n, c in data["checkpoints"].items():
        print(f"  after {n:>3} evaluations: {data['test_metric'] or data['objective']} "
              + (f"{c['mean']:.3f} ± {c['sd']:.3f}" if c["mean"] is not None else "- (no seed has a value)"))
    median = data["median_evals_to_optimum"]
    print(f"  optimum found by {data['found_share']:.0%} of seeds; median evaluations to find it: "
          f"{median if median is not None else f'> {args.budget}'}")
    print(f"  wall time per search: mean {data['wall_s']['mean']:.1f} s, max {data['wall_s']['max']:.1f} s")
    if out is not None:   # after the summary: a write that fails still leaves it printed (and a copy kept)
        write_json(out, data)
    return 0


def _bench_seeds(args) -> list[int]:
    """The seeds ``--seeds`` and ``--first-seed`` name; ``--seed`` is refused
    (it used to be read and ignored)."""
    if args.seed is not None:
        raise ConfigError(f"bench search runs one search per seed: name them with --seeds (a count from "
                          f"--first-seed, or a list: '{args.seed},' is seed {args.seed} alone), not --seed")
    if isinstance(args.seeds, int):
        first = args.first_seed or 0
        return list(range(first, first + args.seeds))
    if args.first_seed is not None:
        raise ConfigError(f"--first-seed starts a count of --seeds; --seeds {_seeds_text(args.seeds)} "
                          f"already names the seeds")
    return list(args.seeds)


def _seeds_text(seeds: list[int]) -> str:
    """A list of seeds as --seeds takes it ("3," for the one seed 3)."""
    return ",".join(map(str, seeds)) + ("," if len(seeds) == 1 else "")


def _reported_metric(config) -> str:
    """The column the per-seed lines report: the evaluator's test metric, or
    its objective where the table has no test column (NB101: val_acc_108)."""
    from ..errors import construct
    from ..registry import EVALUATORS
    evaluator = construct("evaluator", EVALUATORS.get(config.evaluator.name), **config.evaluator_params())
    return getattr(evaluator, "test_metric", None) or evaluator.objective


def _bench_command(args) -> str:
    """The command line that reproduces this benchmark."""
    parts = ["flownas", "bench", "search"] + ([args.config] if args.config else [])
    for flag in ("space", "dataset", "strategy", "predictor"):
        if getattr(args, flag) is not None:
            parts += [f"--{flag}", str(getattr(args, flag))]
    parts += ["--budget", str(args.budget)]
    if isinstance(args.seeds, int):
        parts += ["--seeds", str(args.seeds), "--first-seed", str(args.first_seed or 0)]
    else:
        parts += ["--seeds", _seeds_text(args.seeds)]
    return " ".join(shlex.quote(p) for p in parts)
