"""DELE vs the same FlowerFormer encoder without experts, NB201 cifar10,
protocol A of ``flownas bench predictors``.

Per seed s: permutation ``numpy.random.default_rng(s)`` of the 15,625 cells;
train = the first N, validation = the next 40 (model selection by Kendall
tau), test = the rest; target ``c10_valid_val_acc_200`` everywhere.

Variants (every one uses FlowerFormer's default encoder and fine-tuning
hyper-parameters, 200 epochs):

* ``flowerformer``: the predictor alone;
* ``dele_table``: DELE pre-trained on all 15,625 cells with the table signals
  (default every low-fidelity column: the 12-epoch accuracies on the three
  datasets, params, NASWOT; ``--param signals=[...]`` picks some);
* ``dele_proxies``: DELE pre-trained on the 1,104 cells of the zero-cost
  subset with the proxies flownas computed there (``bench_proxies.py``'s
  cache: synflow, snip, grad_norm, grasp, fisher, jacov, nwot, l2_norm, plain,
  params, flops).

Pre-training runs once per variant (seed 0, ``--pretrain-epochs``) and every
seed fine-tunes a copy, so the spread over seeds is that of the labelled
split and of the fine-tuning. Results are appended to ``--out`` (JSON lines)
and a finished (variant, N, seed) is not run again.

    FLOWNAS_DATA=/work/shared/data PYTHONPATH=. python benchmarks/bench_dele.py \\
        --variants flowerformer dele_table --sizes 78 156 --seeds 0 1 2 3 4
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import pickle
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # before torch loads: no spin-waiting threads

import numpy as np  # noqa: E402

from flownas.evaluators.proxies import PROXIES  # noqa: E402
from flownas.predictors_cli import load_targets, split  # noqa: E402

VARIANTS = ("flowerformer", "dele_table", "dele_proxies")


def proxy_pool(path: Path, archs_by_string: dict):
    """The zero-cost subset's cells and flownas's proxies of them."""
    if not path.exists():
        raise SystemExit(f"{path} is missing: run benchmarks/bench_proxies.py first")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows = [r for r in rows if r.get("seed") == 0]
    names = list(PROXIES) + ["params", "flops"]
    pool = [archs_by_string[r["arch"]] for r in rows]
    return pool, {n: [r[n] for r in rows] for n in names}


def pretrained(variant: str, args, archs, params: dict):
    """The variant's pre-trained DELE, from the cache when it was made before."""
    import torch

    from flownas.predictors.dele import DELEPredictor
    from flownas.spaces.nb201 import NB201Space
    from flownas.predictors.dele import PRETRAIN_PARAMS
    shaping = {k: v for k, v in sorted(params.items()) if k in PRETRAIN_PARAMS}
    tag = "".join(f"_{k}={json.dumps(v, separators=(',', ''))}" for k, v in shaping.items())
    cache = Path(args.out).with_name(f"dele_pretrained_{variant}_{args.pretrain_epochs}ep{tag}.pkl")
    if cache.exists():
        with cache.open("rb") as fh:
            return pickle.load(fh)
    start = time.perf_counter()
    p = DELEPredictor(seed=0, pretrain_epochs=args.pretrain_epochs, **shaping)
    if variant == "dele_table":
        p.pretrain(*p.table_pool("nb201"))
    else:
        space = NB201Space()
        p.pretrain(*proxy_pool(Path(args.proxies), {space.to_string(a): a for a in archs}))
    seconds = time.perf_counter() - start
    print(f"{variant}: pre-trained on {p.pretrain_size_} cells, signals {', '.join(p.signals)}, "
          f"{args.pretrain_epochs} epochs, {seconds:.0f} s, torch threads {torch.get_num_threads()}",
          file=sys.stderr, flush=True)
    with cache.open("wb") as fh:
        pickle.dump((p, seconds), fh)
    return p, seconds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    ap.add_argument("--sizes", nargs="+", type=int, default=[78, 156])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--pretrain-epochs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--proxies", default="runs/bench_proxies_cifar10.jsonl")
    ap.add_argument("--out", default="runs/bench_dele.jsonl")
    ap.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                    help="a hyper-parameter (JSON value) for every variant, repeatable; those that shape "
                         "DELE's pre-training (e.g. contract_ops=[]) pre-train it anew")
    args = ap.parse_args(argv)

    import torch

    from flownas.predictors.flowerformer import FlowerFormerPredictor
    from flownas.predictors.metrics import summary
    from flownas.spaces.nb201 import NB201Space
    torch.set_num_threads(args.threads)
    archs, cols, spec = load_targets("nb201")
    y = cols[spec.train]
    params = {k: json.loads(v) for k, v in (p.split("=", 1) for p in args.param)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if out.exists():
        done = {(r["variant"], r["n_train"], r["seed"], r.get("pretrain_epochs"), json.dumps(r["params"], sort_keys=True))
                for r in map(json.loads, out.read_text().splitlines())}
    for variant in args.variants:
        base, pre_s = (None, 0.0)
        for n in args.sizes:
            for seed in args.seeds:
                pre_epochs = None if variant == "flowerformer" else args.pretrain_epochs
                if (variant, n, seed, pre_epochs, json.dumps(params, sort_keys=True)) in done:
                    continue
                if variant != "flowerformer" and base is None:
                    base, pre_s = pretrained(variant, args, archs, params)
                tr, va, te = split(len(archs), n, "A", seed)
                if variant == "flowerformer":
                    model = FlowerFormerPredictor(seed=seed, **params)
                else:
                    model = copy.deepcopy(base)
                    for key, value in {**params, "seed": seed}.items():
                        if not hasattr(model, key):
                            raise SystemExit(f"unknown hyper-parameter {key!r}")
                        setattr(model, key, value)
                start = time.perf_counter()
                model.fit([archs[i] for i in tr], y[tr], validation=([archs[i] for i in va], y[va]))
                fit_s = time.perf_counter() - start
                m = summary(y[te], model.predict([archs[i] for i in te]))
                rec = {"variant": variant, "n_train": n, "seed": seed, "pretrain_epochs": pre_epochs,
                       "params": params,
                       "pretrain_seconds": pre_s, "fit_seconds": fit_s, **m,
                       "best_epoch": model.train_results_[0].best_epoch,
                       "featurizer": {k: list(getattr(model.featurizer_, k)) for k in ("prune_ops", "contract_ops")}}
                with out.open("a") as fh:
                    fh.write(json.dumps(rec) + "\n")
                print(f"{variant} N={n} seed {seed}: tau {m['kendall_tau']:.4f} ({fit_s:.0f} s)",
                      file=sys.stderr, flush=True)
    report(out)
    return 0


def report(out: Path) -> None:
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    groups: dict = {}
    for r in rows:
        key = (r["variant"] + "".join(f" {k}={v}" for k, v in sorted(r["params"].items())), r["pretrain_epochs"])
        groups.setdefault((*key, r["n_train"]), []).append(r)
    print("| variant | pre-train epochs | N | seeds | Kendall tau | Spearman | P@1% | P@5% | fit s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (variant, pre, n), rs in sorted(groups.items(), key=lambda kv: (kv[0][2], kv[0][0], str(kv[0][1]))):
        tau = np.array([r["kendall_tau"] for r in rs])
        std = tau.std(ddof=1) if len(tau) > 1 else 0.0

        def mean(key):
            return np.mean([r[key] for r in rs])
        print(f"| {variant} | {pre if pre is not None else '-'} | {n} | {len(rs)} | {tau.mean():.4f} ± {std:.4f} | "
              f"{mean('spearman'):.4f} | {mean('precision_at_1pct'):.3f} | {mean('precision_at_5pct'):.3f} | "
              f"{mean('fit_seconds'):.0f} |")


if __name__ == "__main__":
    sys.exit(main())
