"""What a search leaves in its run directory, drawn from the ledger alone (so
``flownas report RUN_DIR`` redraws it at any time, also while it runs):

* ``best.json``   the best architecture (flownas JSON, native string, metrics)
* ``history.csv`` one row per finished candidate, in completion order (a
  constrained search adds a column per constrained metric)
* ``best_so_far.png``       best objective (and its test metric) vs evaluations
* ``predicted_vs_true.png`` the predictor's score for each candidate, made
  before it was evaluated, against the true objective (predictor strategies)
* ``constraints.png``       constrained searches: the objective of each
  candidate against each constrained metric, with the bounds
* ``objectives.png``        multi-objective searches (Optuna ``objectives``):
  the search objective of each candidate against each other objective,
  with the front of the candidates no other beats on both
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Sequence

from .store import Record

# every file ``write_report`` may write into a run directory
REPORT_FILES = ("best.json", "history.csv", "best_so_far.png", "predicted_vs_true.png", "constraints.png",
                "objectives.png")
HISTORY_FIELDS = ("evaluation", "seq", "state", "arch", "objective", "test", "best_so_far", "test_of_best",
                  "cost_s", "cumulative_cost_s", "wall_s", "origin", "predicted", "predicted_std", "fit",
                  "restarts", "retried", "error")


def history_rows(records: Sequence[Record], to_string, test_metric: str | None,
                 metrics: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Finished records (any order) as rows in completion order, with the incumbent
    so far; ``metrics`` (a multi-objective search's other objectives) get a column each."""
    rows, best, total = [], None, 0.0
    for r in sorted((r for r in records if r.finished), key=lambda r: r.done):
        total += r.cost_s or 0.0
        if r.state == "complete" and (best is None or r.value > best.value):
            best = r
        rows.append({
            "evaluation": r.done + 1, "seq": r.seq, "state": r.state, "arch": to_string(r.arch),
            "objective": r.value, "test": r.metrics.get(test_metric) if test_metric else None,
            "best_so_far": best.value if best else None,
            "test_of_best": best.metrics.get(test_metric) if best and test_metric else None,
            "cost_s": r.cost_s, "cumulative_cost_s": total, "wall_s": r.wall_s,
            "origin": r.info.get("origin"), "predicted": r.info.get("predicted"),
            "predicted_std": r.info.get("predicted_std"), "fit": r.info.get("fit"),
            "restarts": r.restarts, "retried": len(r.retried), "error": r.error,
            **{m: r.metrics.get(m) for m in metrics}, **r.info.get("constraints", {})})
    return rows


def best_record(records: Sequence[Record]) -> Record | None:
    """The incumbent: highest objective, the earlier finished on ties."""
    done = sorted((r for r in records if r.state == "complete"), key=lambda r: r.done)
    return max(done, key=lambda r: r.value, default=None)


def write_history(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """The fixed columns, then one column per constrained metric or other objective."""
    fields = list(HISTORY_FIELDS)
    fields += sorted({k for row in rows for k in row} - set(fields))
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row.get(k) is None else row[k] for k in fields})


def write_best(path: Path, best: Record, to_string, objective: str) -> None:
    record = {"arch": best.arch.to_dict(), "string": to_string(best.arch), "objective": objective,
              "value": best.value, "metrics": best.metrics, "evaluation": best.done + 1, "seq": best.seq}
    if "constraints" in best.info:
        record["constraints"] = best.info["constraints"]
    if best.evaluation_info:
        record["info"] = best.evaluation_info   # the evaluator's own (device, images per second, ...)
    path.write_text(json.dumps(record, indent=2) + "\n")


