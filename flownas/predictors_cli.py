"""``flownas bench predictors``: train a predictor on a benchmark table under a
fixed protocol, for several seeds, and write the figures as JSON.

Protocols (``PROTOCOLS``; each seed draws its own permutation of the table with
``numpy.random.default_rng(seed)``):

* **A** (FlowerFormer / TA-GATES style): train = the first N of the
  permutation, validation = the next 40 (model selection), test = all the
  rest; the same target column on both sides.
* **B** (NAR-Former / TNASP style): train = the first N, validation = the
  next 200, test = every architecture of the table (training ones included);
  train on the validation-accuracy column, test against the test column of the
  same runs where the table has one (NB201), else the same column, which the
  protocol string then says.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np

from .cli import positive_int, seed as seed_arg
from .errors import ConfigError, construct
from .predictors.base import accepts_validation

VAL_SIZE = {"A": 40, "B": 200}

# OpenMP threads that spin while they wait are many times slower on a busy
# machine; this must be set before torch loads (the command imports it lazily)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@dataclass(frozen=True)
class Targets:
    """Which table and columns a space's protocols use."""
    table: str
    train: str          # target of training and validation (both protocols)
    test_b: str         # what protocol B tests against
    note: str = ""


TARGETS: dict[str, Targets] = {
    "nb201": Targets("nb201", "c10_valid_val_acc_200", "c10_valid_test_acc_200"),
    "nb101": Targets("nb101", "val_acc_108", "val_acc_108",
                     "our NB101 table has no test accuracy: protocol B tests against val_acc_108 too"),
    "nb301": Targets("nb301", "val_acc_surrogate", "val_acc_surrogate",
                     "the NB301 table has only the surrogate's validation accuracy: protocol B tests against it too"),
    "transnas": Targets("transnas", "val_metric", "val_metric",
                        "TransNAS micro cells of one task; the table has only validation metrics: "
                        "protocol B tests against them too"),
}

#: the search-space names ``flownas sample``/``lookup`` take -> the table ``--space`` names
SPACE_ALIASES = {"darts": "nb301", "transnas_micro": "transnas"}


def space_arg(text: str) -> str:
    """``--space``: a table name (nb101, nb201, nb301, transnas) or the name of
    its search space (darts, transnas_micro), as the table name."""
    name = SPACE_ALIASES.get(text, text)
    if name not in TARGETS:
        import difflib
        close = difflib.get_close_matches(text, [*TARGETS, *SPACE_ALIASES], n=1)
        raise argparse.ArgumentTypeError(f"unknown {text!r}" + (f"; did you mean {close[0]!r}?" if close else "")
                                         + f" (known: {', '.join(sorted(TARGETS))}; or the space names "
                                           f"{_aliases_text()})")
    return name


def _aliases_text() -> str:
    return ", ".join(f"{space} = {table}" for space, table in sorted(SPACE_ALIASES.items()))


def check_size(n_table: int, n_train: int, protocol: str) -> None:
    if protocol not in VAL_SIZE:
        raise ConfigError(f"unknown protocol {protocol!r} (A or B)")
    n_val = VAL_SIZE[protocol]
    need = n_train + n_val + (1 if protocol == "A" else 0)
    if n_train < 2 or need > n_table:
        raise ConfigError(f"--train-size {n_train} does not fit protocol {protocol} on a table of {n_table} "
                          f"architectures (it needs 2 <= N and N + {n_val} validation"
                          f"{' + at least 1 test' if protocol == 'A' else ''} <= {n_table})")


def split(n_table: int, n_train: int, protocol: str, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, validation, test) indices of one seed's permutation."""
    check_size(n_table, n_train, protocol)
    n_val = VAL_SIZE[protocol]
    perm = np.random.default_rng(seed).permutation(n_table)
    train, val = perm[:n_train], perm[n_train:n_train + n_val]
    test = perm[n_train + n_val:] if protocol == "A" else np.arange(n_table)
    return train, val, test


