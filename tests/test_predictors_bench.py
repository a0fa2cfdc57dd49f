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
    machine = {k: doc["run"].pop(k) for k in ("cpu", "cpu_capability", "threads")}
    assert doc["run"] == {"space": "nb201", "task": None, "protocol": "B", "train_size": 100, "predictor": "mlp",
                          "params": {"epochs": 5, "hidden": 16}, "seeds": [0, 1]}
    assert machine["threads"] == 1 and machine["cpu_capability"] in doc["protocol"]
    assert doc["kendall_tau_std"] > 0
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


def _parse(*argv):
    from flownas.cli import build_parser
    return build_parser().parse_args(["bench", "predictors", "--predictor", "mlp", "--train-size", "50", *argv])


def test_one_thread_by_default_as_every_published_figure(capsys):
    assert _parse("--space", "nb201").threads == 1          # was 2: the figures differ slightly
    with pytest.raises(SystemExit):
        _parse("--help")
    text = " ".join(capsys.readouterr().out.split())
    assert "default 1" in text and "changes the figures slightly" in text


def test_help_shows_how_to_name_one_seed(capsys):
    with pytest.raises(SystemExit):
        _parse("--help")
    assert "3, = seed 3 alone" in " ".join(capsys.readouterr().out.split())
    assert parse_seeds("3,") == [3]


def test_a_count_of_zero_says_how_to_name_seed_zero(capsys):
    with pytest.raises(SystemExit):
        _parse("--space", "nb201", "--seeds", "0")
    assert "'0,' is seed 0 alone" in capsys.readouterr().err


@pytest.mark.parametrize("given, table", [("darts", "nb301"), ("transnas_micro", "transnas"), ("nb301", "nb301"),
                                          ("nb201", "nb201")])
def test_space_takes_the_search_spaces_names_too(given, table):
    assert _parse("--space", given).space == table     # darts was refused: sample/lookup call it so


def test_an_unknown_space_names_tables_and_spaces(capsys):
    with pytest.raises(SystemExit):
        _parse("--space", "dart")
    err = capsys.readouterr().err
    assert "did you mean 'darts'?" in err and "darts = nb301" in err and "transnas_micro = transnas" in err


def test_help_names_the_space_to_table_mapping(capsys):
    with pytest.raises(SystemExit):
        _parse("--help")
    assert "darts = nb301, transnas_micro = transnas" in " ".join(capsys.readouterr().out.split())


def test_one_seed_has_no_spread_and_the_machine_is_recorded(nb201_table, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["bench", "predictors", "--space", "nb201", "--predictor", "gbt", "--train-size", "50",
                 "--seeds", "3,", "--json", str(out), "--param", "max_iter=5"]) == 0
    doc = json.loads(out.read_text())
    assert doc["kendall_tau_std"] is None                 # was 0.0
    assert set(doc) == KEYS | {"run"} and doc["run"]["seeds"] == [3]
    assert doc["run"]["cpu_capability"] and "cpu" in doc["run"] and doc["run"]["threads"] == 1
    printed = capsys.readouterr().out
    assert "(1 seed)" in printed and "± 0.0000" not in printed


def test_the_cpu_model_is_read_from_cpuinfo_or_platform(monkeypatch):
    import builtins
    import platform
    from flownas.predictors_cli import cpu_model
    real_open = builtins.open

    def no_cpuinfo(path, *a, **k):
        if str(path) == "/proc/cpuinfo":
            raise OSError("none here")
        return real_open(path, *a, **k)
    monkeypatch.setattr(builtins, "open", no_cpuinfo)
    monkeypatch.setattr(platform, "processor", lambda: "Some CPU")
    assert cpu_model() == "Some CPU"
    monkeypatch.setattr(platform, "processor", lambda: "")
    assert cpu_model() is None


def test_the_grid_renders_a_one_seed_file_with_a_null_spread(tmp_path, capsys):
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_predictors.py"
    spec = importlib.util.spec_from_file_location("bench_predictors_script", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    rec = {"seed": 0, "kendall_tau": 0.5, "spearman": 0.6, "precision_at_1pct": 0.1, "precision_at_5pct": 0.2,
           "train_seconds": 1.0, "train_cpu_seconds": 1.0, "predict_archs_per_second": 100.0}
    doc = {"kendall_tau": 0.5, "kendall_tau_std": None, "peak_rss_mb": 10.0, "per_seed": [rec],
           "run": {"params": {}}, "protocol": "A on nb201"}
    (tmp_path / "nb201-A-78-gbt-s0.json").write_text(json.dumps(doc))
    script.render(type("Args", (), {"out": str(tmp_path)}))
    assert "| nb201 | A | 78 | gbt | 0.500 ± 0.000 |" in capsys.readouterr().out


@pytest.mark.parametrize("script", ["bench_cell_spaces.py", "noise_ceiling.py", "bench_predictors.py"])
def test_benchmark_scripts_have_help(script):
    """bench_cell_spaces.py --help was a KeyError traceback; noise_ceiling.py --help ran the whole benchmark."""
    import os
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, str(root / "benchmarks" / script), "--help"], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "FLOWNAS_DATA": "/nonexistent"})
    assert proc.returncode == 0 and proc.stdout.startswith("usage:") and proc.stderr == ""


def test_bench_cell_spaces_refuses_an_unknown_section():
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, str(root / "benchmarks" / "bench_cell_spaces.py"), "nb2o1"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "unknown section nb2o1 (known: nb201, enum" in proc.stderr
