"""``blend``: the mean of its members, each trained as it would be alone.
(Learning, save/load, determinism and bad input on NB201 are checked for every
registered predictor by test_predictors_conformance.py.)"""
from __future__ import annotations

import numpy as np
import pytest

from flownas.errors import FlownasError
from flownas.predictors.blend import BlendPredictor
from flownas.registry import PREDICTORS

QUICK = BlendPredictor.quick_params["members"]


@pytest.fixture(scope="module")
def cells(nb201_table):
    archs = nb201_table.archs()
    y = np.array([nb201_table.row(a)["c10_valid_val_acc_200"] for a in archs])
    pick = np.random.default_rng(5).permutation(len(archs))[:260]
    return [archs[i] for i in pick], y[pick]


def test_the_blend_is_the_mean_of_its_members_trained_alone(cells):
    archs, y = cells
    tr, val, te = slice(0, 120), slice(120, 160), slice(160, 260)
    validation = (archs[val], y[val])
    blend = BlendPredictor(QUICK, seed=4).fit(archs[tr], y[tr], validation=validation)
    alone = [PREDICTORS.get(name)(**params, seed=4).fit(archs[tr], y[tr], validation=validation)
             for name, params in QUICK]
    preds = np.stack([m.predict(archs[te]) for m in alone])
    np.testing.assert_array_equal(blend.predict(archs[te]), preds.mean(0))
    mean, std = blend.predict(archs[te], return_std=True)
    np.testing.assert_array_equal(std, preds.std(0))
    # the members' own validation split picked their epochs
    assert all(m.train_results_[0].val_tau is not None for m in blend.members_)


def test_members_that_take_no_seed_or_validation_are_fitted_as_they_are(cells):
    archs, y = cells
    blend = BlendPredictor([["gbt", {"max_iter": 30}], QUICK[0]], seed=1, ensemble=2)
    blend.fit(archs[:100], y[:100], validation=(archs[100:140], y[100:140]))
    gbt, mlp = blend.members_
    assert (gbt.seed, gbt.ensemble, mlp.seed, mlp.ensemble) == (1, 2, 1, 2)
    assert len(gbt.rounds_) == 2   # gbt chose its rounds on the validation split too


@pytest.mark.parametrize("members, message", [
    ([], "non-empty"),
    ("gcn", "non-empty list"),
    (["no_such_model"], "no_such_model"),
    ([["gcn", {"no_such_parameter": 1}]], "no_such_parameter"),
    ([["gcn", {"seed": 3}]], "set seed and ensemble on the blend"),
    ([["blend", {}]], "cannot be a member"),
    ([["gcn", {"dim": object()}]], "JSON"),
])
def test_bad_members_are_named(members, message):
    with pytest.raises(Exception, match=message):
        BlendPredictor(members)


def test_a_file_that_is_not_a_blend_is_refused(tmp_path):
    path = tmp_path / "blend.bin"
    path.write_bytes(b"not a zip file")
    with pytest.raises(FlownasError, match="not a saved flownas blend"):
        BlendPredictor.load(path)


def test_a_blend_guides_the_predictor_strategy(nb201_table):
    from flownas.registry import STRATEGIES
    from flownas.spaces.nb201 import NB201Space
    strategy = STRATEGIES.get("predictor")(NB201Space(), seed=0, predictor={"name": "blend", "members": QUICK},
                                           ensemble=2, num_init=12, refit_every=50, num_mutations=10,
                                           num_random=10)
    for _ in range(13):
        (arch,) = strategy.ask(1)
        strategy.tell(arch, nb201_table.row(arch)["c10_valid_val_acc_200"])
    info = strategy.describe(arch)
    assert info["origin"] != "random" and info["predicted_std"] >= 0
    (blend,) = strategy.surrogate.members   # the blend trains the ensemble itself: two of each member
    assert isinstance(blend, BlendPredictor) and [len(m.networks_) for m in blend.members_] == [2, 2]


def test_every_member_sees_the_training_data_when_it_comes_as_a_generator(cells):
    archs, y = cells
    blend = BlendPredictor(QUICK).fit((a for a in archs[:60]), y[:60])
    assert [len(m.networks_) for m in blend.members_] == [1, 1]
    assert np.isfinite(blend.predict(archs[60:80])).all()