def load_targets(space: str, task: str = "class_scene") -> tuple[list, dict[str, np.ndarray], Targets]:
    """The table's architectures (table order) and every column the protocols use."""
    from .benchmarks.base import load_benchmark
    from .registry import BENCHMARKS
    spec = TARGETS.get(space)
    if spec is None:
        raise ConfigError(f"no benchmark protocol for space {space!r} (known: {', '.join(sorted(TARGETS))})")
    if spec.table not in BENCHMARKS:
        raise ConfigError(f"no benchmark table {spec.table!r} is registered for space {space!r}")
    table = load_benchmark(spec.table)
    if space == "transnas":
        archs, y = table.archs_and_targets(task, "micro", spec.train)
        return archs, {spec.train: y}, spec
    archs = table.archs()
    row = getattr(table, "row", table.query)
    records = [row(a) for a in archs]
    cols = {}
    for c in {spec.train, spec.test_b}:
        values = [r.get(c) for r in records]
        if any(v is None for v in values):
            raise ConfigError(f"table {spec.table!r} lacks column {c!r} for some architectures")
        cols[c] = np.asarray(values, dtype=np.float64)
    return archs, cols, spec


def describe(space: str, protocol: str, n_train: int, n_table: int, spec: Targets) -> str:
    n_val = VAL_SIZE[protocol]
    if protocol == "A":
        text = (f"A on {space}: per-seed permutation (numpy default_rng(seed)); train = first {n_train}, "
                f"validation = next {n_val} (model selection), test = the remaining {n_table - n_train - n_val}; "
                f"target {spec.train} on both sides")
    else:
        text = (f"B on {space}: per-seed permutation (numpy default_rng(seed)); train = first {n_train}, "
                f"validation = next {n_val} (model selection), test = all {n_table} architectures; "
                f"train on {spec.train}, test against {spec.test_b}")
    return text + (f" ({spec.note})" if spec.note and protocol == "B" else "")


