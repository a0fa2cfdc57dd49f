"""Ray executor: worker utilization and per-candidate dispatch overhead for W
simulated workers.

Protocol: one local Ray instance with 16 fake CPUs (``ray.init(num_cpus=16)``:
the evaluations sleep, so 16 of them fit on a 2-core machine), started once
and warmed up (16 worker processes running, one untimed search). For each W in ``--workers`` and
each seed, a random-strategy search on NB201 cifar10 runs ``--per-worker`` x W
candidates through the real ``SearchLoop`` and ``RayExecutor(workers=W)``
with a SQLite ledger; each evaluation sleeps for the candidate's NB201
200-epoch training time (the op-count fit of the logged NATS times, R^2 =
0.995, see ``flownas.evaluators.tabular``) times ``--scale`` (1.6e-4: 0.2 to
1.0 s).

Reported per run:

* utilization: the evaluations' wall time (measured on the workers) over W x
  the search's wall time: ramp-up, the tail where the last evaluations run
  alone, driver work (strategy, ledger) and dispatch all count against it;
* dispatch overhead per candidate: (worker start - driver submit) + (driver
  sees the result - worker end), i.e. Ray's round trip outside the
  evaluation; mean and median over the candidates;
* the driver's CPU time per candidate.

    RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 FLOWNAS_DATA=/work/shared/data PYTHONPATH=$PWD \\
        nice -n 10 python benchmarks/bench_ray.py --seeds 0 1 2
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from flownas.evaluators.base import Evaluator, Result
from flownas.evaluators.tabular import _nb201_times, _op_counts
from flownas.registry import STRATEGIES
from flownas.runtime.ray import RayExecutor
from flownas.search.loop import Budget, SearchLoop
from flownas.spaces.nb201 import NB201Space
from flownas.store import Ledger, storage_url

HERE = Path(__file__).resolve().parent


class SleepEvaluator(Evaluator):
    """Sleeps for the scaled NB201 training time; records when it ran (worker clock)."""

    objective = "val"

    def __init__(self, coef: list[float], scale: float):
        self.coef = coef
        self.scale = scale

    def evaluate(self, arch, fidelity=None):
        start = time.time()
        cost = float(np.dot(self.coef, _op_counts(NB201Space().edge_ops(arch))))
        time.sleep(cost * self.scale)
        return Result({"val": -cost, "start": start, "end": time.time()}, cost)


class TimedRayExecutor(RayExecutor):
    """Notes when each candidate was submitted and when the driver saw it done
    (the loop submits ``evaluate(evaluator, arch, fidelity)``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.submitted: dict[str, float] = {}
        self.seen: dict[str, float] = {}

    def submit(self, fn, /, *args, resources=None, **kwargs):
        key = args[1].key
        self.submitted[key] = time.time()
        future = super().submit(fn, *args, resources=resources, **kwargs)
        future.add_done_callback(lambda f: self.seen.setdefault(key, time.time()))
        return future


def _sleep(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def warm_up(workers: int, rounds: int = 8) -> int:
    """Start ``workers`` worker processes: Ray starts them on demand, two at a
    time here, so rounds of ``workers`` sleeps run until they all run at once."""
    executor = RayExecutor(workers=workers)
    for _ in range(rounds):
        futures = [executor.submit(_sleep, 3.0) for _ in range(workers)]
        pending = set(futures)
        while pending:
            _, pending = executor.wait(pending)
        running = len({f.result() for f in futures})
        if running == workers:
            break
    return running


def run(workers: int, seed: int, candidates: int, evaluator: SleepEvaluator, folder: str | None) -> dict:
    """One search; ``folder``: where its SQLite ledger goes (None: in memory)."""
    executor = TimedRayExecutor(workers=workers)
    ledger = Ledger.create(folder and storage_url(Path(folder) / f"w{workers}-s{seed}.db"), "bench", {})
    space = NB201Space()
    loop = SearchLoop(space, STRATEGIES.get("random")(space, seed=seed), evaluator, ledger, executor=executor,
                      budget=Budget(candidates))
    cpu = time.process_time()
    result = loop.run()
    cpu = time.process_time() - cpu
    ledger.close()
    overheads = [(r.metrics["start"] - executor.submitted[r.arch.key]) + (executor.seen[r.arch.key] - r.metrics["end"])
                 for r in result.records]
    return {"workers": workers, "seed": seed, "ledger": "sqlite" if folder else "memory", "candidates": len(result.records), "wall_s": result.wall_s,
            "busy_s": result.busy_s, "utilization": result.utilization,
            "mean_eval_s": result.busy_s / len(result.records),
            "overhead_ms_mean": 1e3 * statistics.fmean(overheads),
            "overhead_ms_median": 1e3 * statistics.median(overheads),
            "overhead_ms_p95": 1e3 * float(np.percentile(overheads, 95)),
            "driver_cpu_ms_per_candidate": 1e3 * cpu / len(result.records), "failures": result.failures}


def plot(rows: list[dict], path: Path) -> None:
    """Utilization and dispatch overhead against W (medians over seeds), one line per ledger."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(9.5, 3.8))
    ws = sorted({r["workers"] for r in rows})
    for ledger, marker, colour in (("memory", "o", "C0"), ("sqlite", "s", "C1")):
        by = {w: [r for r in rows if r["workers"] == w and r.get("ledger") == ledger] for w in ws}
        x = [w for w in ws if by[w]]
        if not x:
            continue
        label = {"memory": "in-memory ledger", "sqlite": "SQLite ledger"}[ledger]
        a.plot(x, [100 * statistics.median(r["utilization"] for r in by[w]) for w in x], marker + "-", color=colour,
               label=label)
        b.plot(x, [statistics.median(r["overhead_ms_median"] for r in by[w]) for w in x], marker + "-",
               color=colour, label=f"{label}: median")
        b.plot(x, [statistics.median(r["overhead_ms_mean"] for r in by[w]) for w in x], marker + ":",
               color=colour, label=f"{label}: mean")
    a.axhline(90, color="grey", ls="--", lw=1, label="target 90%")
    a.set(xscale="log", xticks=ws, xticklabels=ws, xlabel="workers W", ylabel="utilization (%)", ylim=(0, 100),
          title="busy / (W x wall time)")
    a.legend(loc="lower left", fontsize=8)
    b.axhline(20, color="grey", ls="--", lw=1, label="target 20 ms")
    b.set(xscale="log", ylim=(0, None), xticks=ws, xticklabels=ws, xlabel="workers W", ylabel="ms per candidate",
          title="dispatch overhead (Ray round trip)")
    b.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--per-worker", type=int, default=24, help="candidates per worker in each search")
    p.add_argument("--scale", type=float, default=1.6e-4, help="seconds slept per second of NB201 training")
    p.add_argument("--ledger", choices=["memory", "sqlite"], default="memory",
                   help="in memory: the executor alone; sqlite: as a real search (the driver writes each candidate)")
    p.add_argument("--json", default=str(HERE / "results" / "bench_ray.jsonl"), help="one line per run (appended)")
    p.add_argument("--plot", default=str(HERE / "figures" / "ray_scaling.png"),
                   help="drawn from every run of --json (both ledgers)")
    args = p.parse_args(argv)
    import ray
    ray.init(num_cpus=max(args.workers), include_dashboard=False, logging_level="WARNING")
    try:
        print(f"warm-up: {warm_up(max(args.workers))} worker processes at once", flush=True)
        _, coef = _nb201_times("cifar10", "200")
        evaluator = SleepEvaluator([float(c) for c in coef], args.scale)
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            folder = tmp if args.ledger == "sqlite" else None
            run(1, 1000, 2, evaluator, folder)   # untimed: first imports of the ledger's machinery
            for seed in args.seeds:
                for w in args.workers:
                    row = run(w, seed, args.per_worker * w, evaluator, folder)
                    row["date"] = time.strftime("%Y-%m-%d")
                    rows.append(row)
                    with open(out, "a") as fh:
                        fh.write(json.dumps(row) + "\n")
                    print(f"W={w:>2} seed {seed}: {row['candidates']} candidates, wall {row['wall_s']:.1f} s, "
                          f"utilization {row['utilization']:.1%}, overhead median {row['overhead_ms_median']:.1f} ms "
                          f"(mean {row['overhead_ms_mean']:.1f}, p95 {row['overhead_ms_p95']:.1f}), driver CPU "
                          f"{row['driver_cpu_ms_per_candidate']:.1f} ms/candidate", flush=True)
    finally:
        ray.shutdown()
    plot([json.loads(line) for line in open(args.json)], Path(args.plot))
    print("\n| W | candidates | utilization (median of seeds) | dispatch overhead ms: median / p95 | "
          "driver CPU ms/candidate |\n|---|---|---|---|---|")
    for w in args.workers:
        rs = [r for r in rows if r["workers"] == w]
        print(f"| {w} | {rs[0]['candidates']} | {statistics.median(r['utilization'] for r in rs):.1%} | "
              f"{statistics.median(r['overhead_ms_median'] for r in rs):.1f} / "
              f"{statistics.median(r['overhead_ms_p95'] for r in rs):.1f} | "
              f"{statistics.median(r['driver_cpu_ms_per_candidate'] for r in rs):.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
