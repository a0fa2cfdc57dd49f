"""FlowerFormer's test Kendall tau epoch by epoch under protocol A, beside the
tau of the 40 validation cells that pick its epoch (the grid's recipe).

The training loop scores its validation split once per epoch; here that split
is the 40 validation cells followed by the test cells, and the loop's
``kendall_tau`` is wrapped so that it hands the loop the 40 cells' tau (model
selection as in the benchmark) and records the test cells' tau beside it:
all cells, those with an equivalent cell in NB201 (NATS ``iso_key``) and
those without. The validation pass runs without gradients or randomness, so
training is the benchmark's own run of that seed.

    FLOWNAS_DATA=/work/shared/data python benchmarks/epoch_curves.py run --train-size 3906 --seed 0 --out DIR
    python benchmarks/epoch_curves.py summary DIR
"""
from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

import numpy as np

N_VAL = 40   # protocol A's validation split


def run(n: int, seed: int, out: Path) -> None:
    import torch
    torch.set_num_threads(1)
    from flownas.benchmarks.base import read_jsonl_gz, table_path
    from flownas.predictors import metrics
    from flownas.predictors.nn import train
    from flownas.predictors_cli import load_targets, split
    from flownas.registry import PREDICTORS
    from bench_predictors import flowerformer_params   # benchmarks/ is the script's folder

    archs, cols, spec = load_targets("nb201")
    keys = [r["iso_key"] for r in read_jsonl_gz(table_path("nasbench201/nb201_all.jsonl.gz"))]
    count = collections.Counter(keys)
    y = cols[spec.train]
    tr, va, te = split(len(archs), n, "A", seed)
    has_eq = np.array([count[keys[i]] > 1 for i in te])
    epochs, kendall = [], train.kendall_tau

    def scored(targets, scores):
        t, s = np.asarray(targets), np.asarray(scores)
        t_test, s_test = t[N_VAL:], s[N_VAL:]
        epochs.append({"val": kendall(t[:N_VAL], s[:N_VAL]), "test": kendall(t_test, s_test),
                       "test_eq": kendall(t_test[has_eq], s_test[has_eq]),
                       "test_noeq": kendall(t_test[~has_eq], s_test[~has_eq])})
        return epochs[-1]["val"]

    model = PREDICTORS.create("flowerformer", **flowerformer_params("nb201", n), seed=seed)
    both = np.concatenate([va, te])
    train.kendall_tau = scored
    try:
        model.fit([archs[i] for i in tr], y[tr], validation=([archs[i] for i in both], y[both]))
    finally:
        train.kendall_tau = kendall
    pred = model.predict([archs[i] for i in te])
    doc = {"train_size": n, "seed": seed, "best_epoch": model.train_results_[0].best_epoch,
           "final_tau": metrics.kendall_tau(y[te], pred), "epochs": epochs}
    out.mkdir(parents=True, exist_ok=True)
    (out / f"A{n}-s{seed}.json").write_text(json.dumps(doc))
    print(f"A {n} seed {seed}: tau {doc['final_tau']:.4f} at epoch {doc['best_epoch']}")


def summary(out: Path) -> None:
    print("| N | seed | epoch picked on 40 cells | τ there: all / with an equivalent / without "
          "| τ at the last epoch: all / with / without |")
    print("|---:|---:|---:|---|---|")
    rows = []
    docs = [json.loads(p.read_text()) for p in out.glob("A*-s*.json")]
    for d in sorted(docs, key=lambda d: (d["train_size"], d["seed"])):
        best, last = d["epochs"][d["best_epoch"] - 1], d["epochs"][-1]
        part = lambda e: [e["test"], e["test_eq"], e["test_noeq"]]  # noqa: E731
        rows.append(part(best) + part(last))
        print(f"| {d['train_size']} | {d['seed']} | {d['best_epoch']} of {len(d['epochs'])} | "
              + " / ".join(f"{v:.3f}" for v in part(best)) + " | " + " / ".join(f"{v:.3f}" for v in part(last)) + " |")
    if rows:
        m = np.mean(rows, axis=0)
        print("| | mean | | " + " / ".join(f"{v:.3f}" for v in m[:3]) + " | " + " / ".join(f"{v:.3f}" for v in m[3:]) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    r = sub.add_parser("run")
    r.add_argument("--train-size", type=int, default=3906)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--out", type=Path, required=True)
    s = sub.add_parser("summary")
    s.add_argument("out", type=Path)
    args = ap.parse_args()
    if args.what == "run":
        run(args.train_size, args.seed, args.out)
    else:
        summary(args.out)


if __name__ == "__main__":
    main()