def run(space: str, predictor: str, n_train: int, protocol: str, seeds: list[int],
        params: dict[str, Any] | None = None, threads: int | None = None, task: str = "class_scene",
        log=print) -> dict[str, Any]:
    """The benchmark itself: returns the JSON document (see the issue's keys)."""
    import torch
    from .predictors import metrics
    from .registry import PREDICTORS
    if threads:
        torch.set_num_threads(threads)
    params = dict(params or {})
    cls = PREDICTORS.get(predictor)
    construct(f"predictor {predictor}", cls, **params)  # bad hyper-parameters fail before the table loads
    archs, cols, spec = load_targets(space, task)
    check_size(len(archs), n_train, protocol)
    protocol_text = describe(space if space != "transnas" else f"transnas micro, task {task}",
                             protocol, n_train, len(archs), spec)
    log(f"protocol {protocol_text}")
    log(f"predictor {predictor} {json.dumps(params, sort_keys=True)}; seeds {seeds}; "
        f"torch threads {torch.get_num_threads()}")
    y_train = cols[spec.train]
    y_test = y_train if protocol == "A" else cols[spec.test_b]
    per_seed = []
    for seed in seeds:
        tr, va, te = split(len(archs), n_train, protocol, seed)
        model = cls(**{**params, "seed": seed})
        fit_kwargs = {}
        if accepts_validation(model):
            fit_kwargs["validation"] = ([archs[i] for i in va], y_train[va])
        start, cpu = time.perf_counter(), time.process_time()
        model.fit([archs[i] for i in tr], y_train[tr], **fit_kwargs)
        train_s, train_cpu = time.perf_counter() - start, time.process_time() - cpu
        test_archs = [archs[i] for i in te]
        start, cpu = time.perf_counter(), time.process_time()
        pred = model.predict(test_archs)
        predict_s, predict_cpu = time.perf_counter() - start, time.process_time() - cpu
        m = metrics.summary(y_test[te], pred)
        # CPU time beside wall time: on a shared machine wall time measures the load too
        rec = {"seed": seed, **m, "train_seconds": train_s, "train_cpu_seconds": train_cpu,
               "predict_seconds": predict_s, "predict_cpu_seconds": predict_cpu,
               "predict_archs_per_second": len(te) / predict_s,
               "n_train": len(tr), "n_val": len(va), "n_test": len(te)}
        members = getattr(model, "members_", None)
        if members:   # a blend: each member's own figure beside the blend's, on the same split
            rec["member_kendall_taus"] = [{"predictor": m.name, "kendall_tau": float(
                metrics.kendall_tau(y_test[te], m.predict(test_archs)))} for m in members]
        results = getattr(model, "train_results_", None)
        if results:
            rec["best_epochs"] = [r.best_epoch for r in results]
            rec["val_taus"] = [r.val_tau for r in results]
        per_seed.append(rec)
        log(f"seed {seed}: tau {m['kendall_tau']:.4f} spearman {m['spearman']:.4f} "
            f"P@1% {m['precision_at_1pct']:.3f} P@5% {m['precision_at_5pct']:.3f} "
            f"train {train_s:.1f}s (cpu {train_cpu:.1f}s) predict {len(te) / predict_s:,.0f} archs/s")
    taus = np.array([r["kendall_tau"] for r in per_seed])
    cpu, capability = cpu_model(), torch.backends.cpu.get_cpu_capability()
    doc = {
        "kendall_tau": float(taus.mean()),
        # one seed has no spread: null, not 0.0
        "kendall_tau_std": float(taus.std(ddof=1)) if len(taus) > 1 else None,
        "spearman": _mean(per_seed, "spearman"),
        "precision_at_1pct": _mean(per_seed, "precision_at_1pct"),
        "precision_at_5pct": _mean(per_seed, "precision_at_5pct"),
        "train_seconds": _mean(per_seed, "train_seconds"),
        "predict_archs_per_second": _mean(per_seed, "predict_archs_per_second"),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "per_seed": per_seed,
        # what was run, as fields (the protocol line says it in words)
        "run": {"space": space, "task": task if space == "transnas" else None, "protocol": protocol,
                "train_size": n_train, "predictor": predictor, "params": params, "seeds": list(seeds),
                # per-seed figures are bit-exact only on the same CPU (BENCHMARKS.md, "Predictors")
                "cpu": cpu, "cpu_capability": capability, "threads": torch.get_num_threads()},
        "protocol": (f"{protocol_text}; predictor {predictor} {json.dumps(params, sort_keys=True)}; "
                     f"seeds {seeds}; torch threads {torch.get_num_threads()}; "
                     f"flownas {_version()}, torch {torch.__version__}, {platform.machine()} "
                     f"({cpu or 'CPU model unknown'}; {capability}); {date.today()}"),
    }
    spread = (f"± {doc['kendall_tau_std']:.4f} over {len(seeds)} seeds" if doc["kendall_tau_std"] is not None
              else "(1 seed)")
    log(f"kendall tau {doc['kendall_tau']:.4f} {spread}; "
        f"train {doc['train_seconds']:.1f}s; predict {doc['predict_archs_per_second']:,.0f} archs/s; "
        f"peak RSS {doc['peak_rss_mb']:.0f} MB")
    return doc