def plot_best_so_far(path: Path, rows: Sequence[dict[str, Any]], objective: str, test_metric: str | None,
                     title: str) -> None:
    fig = figure(6.4, 4.0)
    ax = fig.subplots()
    xs = [r["evaluation"] for r in rows if r["best_so_far"] is not None]
    ax.step(xs, [r["best_so_far"] for r in rows if r["best_so_far"] is not None], where="post",
            label=f"best {objective}")
    if test_metric and any(r["test_of_best"] is not None for r in rows):
        ax.step(xs, [r["test_of_best"] for r in rows if r["best_so_far"] is not None], where="post",
                label=f"{test_metric} of the best", linestyle="--")
    ax.scatter([r["evaluation"] for r in rows if r["objective"] is not None],
               [r["objective"] for r in rows if r["objective"] is not None], s=6, alpha=0.35, color="grey",
               label="each candidate")
    lo = [r["best_so_far"] for r in rows if r["best_so_far"] is not None]
    if lo:
        top = max(lo + [r["test_of_best"] for r in rows if r["test_of_best"] is not None])
        ax.set_ylim(min(lo) - 0.5 * (top - min(lo) + 1), top + 0.2 * (top - min(lo) + 1))
    ax.set_xlabel("evaluations")
    ax.set_ylabel(objective)
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot_predicted_vs_true(path: Path, rows: Sequence[dict[str, Any]], objective: str, title: str) -> bool:
    """False (and no file) when no candidate carried a prediction."""
    pts = [r for r in rows if r["predicted"] is not None and r["objective"] is not None]
    if not pts:
        return False
    last = max(r["fit"] for r in pts)
    fig = figure(5.2, 5.0)
    ax = fig.subplots()
    older = [r for r in pts if r["fit"] != last]
    recent = [r for r in pts if r["fit"] == last]
    if older:
        sc = ax.scatter([r["objective"] for r in older], [r["predicted"] for r in older], s=10,
                        c=[r["fit"] for r in older], cmap="Blues", vmin=0, vmax=last, alpha=0.7)
        fig.colorbar(sc, ax=ax, label="predictor fit")
    ax.scatter([r["objective"] for r in recent], [r["predicted"] for r in recent], s=28, color="tab:red",
               label=f"last predictor (fit {last}), tau={_kendall(recent):.2f}")
    values = [r["objective"] for r in pts] + [r["predicted"] for r in pts]
    lo, hi = min(values), max(values)
    ax.plot([lo, hi], [lo, hi], color="black", linewidth=0.8)
    ax.set_xlabel(f"true {objective}")
    ax.set_ylabel("predicted before evaluation")
    ax.set_title(f"{title}\nall candidates: Kendall tau={_kendall(pts):.2f}", fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return True


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other beats on both counts (x lower, y higher), by x."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or y > front[-1][1]:
            front.append((x, y))
    return front


def plot_constraints(path: Path, rows: Sequence[dict[str, Any]], objective: str,
                     constraints: Sequence[dict[str, Any]], title: str) -> bool:
    """One panel per constrained metric: each candidate's objective against
    the metric, the bounds as lines, the incumbent as a star."""
    metrics = [c["metric"] for c in constraints]
    pts = [r for r in rows if r["objective"] is not None and all(r.get(m) is not None for m in metrics)]
    if not pts:
        return False
    fig = figure(5.2 * len(metrics), 4.2)
    axes = fig.subplots(1, len(metrics), squeeze=False)
    best = max(pts, key=lambda r: r["objective"])
    for ax, c in zip(axes[0], constraints):
        m = c["metric"]
        ax.scatter([r[m] for r in pts], [r["objective"] for r in pts], s=10, alpha=0.6, label="each candidate")
        ax.scatter([best[m]], [best["objective"]], s=140, marker="*", color="tab:red", zorder=3,
                   label=f"best: {best['objective']:.4g} at {m} {best[m]:.4g}")
        if c.get("max") is not None or c.get("lower_is_better"):   # the front is the upper-left edge
            front = pareto_front([(r[m], r["objective"]) for r in pts])
            ax.step([x for x, _ in front], [y for _, y in front], where="post", color="tab:orange",
                    linewidth=1.2, label="front: none lower and better")
        for bound in ("max", "min"):
            if c.get(bound) is not None:
                ax.axvline(c[bound], color="black", linestyle="--", linewidth=1, label=f"{bound} {c[bound]:g}")
        ax.set_xlabel(m)
        ax.set_ylabel(objective)
        ax.legend(loc="lower right", fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return True


def _kendall(rows: Sequence[dict[str, Any]]) -> float:
    if len(rows) < 3:
        return math.nan
    from .predictors.metrics import kendall_tau
    return float(kendall_tau([r["objective"] for r in rows], [r["predicted"] for r in rows]))


def figure(width: float, height: float):
    """A figure drawn without pyplot: a host program's (a notebook's) backend and
    open figures are left alone."""
    from matplotlib.figure import Figure
    return Figure(figsize=(width, height))


def write_report(run_dir: Path, records: Sequence[Record], *, to_string, objective: str,
                 test_metric: str | None, title: str, constraints: Sequence[dict[str, Any]] = (),
                 objectives: Sequence[str] = ()) -> dict[str, Path]:
    """Every file above that the records allow; returns them by kind. ``objectives``:
    a multi-objective search's ``METRIC[:min|:max]`` (the search objective among them)."""
    run_dir = Path(run_dir)
    others = [(name, direction == "min") for name, _, direction in (str(o).partition(":") for o in objectives)
              if name != objective]   # the search objective may be listed anywhere
    rows = history_rows(records, to_string, test_metric, [name for name, _ in others])
    files = {"history": run_dir / "history.csv"}
    write_history(files["history"], rows)
    best = best_record(records)
    if best is not None:
        files["best"] = run_dir / "best.json"
        write_best(files["best"], best, to_string, objective)
        files["best_so_far"] = run_dir / "best_so_far.png"
        plot_best_so_far(files["best_so_far"], rows, objective, test_metric, title)
    path = run_dir / "predicted_vs_true.png"
    if plot_predicted_vs_true(path, rows, objective, title):
        files["predicted_vs_true"] = path
    path = run_dir / "constraints.png"
    if constraints and plot_constraints(path, rows, objective, constraints, title):
        files["constraints"] = path
    path = run_dir / "objectives.png"
    panels = [{"metric": name, "lower_is_better": lower} for name, lower in others]
    if panels and plot_constraints(path, rows, objective, panels, title):
        files["objectives"] = path
    return files
