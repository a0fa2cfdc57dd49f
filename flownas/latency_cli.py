"""``flownas fit-latency``: a latency predictor fitted on a device of a HELP
latency table and saved, for ``predicted`` latency constraints in spaces no
table covers (FBNet, OFA MobileNetV3; docs/search.md, "Constraints")."""
from __future__ import annotations

import os
import time

from .cli import positive_int, seed

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # torch loads later; no spinning threads


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "fit-latency", help="fit and save a latency predictor on a device of a latency table (fbnet, ofa)",
        description="Fit narformer_v2 (the settings of BENCHMARKS.md) on the latencies one device has in a "
                    "latency table, report its error on the table's other networks, save it, and print "
                    "the constraint that uses it.")
    p.add_argument("--table", required=True, choices=("fbnet", "ofa"))
    p.add_argument("--device", required=True, help="e.g. pixel3, raspi4, eyeriss (fbnet); v100_1, 2080ti_64 (ofa)")
    p.add_argument("--out", required=True, help="where the predictor is saved (checked before the fit)")
    p.add_argument("--train-size", type=positive_int, default=1000, help="networks it is fitted on (default 1000)")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--epochs", type=positive_int, help="training epochs (default 30)")
    p.add_argument("--threads", type=positive_int, default=2, help="torch threads (default 2)")
    p.set_defaults(func=_cmd)


def _cmd(args) -> int:
    from .data import check_output, save_output
    out = check_output(args.out, "--out")    # before the fit, not after it
    import torch
    from .evaluators.predicted import fit_latency_predictor
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    settings = {"epochs": args.epochs} if args.epochs else {}
    fit = fit_latency_predictor(args.table, args.device, train_size=args.train_size, seed=args.seed, **settings)
    out = save_output(out, "--out", fit.model.save)
    print(f"{args.table} {args.device}: narformer_v2 fitted on {fit.train_size:,} networks (seed {args.seed}) "
          f"in {time.perf_counter() - start:.0f} s; on the other {len(fit.held_out):,}: MAPE {fit.mape:.2f} %, "
          f"{100 * fit.acc10:.1f} % within 10 %")
    print(f"wrote {out}")
    print("a constraint that uses it (the table's median latency as the bound):")
    print("constraints:")
    print(f"  - {{metric: latency_ms, max: {fit.median_ms:.4g}, evaluator: "
          f"{{name: predicted, path: {out.resolve()}, metric: latency_ms}}}}")
    return 0