def cpu_model() -> str | None:
    """The CPU's model name (/proc/cpuinfo, else ``platform.processor()``),
    or None where neither says."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, sep, value = line.partition(":")
                if sep and key.strip() == "model name" and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def _mean(rows, key) -> float:
    return float(np.mean([r[key] for r in rows]))


def _version() -> str:
    from . import __version__
    return __version__


#: the --seeds syntax, for both bench commands' --help
SEEDS_HELP = "a count (5 = seeds 0..4) or a comma list (0,7,9; 3, = seed 3 alone)"


def parse_seeds(text: str) -> list[int]:
    """"5" -> [0, 1, 2, 3, 4]; "0,7,9" -> [0, 7, 9]; "3," -> [3] (one seed)."""
    spec = parse_seed_spec(text)
    return list(range(spec)) if isinstance(spec, int) else spec


def parse_seed_spec(text: str) -> int | list[int]:
    """``--seeds`` of ``bench predictors`` and ``bench search``: a count (an
    int; ``bench search`` starts it at ``--first-seed``) or a list of seeds
    ("0,7,9"; "3," is the one seed 3). A count is >= 1; a list has no empty
    item (but may end with a comma) and no seed twice (the same seed twice is
    one run counted twice)."""
    if "," in text:
        items = [s.strip() for s in text.split(",")]
        if items[-1] == "" and len(items) > 1:
            items.pop()          # "3,": the documented way to name the one seed 3
        if "" in items:
            raise argparse.ArgumentTypeError(f"an empty item in the seed list {text!r}")
        try:
            seeds = [int(s) for s in items]
        except ValueError:
            raise argparse.ArgumentTypeError(f"seeds must be a count (5) or a list (0,1,2), got {text!r}") from None
        twice = sorted({s for s in seeds if seeds.count(s) > 1})
        if twice:
            raise argparse.ArgumentTypeError(f"seed {', '.join(map(str, twice))} appears more than once in {text!r}")
        return [seed_arg(str(s)) for s in seeds]   # each a valid seed (>= 0), as --seed checks it
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be a count (5) or a list (0,1,2), got {text!r}") from None
    if count < 1:
        alone = f"; '{count},' is seed {count} alone" if count == 0 else ""
        raise argparse.ArgumentTypeError(f"a count must be >= 1, got {count} (a count N runs N seeds; "
                                         f"a list is comma-separated seeds >= 0{alone})")
    return count


def parse_param(text: str) -> tuple[str, Any]:
    """KEY=VALUE with a JSON value (a bare word is a string)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _cmd(args) -> int:
    from .cache import off_unless_set
    from .data import check_output, save_output
    if args.task is not None and args.space != "transnas":
        raise ConfigError(f"--task {args.task} applies to --space transnas only, not --space {args.space}")
    out = check_output(args.json, "--json") if args.json else None   # before hours of training, not after
    off_unless_set()   # train_seconds includes DELE's pre-training (the first seed's)
    params = dict(args.param or [])
    doc = run(args.space, args.predictor, args.train_size, args.protocol, args.seeds, params, args.threads,
              args.task or "class_scene")
    if out is not None:
        text = json.dumps(doc, indent=2) + "\n"
        path = save_output(out, "--json", lambda p: p.write_text(text))
        print(f"wrote {path}")
    return 0


def register_bench(bench_subparsers) -> None:
    p = bench_subparsers.add_parser(
        "predictors", help="train and test a predictor on a benchmark table (protocol A or B)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--space", required=True, type=space_arg, metavar="TABLE",
                   help=f"the benchmark table: {', '.join(sorted(TARGETS))}; the search spaces' names "
                        f"(as flownas sample and lookup take them) name their tables too: {_aliases_text()}")
    p.add_argument("--predictor", required=True, help="a registered predictor (flowerformer, mlp, gcn, gbt, ...)")
    p.add_argument("--train-size", type=int, required=True, metavar="N")
    p.add_argument("--protocol", choices=sorted(VAL_SIZE), default="A")
    p.add_argument("--seeds", type=parse_seeds, default=parse_seeds("5"), metavar="S",
                   help=SEEDS_HELP + " (default 5)")
    p.add_argument("--param", type=parse_param, action="append", metavar="KEY=VALUE",
                   help="a predictor hyper-parameter (JSON value), repeatable")
    p.add_argument("--task", help="TransNAS task (default class_scene); --space transnas only")
    p.add_argument("--threads", type=positive_int, default=1,
                   help="torch threads (default 1, as BENCHMARKS.md's predictor figures were made; another count "
                        "changes the figures slightly: the sums run in another order)")
    p.add_argument("--json", metavar="OUT", help="write the figures here (checked before the run starts)")
    p.set_defaults(func=_cmd)

