"""How well predicted scores match the truth: rank correlations, top-K recall
and relative errors. Every function takes ``(y_true, y_pred)`` (1-D, same
length, higher is better) and returns a float."""
from __future__ import annotations

import numpy as np
from scipy import stats


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {len(t)} vs {len(p)}")
    if len(t) < 2:
        raise ValueError(f"need at least 2 values to compare, got {len(t)}")
    if not (np.isfinite(t).all() and np.isfinite(p).all()):
        raise ValueError("y_true and y_pred must be finite (no NaN/inf)")
    return t, p


def kendall_tau(y_true, y_pred) -> float:
    """Kendall's tau-b (ties counted as scipy does); 0 when either side is constant."""
    t, p = _pair(y_true, y_pred)
    tau = stats.kendalltau(t, p).statistic
    return 0.0 if np.isnan(tau) else float(tau)


def spearman(y_true, y_pred) -> float:
    t, p = _pair(y_true, y_pred)
    rho = stats.spearmanr(t, p).statistic
    return 0.0 if np.isnan(rho) else float(rho)


def precision_at_k(y_true, y_pred, fraction: float) -> float:
    """Share of the true top ``fraction`` that is also in the predicted top
    ``fraction`` (K = max(1, floor(fraction * n)); ties broken by position)."""
    t, p = _pair(y_true, y_pred)
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    k = max(1, int(fraction * len(t)))
    true_top = np.argsort(-t, kind="stable")[:k]
    pred_top = np.argsort(-p, kind="stable")[:k]
    return len(np.intersect1d(true_top, pred_top)) / k


def mape(y_true, y_pred) -> float:
    """Mean absolute percentage error, in percent (y_true must be non-zero)."""
    t, p = _pair(y_true, y_pred)
    if np.any(t == 0):
        raise ValueError("MAPE is undefined where y_true is 0")
    return float(np.mean(np.abs(p - t) / np.abs(t)) * 100)


def acc_within(y_true, y_pred, delta: float = 0.1) -> float:
    """Acc@delta (NAR-Former V2, NNLQP): share with |p - y| / |y| <= delta."""
    t, p = _pair(y_true, y_pred)
    if np.any(t == 0):
        raise ValueError("relative error is undefined where y_true is 0")
    return float(np.mean(np.abs(p - t) / np.abs(t) <= delta))


def summary(y_true, y_pred) -> dict[str, float]:
    """The benchmark's metrics at once."""
    return {
        "kendall_tau": kendall_tau(y_true, y_pred),
        "spearman": spearman(y_true, y_pred),
        "precision_at_1pct": precision_at_k(y_true, y_pred, 0.01),
        "precision_at_5pct": precision_at_k(y_true, y_pred, 0.05),
    }
