"""Universal latency prediction (BENCHMARKS.md, "Universal latency prediction").

Whole-network graphs with node attributes (kernel, expand, channels, stride,
activation, SE, input resolution) -> measured latency, by ``narformer_v2`` and
``flowerformer``.

    export FLOWNAS_DATA=/path/to/data PYTHONPATH=.
    # 1. CPU latency of sampled mobilenet-space networks, measured here
    nice -n 10 python benchmarks/bench_latency_prediction.py measure --out runs/lat/cpu.jsonl
    # 2. train / test on a table's devices, or on the measured file
    nice -n 10 python benchmarks/bench_latency_prediction.py predict --table fbnet --devices pixel3 \\
        --predictors narformer_v2 flowerformer --seeds 0 1 --out runs/lat/pred.jsonl
    nice -n 10 python benchmarks/bench_latency_prediction.py predict --measured runs/lat/cpu.jsonl \\
        --out runs/lat/pred.jsonl
    # 3. the Markdown table of everything in the results file
    python benchmarks/bench_latency_prediction.py summary runs/lat/pred.jsonl

Every step appends one JSON line per finished unit (a network's round of
timings, a seed's predictor run) and skips the units its output file already
holds, so an interrupted run resumes where it stopped.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from flownas.evaluators.predicted import LATENCY_SETTINGS

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # no spinning threads on a shared machine

# the small resolutions the CPU latencies are measured at (the OFA tables use 128-224)
MEASURE_RESOLUTIONS = tuple(range(64, 129, 8))


def _done(path: Path, key) -> set:
    if not path.exists():
        return set()
    return {key(json.loads(line)) for line in path.read_text().splitlines() if line.strip()}


def _append(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")


# -- 1. measure ----------------------------------------------------------------
def sample_networks(n: int, seed: int):
    """``n`` distinct mobilenet-space networks at the small resolutions."""
    from flownas.spaces.mobilenet import MobileNetSpace
    space = MobileNetSpace(MEASURE_RESOLUTIONS)
    rng = np.random.default_rng(seed)
    archs: dict[str, object] = {}
    while len(archs) < n:
        arch = space.sample(rng)
        archs.setdefault(space.to_string(arch), arch)
    return space, list(archs.items())


def cmd_measure(args) -> None:
    """Rounds over all networks, each round in a new random order (so drift of
    the machine's load spreads over every network instead of biasing a few):
    build the network, ``warmup`` untimed passes, ``repeats`` timed passes
    (wall clock and this thread's CPU time); one line per network and round.
    A network's latency is the median over all its timed passes."""
    import torch
    torch.set_num_threads(1)
    space, nets = sample_networks(args.n, args.seed)
    out = Path(args.out)
    done = _done(out, lambda r: (r["round"], r["arch"]))
    rng = np.random.default_rng(args.seed + 1)
    for rnd in range(args.rounds):
        order = rng.permutation(len(nets))
        for idx in order:
            key, arch = nets[idx]
            if (rnd, key) in done:
                continue
            torch.manual_seed(0)
            model = space.to_model(arch, num_classes=1000).eval()
            r = space.config(arch).resolution
            x = torch.randn(args.batch, 3, r, r)
            wall, cpu = [], []
            with torch.inference_mode():
                for _ in range(args.warmup):
                    model(x)
                for _ in range(args.repeats):
                    w, c = time.perf_counter(), time.thread_time()
                    model(x)
                    cpu.append((time.thread_time() - c) * 1e3)
                    wall.append((time.perf_counter() - w) * 1e3)
            _append(out, {"round": rnd, "arch": key, "resolution": r, "batch": args.batch,
                          "wall_ms": wall, "cpu_ms": cpu, "loadavg": os.getloadavg()[0], "time": time.time()})
        print(f"round {rnd + 1}/{args.rounds} done", flush=True)


def measured_latencies(path: str | Path, metric: str = "wall_ms"):
    """(archs, per-network median over all timed passes) of a ``measure`` file."""
    from flownas.spaces.mobilenet import MobileNetSpace
    space = MobileNetSpace(MEASURE_RESOLUTIONS)
    passes: dict[str, list[float]] = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            passes.setdefault(rec["arch"], []).extend(rec[metric])
    keys = sorted(passes)
    return [space.from_string(k) for k in keys], np.array([statistics.median(passes[k]) for k in keys])



def cmd_noise(args) -> None:
    """The measurement's own repeatability, a floor for any predictor: each
    network's median of one round taken as a prediction of its median in the
    other (first two rounds), in the predictors' metrics."""
    from flownas.predictors import metrics
    rounds: dict[str, dict[int, dict]] = {}
    for line in Path(args.file).read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            rounds.setdefault(rec["arch"], {})[rec["round"]] = rec
    pairs = [(r[0], r[1]) for r in rounds.values() if 0 in r and 1 in r]
    loads = [r["loadavg"] for pair in pairs for r in pair]
    print(f"{len(pairs)} networks measured in rounds 0 and 1; load average {min(loads):.1f}-{max(loads):.1f} "
          f"(median {statistics.median(loads):.1f})")
    for metric in ("cpu_ms", "wall_ms"):
        first = np.array([statistics.median(a[metric]) for a, _ in pairs])
        second = np.array([statistics.median(b[metric]) for _, b in pairs])
        print(f"{metric}: round 1 / round 0 median ratio {np.median(second / first):.3f}; round 0 as a prediction "
              f"of round 1: MAPE {metrics.mape(second, first):.1f}%, Acc@10% {metrics.acc_within(second, first):.3f}, "
              f"Kendall tau {metrics.kendall_tau(second, first):.3f}; range {first.min():.1f}-{first.max():.1f} ms")


# -- 2. predict ----------------------------------------------------------------
# Both predictors fit log latency with MSE (relative errors, what MAPE and
# Acc@10% measure) and keep the last epoch (no validation split: the protocol
# is train / test only). Sizes are chosen for a shared 2-core CPU.
PRESETS = {
    "narformer_v2": dict(LATENCY_SETTINGS),   # flownas.evaluators.predicted: what `flownas fit-latency` fits
    "flowerformer": dict(dim=32, layers=2, heads=4, target_transform="log", loss="mse", epochs=30,
                         batch_size=64, lr=2e-3),
}


def table_latencies(table: str, device: str):
    from flownas.benchmarks.base import load_benchmark
    archs, y = load_benchmark(table).latencies(device)
    return archs, np.asarray(y, dtype=np.float64)


def fit_and_test(archs, y, predictor: str, params: dict, seed: int, n_train: int, n_test: int) -> dict:
    """One seed: permutation ``default_rng(seed)``; train on the first
    ``n_train``, test on the next ``n_test``."""
    import torch
    from flownas.predictors import metrics
    from flownas.registry import PREDICTORS
    if n_train + n_test > len(archs):
        raise SystemExit(f"train {n_train} + test {n_test} > {len(archs)} architectures")
    perm = np.random.default_rng(seed).permutation(len(archs))
    tr, te = perm[:n_train], perm[n_train:n_train + n_test]
    model = PREDICTORS.get(predictor)(**{**params, "seed": seed})
    wall, cpu = time.perf_counter(), time.process_time()
    model.fit([archs[i] for i in tr], y[tr])
    train_wall, train_cpu = time.perf_counter() - wall, time.process_time() - cpu
    pred = model.predict([archs[i] for i in te])
    return {"mape": metrics.mape(y[te], pred), "acc10": metrics.acc_within(y[te], pred, 0.1),
            "acc5": metrics.acc_within(y[te], pred, 0.05), "kendall_tau": metrics.kendall_tau(y[te], pred),
            "n_train": len(tr), "n_test": len(te), "train_wall_s": train_wall, "train_cpu_s": train_cpu,
            "torch_threads": torch.get_num_threads()}


def cmd_predict(args) -> None:
    import torch
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    done = _done(out, lambda r: (r["source"], r["device"], r["predictor"], r["seed"]))
    overrides = dict(args.param or [])
    if args.measured:
        datasets = [(f"measured:{Path(args.measured).name}", args.metric,
                     lambda d: measured_latencies(args.measured, d))]
    else:
        datasets = [(args.table, device, lambda d: table_latencies(args.table, d)) for device in args.devices]
    for source, device, load in datasets:
        archs = y = None
        for seed in args.seeds:
            for predictor in args.predictors:
                if (source, device, predictor, seed) in done:
                    continue
                if archs is None:
                    archs, y = load(device)
                params = {**PRESETS[predictor], **overrides}
                rec = fit_and_test(archs, y, predictor, params, seed, args.train, args.test)
                rec = {"source": source, "device": device, "predictor": predictor, "seed": seed, **rec,
                       "params": params, "date": time.strftime("%Y-%m-%d"), "loadavg": os.getloadavg()[0]}
                _append(out, rec)
                print(f"{source} {device} {predictor} seed {seed}: MAPE {rec['mape']:.2f}% "
                      f"Acc@10% {rec['acc10']:.3f} tau {rec['kendall_tau']:.3f} "
                      f"train {rec['train_wall_s']:.0f}s [cpu {rec['train_cpu_s']:.0f}s]", flush=True)


def cmd_baseline(args) -> None:
    """What no model gets: the training set's median latency predicted for
    every test network (same splits as ``predict``), for scale."""
    from flownas.predictors import metrics
    for device in args.devices:
        y = table_latencies(args.table, device)[1] if args.table else measured_latencies(args.measured, device)[1]
        for seed in args.seeds:
            perm = np.random.default_rng(seed).permutation(len(y))
            tr, te = perm[:args.train], perm[args.train:args.train + args.test]
            pred = np.full(len(te), np.median(y[tr]))
            print(f"{args.table or 'measured'} {device} seed {seed}: train median as prediction: "
                  f"MAPE {metrics.mape(y[te], pred):.2f}% Acc@10% {metrics.acc_within(y[te], pred):.3f}")


# -- 3. summary ----------------------------------------------------------------
def cmd_summary(args) -> None:
    """Mean (and spread) over seeds per source, device and predictor."""
    groups: dict[tuple, list[dict]] = {}
    for path in args.files:
        for line in Path(path).read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                groups.setdefault((r["source"], r["device"], r["predictor"]), []).append(r)
    print("| data | device | predictor | seeds | train / test | MAPE % | Acc@10% | Acc@5% | Kendall tau | train [cpu] s |")
    print("|---|---|---|---|---|---:|---:|---:|---:|---:|")
    for (source, device, predictor), rows in sorted(groups.items()):
        def stat(key, scale=1.0, fmt=".2f"):
            v = np.array([r[key] for r in rows]) * scale
            return f"{v.mean():{fmt}}" + (f" ± {v.std(ddof=1):{fmt}}" if len(v) > 1 else "")
        seeds = ",".join(str(r["seed"]) for r in sorted(rows, key=lambda r: r["seed"]))
        print(f"| {source} | {device} | {predictor} | {seeds} | {rows[0]['n_train']} / {rows[0]['n_test']} | "
              f"{stat('mape')} | {stat('acc10', 100, '.1f')} | {stat('acc5', 100, '.1f')} | "
              f"{stat('kendall_tau', fmt='.3f')} | {np.mean([r['train_wall_s'] for r in rows]):.0f} "
              f"[{np.mean([r['train_cpu_s'] for r in rows]):.0f}] |")


def _param(text: str):
    key, _, value = text.partition("=")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure", help="CPU latency of sampled mobilenet-space networks (one torch thread)")
    m.add_argument("--n", type=int, default=500)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--rounds", type=int, default=5)
    m.add_argument("--warmup", type=int, default=2)
    m.add_argument("--repeats", type=int, default=3)
    m.add_argument("--batch", type=int, default=1)
    m.add_argument("--out", required=True)
    m.set_defaults(func=cmd_measure)
    p = sub.add_parser("predict", help="train and test the predictors on latencies")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--table", choices=("fbnet", "ofa"))
    src.add_argument("--measured", help="a file written by 'measure'")
    p.add_argument("--devices", nargs="+", default=[], help="the table's latency settings")
    p.add_argument("--metric", default="cpu_ms", choices=("cpu_ms", "wall_ms"),
                   help="measured: thread CPU time (default; less distorted by a loaded machine) or wall time")
    p.add_argument("--predictors", nargs="+", default=sorted(PRESETS), choices=sorted(PRESETS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--train", type=int, default=1000)
    p.add_argument("--test", type=int, default=4000)
    p.add_argument("--param", type=_param, action="append", metavar="KEY=VALUE",
                   help="override a preset hyper-parameter (JSON value) of every predictor")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_predict)
    b = sub.add_parser("baseline", help="MAPE of predicting the training median (same splits as predict)")
    bsrc = b.add_mutually_exclusive_group(required=True)
    bsrc.add_argument("--table", choices=("fbnet", "ofa"))
    bsrc.add_argument("--measured")
    b.add_argument("--devices", nargs="+", required=True, help="table settings, or cpu_ms / wall_ms")
    b.add_argument("--seeds", nargs="+", type=int, default=[0])
    b.add_argument("--train", type=int, default=1000)
    b.add_argument("--test", type=int, default=4000)
    b.set_defaults(func=cmd_baseline)
    n = sub.add_parser("noise", help="round-to-round repeatability of a 'measure' file")
    n.add_argument("file")
    n.set_defaults(func=cmd_noise)
    s = sub.add_parser("summary", help="Markdown table of results files")
    s.add_argument("files", nargs="+")
    s.set_defaults(func=cmd_summary)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    sys.exit(main())
