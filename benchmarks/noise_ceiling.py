"""How well can any predictor of NB201 cifar10 accuracy rank at all?

NB201 trains every cell, and many cells compute the same function (NATS's
``iso_key``: the same network up to isomorphism and dead or identity edges).
Their accuracies differ only by training noise, so the mean accuracy of a
cell's *equivalent* cells (leave-one-out) is the best a function of the
architecture can do for that cell, up to the noise of that mean. Its Kendall
tau against the cell's own accuracy estimates the noise ceiling of each
protocol of ``flownas bench predictors``:

* protocol A: val -> the test cell's own ``c10_valid_val_acc_200``;
* protocol B: val -> the cell's ``c10_valid_test_acc_200``; beside it, the
  cell's own validation accuracy (same trained weights as its test accuracy,
  so their noise is shared: only a training cell's label carries it).

    FLOWNAS_DATA=/work/shared/data python benchmarks/noise_ceiling.py

Deterministic (no random choice).
"""
from __future__ import annotations

import collections

import numpy as np
from scipy.stats import kendalltau

from flownas.benchmarks.base import read_jsonl_gz, table_path


def main() -> None:
    rows = list(read_jsonl_gz(table_path("nasbench201/nb201_all.jsonl.gz")))
    classes = collections.defaultdict(list)
    for r in rows:
        classes[r["iso_key"]].append(r)
    print(f"{len(rows)} cells, {len(classes)} functions; cells with >= 1 equivalent cell: "
          f"{sum(len(m) for m in classes.values() if len(m) > 1)}")
    cases = [("A", "c10_valid_val_acc_200", "c10_valid_val_acc_200", 2),
             ("A", "c10_valid_val_acc_200", "c10_valid_val_acc_200", 6),
             ("B", "c10_valid_test_acc_200", "c10_valid_val_acc_200", 2)]
    print("| protocol | target | predicted by | cells (function with >= k cells) | Kendall tau |")
    print("|---|---|---|---:|---:|")
    for protocol, target, source, k in cases:
        y, loo, own = [], [], []
        for r in rows:
            others = [o[source] for o in classes[r["iso_key"]] if o is not r]
            if len(others) + 1 >= k:
                y.append(r[target])
                loo.append(np.mean(others))
                own.append(r[source])
        print(f"| {protocol} | `{target}` | mean `{source}` of the equivalent cells | {len(y)} (k = {k}) "
              f"| {kendalltau(y, loo)[0]:.4f} |")
        if source != target:
            print(f"| {protocol} | `{target}` | the cell's own `{source}` | {len(y)} (k = {k}) "
                  f"| {kendalltau(y, own)[0]:.4f} |")


if __name__ == "__main__":
    main()
