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
  so their noise is shared: only a training cell's label carries it). Then
  an oracle of protocol B at N = 1563 / 3906 / 7812 (the benchmark's splits,
  seeds 0-4): it returns a training cell's own validation accuracy and, for
  the others, the leave-one-out mean of the equivalent cells.

NB101 has no equivalent cells in our table (one record per function), so its
ceiling is simulated: the repeat-to-repeat spread of ``val_acc_108`` is read
from the zero-cost subset's cells with two or more distinct repeats, and a
label is the maximum over three repeats (what our table holds) drawn around
the table's own accuracies (themselves noisy, so the spread is a little too
wide and the estimate a little optimistic); its Kendall tau against those
accuracies is what a perfect predictor of the mean would score.

    FLOWNAS_DATA=/work/shared/data python benchmarks/noise_ceiling.py

Last, what protocol B on NB101 (val -> val: the test set holds the training
cells with the very labels the predictor saw) asks of a predictor: a
simulated predictor whose error is Gaussian noise on the true rank, scored
on the cells it did not see and on all cells, then with the training cells
recalled exactly (the benchmark's splits at N = 4236, seeds 0-4).

Deterministic: the NB201 part has no random choice, the NB101 simulations
use seed 0 and seeds 0-4.
"""
from __future__ import annotations

import collections

import numpy as np
from scipy.stats import kendalltau

from flownas.benchmarks.base import read_jsonl_gz, table_path
from flownas.predictors_cli import split


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

    val = np.array([r["c10_valid_val_acc_200"] for r in rows])
    test = np.array([r["c10_valid_test_acc_200"] for r in rows])
    by_function = collections.defaultdict(list)
    for i, r in enumerate(rows):
        by_function[r["iso_key"]].append(i)
    groups = [np.array(by_function[r["iso_key"]]) for r in rows]   # each cell's function, as row indices
    nb201_protocol_b_oracle(val, test, groups)
    nb201_simulated(val, test, groups)


def training_cells(n_table: int, n_train: int, seed: int) -> np.ndarray:
    """Mask of protocol B's training cells for a seed (the benchmark's split)."""
    seen = np.zeros(n_table, bool)
    seen[split(n_table, n_train, "B", seed)[0]] = True
    return seen


def nb201_protocol_b_oracle(val: np.ndarray, test: np.ndarray, groups: list[np.ndarray]) -> None:
    """Protocol B's test set holds the training cells, whose test accuracy
    shares the noise of the label the predictor saw: the best a predictor
    can do is return that label for them and the function's mean elsewhere."""
    cells = np.array([i for i, g in enumerate(groups) if len(g) > 1])
    loo = np.array([val[groups[i][groups[i] != i]].mean() for i in cells])
    print("\n| protocol B oracle: N (train) | Kendall tau per seed 0-4 | mean |")
    print("|---:|---|---:|")
    for n in (1563, 3906, 7812):
        taus = []
        for seed in range(5):
            seen = training_cells(len(val), n, seed)
            taus.append(kendalltau(test[cells], np.where(seen[cells], val[cells], loo))[0])
        print(f"| {n} | {' / '.join(f'{t:.4f}' for t in taus)} | {np.mean(taus):.4f} |")


