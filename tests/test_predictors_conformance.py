"""Every registered predictor goes through this suite (parametrized over the
PREDICTORS registry), so a new one is checked the day it is registered. Each
runs with its ``quick_params`` on a small NB201 split."""
from __future__ import annotations

import numpy as np
import pytest

from flownas.arch import Architecture
from flownas.errors import ArchitectureError
from flownas.predictors.metrics import kendall_tau
from flownas.registry import PREDICTORS

NAMES = PREDICTORS.names()
# one xdist worker per predictor (make test: --dist loadgroup), so the module's
# fitted predictor is fitted once per predictor, not once per worker
GROUPED = [pytest.param(n, marks=pytest.mark.xdist_group(f"predictor-{n}")) for n in NAMES]


@pytest.fixture(scope="module")
def split(nb201_table):
    archs = nb201_table.archs()
    y = np.array([nb201_table.row(a)["c10_valid_val_acc_200"] for a in archs])
    perm = np.random.default_rng(0).permutation(len(archs))
    tr, te = perm[:200], perm[200:1200]
    return [archs[i] for i in tr], y[tr], [archs[i] for i in te], y[te]


@pytest.fixture(scope="module")
def fitted(split):
    cache = {}

    def get(name):
        if name not in cache:
            cls = PREDICTORS.get(name)
            cache[name] = cls(seed=0, **cls.quick_params).fit(split[0], split[1])
        return cache[name]
    return get


def test_the_registry_has_the_zoo():
    assert {"mlp", "gcn", "gbt", "flowerformer"} <= set(NAMES)


@pytest.mark.parametrize("name", GROUPED)
def test_learns(name, split, fitted):
    pred = fitted(name).predict(split[2])
    assert pred.shape == (len(split[2]),) and np.isfinite(pred).all()
    assert kendall_tau(split[3], pred) > 0.5


@pytest.mark.parametrize("name", GROUPED)
def test_predictions_are_in_target_units(name, split, fitted):
    pred = fitted(name).predict(split[0])
    assert abs(pred.mean() - split[1].mean()) < 0.25 * split[1].std()


@pytest.mark.parametrize("name", GROUPED)
def test_save_load_round_trips_exactly(name, split, fitted, tmp_path):
    p = fitted(name)
    p.save(tmp_path / "p.bin")
    q = type(p).load(tmp_path / "p.bin")
    assert q.get_params() == p.get_params()
    np.testing.assert_array_equal(q.predict(split[2]), p.predict(split[2]))
    from flownas.predictors.base import Predictor
    assert isinstance(q, Predictor)


@pytest.mark.parametrize("name", GROUPED)
def test_deterministic_under_a_seed(name, split):
    cls = PREDICTORS.get(name)
    archs, y = split[0][:60], split[1][:60]
    a = cls(seed=3, **cls.quick_params).fit(archs, y).predict(split[2][:50])
    b = cls(seed=3, **cls.quick_params).fit(archs, y).predict(split[2][:50])
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", GROUPED)
def test_return_std(name, split):
    cls = PREDICTORS.get(name)
    p = cls(seed=0, **{**cls.quick_params, "ensemble": 2}).fit(split[0][:60], split[1][:60])
    mean, std = p.predict(split[2][:30], return_std=True)
    assert mean.shape == std.shape == (30,)
    assert (std >= 0).all() and std.max() > 0
    np.testing.assert_allclose(mean, p.predict(split[2][:30]))


@pytest.mark.parametrize("name", [p for p in GROUPED if PREDICTORS.get(p.values[0]).permutation_invariant])
def test_isomorphic_relabelings_score_the_same(name, split, fitted):
    p = fitted(name)
    archs = split[2][:40]
    rng = np.random.default_rng(1)
    relabeled = [a.relabel(rng.permutation(a.num_nodes).tolist()) for a in archs]
    assert not any(r.same_numbering(a) for r, a in zip(relabeled, archs))
    np.testing.assert_allclose(p.predict(relabeled), p.predict(archs), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", GROUPED)
def test_bad_input_raises_clear_errors(name, split, fitted):
    cls = PREDICTORS.get(name)
    archs, y = split[0][:20], split[1][:20]
    with pytest.raises(ValueError, match="empty"):
        cls(**cls.quick_params).fit([], [])
    with pytest.raises(ValueError, match="NaN"):
        cls(**cls.quick_params).fit(archs, np.r_[y[:-1], np.nan])
    with pytest.raises(ValueError, match="missing|numbers"):
        cls(**cls.quick_params).fit(archs, list(y[:-1]) + [None])
    with pytest.raises(ValueError, match="expected 20"):
        cls(**cls.quick_params).fit(archs, y[:-1])
    other = Architecture.from_edges(("input", "conv3x3-bn-relu", "output"), [(0, 1), (1, 2)], "nb101")
    with pytest.raises(ArchitectureError, match="nb101"):
        fitted(name).predict([other])
    with pytest.raises(ValueError, match="empty"):
        fitted(name).predict([])
    with pytest.raises(TypeError, match="not an Architecture"):
        fitted(name).predict(["|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"])
    with pytest.raises(Exception, match="not fitted"):
        cls(**cls.quick_params).predict(split[2][:2])
    with pytest.raises(TypeError, match="unknown hyper-parameters|unexpected keyword"):
        cls(no_such_parameter=1)
