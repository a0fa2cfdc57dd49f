"""``flownas bench predictors``: the protocols' splits and the JSON it writes."""
from __future__ import annotations

import json

import numpy as np
import pytest

from flownas.cli import main
from flownas.errors import ConfigError
from flownas.predictors_cli import parse_seeds, split

KEYS = {"kendall_tau", "kendall_tau_std", "spearman", "precision_at_1pct", "precision_at_5pct",
        "train_seconds", "predict_archs_per_second", "peak_rss_mb", "per_seed", "protocol"}


def test_protocol_a_splits_one_permutation_three_ways():
    tr, va, te = split(1000, 78, "A", seed=3)
    assert (len(tr), len(va), len(te)) == (78, 40, 882)
    assert len(np.unique(np.concatenate([tr, va, te]))) == 1000
    again = split(1000, 78, "A", seed=3)
    assert all(np.array_equal(a, b) for a, b in zip((tr, va, te), again))
    assert not np.array_equal(tr, split(1000, 78, "A", seed=4)[0])


def test_protocol_b_tests_every_architecture():
    tr, va, te = split(1000, 156, "B", seed=0)
    assert (len(tr), len(va)) == (156, 200) and not set(tr) & set(va)
    np.testing.assert_array_equal(te, np.arange(1000))


@pytest.mark.parametrize("n, protocol", [(961, "A"), (801, "B"), (1, "A")])
def test_train_size_must_fit_the_table(n, protocol):
    with pytest.raises(ConfigError, match="does not fit"):
        split(1000, n, protocol, seed=0)


def test_seeds_argument():
    assert parse_seeds("3") == [0, 1, 2]
    assert parse_seeds("21,2021") == [21, 2021]


def test_the_command_writes_the_issue_keys_and_what_it_ran(nb201_table, tmp_path, capsys):
    out = tmp_path / "r.json"
    rc = main(["bench", "predictors", "--space", "nb201", "--predictor", "mlp", "--train-size", "100",
               "--protocol", "B", "--seeds", "2", "--threads", "1", "--json", str(out),
               "--param", "epochs=5", "--param", "hidden=16"])
    assert rc == 0
    doc = json.loads(out.read_text())
    assert set(doc) == KEYS | {"run"}
    assert doc["run"] == {"space": "nb201", "task": None, "protocol": "B", "train_size": 100, "predictor": "mlp",
                          "params": {"epochs": 5, "hidden": 16}, "seeds": [0, 1]}
    assert len(doc["per_seed"]) == 2 and doc["per_seed"][0]["n_test"] == 15625
    assert "c10_valid_test_acc_200" in doc["protocol"] and "[0, 1]" in doc["protocol"]
    assert -1 <= doc["kendall_tau"] <= 1 and doc["peak_rss_mb"] > 0
    printed = capsys.readouterr().out
    assert "seeds [0, 1]" in printed and "protocol B" in printed


def test_the_command_rejects_a_train_size_larger_than_the_table(nb201_table, capsys):
    assert main(["bench", "predictors", "--space", "nb201", "--predictor", "mlp",
                 "--train-size", "20000", "--seeds", "1"]) == 1
    assert "does not fit" in capsys.readouterr().err


def test_the_command_rejects_unknown_hyper_parameters(capsys):
    assert main(["bench", "predictors", "--space", "nb201", "--predictor", "mlp",
                 "--train-size", "20", "--param", "bogus=1"]) == 1
    assert "unknown hyper-parameters: bogus" in capsys.readouterr().err


def test_the_command_rejects_bad_network_hyper_parameters_in_one_line(capsys):
    assert main(["bench", "predictors", "--space", "nb201", "--predictor", "flowerformer",
                 "--train-size", "20", "--param", "dim=30", "--param", "heads=4"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "flownas: error: predictor flowerformer: dim (30) must be divisible by heads (4)"


def test_a_blend_records_each_members_figure_on_the_same_split(nb201_table, tmp_path):
    out = tmp_path / "r.json"
    members = '[["mlp", {"epochs": 5, "hidden": 16}], ["gbt", {"max_iter": 20}]]'
    assert main(["bench", "predictors", "--space", "nb201", "--predictor", "blend", "--train-size", "100",
                 "--seeds", "1", "--threads", "1", "--json", str(out), "--param", f"members={members}"]) == 0
    rec = json.loads(out.read_text())["per_seed"][0]
    taus = rec["member_kendall_taus"]
    assert [m["predictor"] for m in taus] == ["mlp", "gbt"]
    assert all(-1 <= m["kendall_tau"] <= 1 for m in taus) and taus[0]["kendall_tau"] != taus[1]["kendall_tau"]