def nb201_simulated(val: np.ndarray, test: np.ndarray, groups: list[np.ndarray], bands: int = 20) -> None:
    """The leave-one-out means above are noisy themselves (a function with two
    cells has a "mean" of one cell), so those figures are lower bounds. Here
    the ceiling is simulated instead: a cell's true accuracy is its function's
    mean; a run adds noise shared by its validation and test accuracies
    (e) and each split adds its own (d_val, d_test). Per band of accuracy,
    the within-function variances of val and test and the variance of
    val - test give the three: var(val) = e + d_val, var(test) = e + d_test,
    var(val - test) = d_val + d_test."""
    mu = np.array([val[g].mean() for g in groups])
    has_eq = np.array([len(g) > 1 for g in groups])

    def residual(x):  # within-function deviation, scaled to an unbiased variance
        return np.array([(x[i] - x[g].mean()) * np.sqrt(len(g) / (len(g) - 1)) if len(g) > 1 else 0.0
                         for i, g in enumerate(groups)])
    res_val, res_test = residual(val), residual(test)
    edges = np.quantile(mu, np.linspace(0, 1, bands + 1))
    band = np.clip(np.searchsorted(edges, mu, side="right") - 1, 0, bands - 1)
    sd = {}
    for b in range(bands):
        inb = has_eq & (band == b)
        v_val, v_test, v_diff = res_val[inb].var(), res_test[inb].var(), (val - test)[inb].var()
        e = max((v_val + v_test - v_diff) / 2, 0.0)
        sd[b] = np.sqrt([e, max(v_val - e, 0.0), max(v_test - e, 0.0)])
    sd_e, sd_val, sd_test = (np.array([sd[b][j] for b in band]) for j in range(3))
    print(f"\nSimulated (noise per band of {bands}; e, d_val, d_test SD median over bands: "
          f"{' / '.join(f'{np.median([sd[b][j] for b in range(bands)]):.2f}' for j in range(3))} pp), seeds 0-4")
    print("| what | Kendall tau (mean of seeds 0-4) |")
    print("|---|---:|")
    a, a_eq, a_single, own, b_oracle = [], [], [], [], {n: [] for n in (1563, 3906, 7812)}
    for seed in range(5):
        rng = np.random.default_rng(seed)
        e = mu + rng.normal(size=len(mu)) * sd_e
        label_val, label_test = e + rng.normal(size=len(mu)) * sd_val, e + rng.normal(size=len(mu)) * sd_test
        a.append(kendalltau(mu, label_val)[0])
        a_eq.append(kendalltau(mu[has_eq], label_val[has_eq])[0])
        a_single.append(kendalltau(mu[~has_eq], label_val[~has_eq])[0])
        own.append(kendalltau(label_test, label_val)[0])
        for n in b_oracle:
            seen = training_cells(len(mu), n, seed)
            b_oracle[n].append(kendalltau(label_test, np.where(seen, label_val, mu))[0])
    print(f"| A: the function's mean -> a cell's validation accuracy, all {len(mu)} cells | {np.mean(a):.4f} |")
    print(f"| A, the {has_eq.sum()} cells with an equivalent | {np.mean(a_eq):.4f} |")
    print(f"| A, the {(~has_eq).sum()} cells without one | {np.mean(a_single):.4f} |")
    print(f"| B: a cell's own validation accuracy -> its test accuracy (the table itself: "
          f"{kendalltau(test, val)[0]:.4f}) | {np.mean(own):.4f} |")
    for n, taus in b_oracle.items():
        print(f"| B oracle at N = {n}: a training cell's own validation accuracy, else the function's mean "
              f"-> test accuracy | {np.mean(taus):.4f} |")


def nb101(seed: int = 0) -> None:
    distinct = [sorted(set(r["val_acc_108_samples"]))
                for r in read_jsonl_gz(table_path("nasbench101/nb101_zc_subset.jsonl.gz"))]
    distinct = [d for d in distinct if len(d) > 1]
    sds = np.array([np.std(d, ddof=1) for d in distinct])
    acc = np.array([r["val_acc_108"] for r in read_jsonl_gz(table_path("nasbench101/nb101_subset20k.jsonl.gz"))])
    rng = np.random.default_rng(seed)
    print(f"\nNB101 (seed {seed}): {len(distinct)} cells of the zero-cost subset with >= 2 distinct repeats")
    print("| repeat-to-repeat SD of val_acc_108 | label | Kendall tau (mean -> label) |")
    print("|---|---|---:|")
    for what, sd in (("median", float(np.median(sds))), ("pooled", float(np.sqrt(np.mean(sds ** 2))))):
        label = (acc[:, None] + rng.normal(0.0, sd, (len(acc), 3))).max(1)
        print(f"| {sd:.2f} pp ({what}) | max of 3 repeats | {kendalltau(acc, label)[0]:.4f} |")


def nb101_recall(n_train: int = 4236) -> None:
    """How much exact recall of the training labels is worth under NB101's
    protocol B, for predictors of a given accuracy on unseen cells."""
    acc = np.array([r["val_acc_108"] for r in read_jsonl_gz(table_path("nasbench101/nb101_subset20k.jsonl.gz"))])
    rank = np.argsort(np.argsort(acc)) / len(acc)
    print(f"\nNB101 protocol B, N = {n_train}: simulated predictors (rank + Gaussian noise), seeds 0-4")
    print("| noise SD (rank) | Kendall tau, unseen cells | all cells | all cells, training cells recalled exactly |")
    print("|---:|---:|---:|---:|")
    for sd in (0.045, 0.05, 0.055, 0.06, 0.065):
        taus = []
        for seed in range(5):
            seen = training_cells(len(acc), n_train, seed)
            pred = rank + np.random.default_rng(seed).normal(0.0, sd, len(acc))
            taus.append((kendalltau(acc[~seen], pred[~seen])[0], kendalltau(acc, pred)[0],
                         kendalltau(acc, np.where(seen, rank, pred))[0]))
        print("| {:.3f} | {:.4f} | {:.4f} | {:.4f} |".format(sd, *np.mean(taus, axis=0)))


if __name__ == "__main__":
    import argparse
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    main()
    nb101()
    nb101_recall()
