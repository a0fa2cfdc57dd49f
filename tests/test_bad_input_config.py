"""Bad configuration files and values: each is one clear line naming the problem
(the bad-input sweep's findings F6, F10, F11, F19, F27 and F28)."""
import re
from pathlib import Path

import pytest

from flownas.cli import main
from flownas.errors import ConfigError
from flownas.search.config import SearchConfig, parse_constraint_flag

DOCS = Path(__file__).resolve().parents[1] / "docs" / "search.md"


def one_line_error(capsys, *argv) -> str:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code != 0 and err.startswith("flownas: error: ") and err.count("\n") == 1, err
    return err


def load(tmp_path, text: str, name: str = "c.yaml") -> SearchConfig:
    path = tmp_path / name
    path.write_text(text)
    return SearchConfig.load(path)


# -- F19: scientific notation, and parameters of the wrong type ---------------
def test_exponents_without_a_dot_or_sign_are_numbers(tmp_path):
    config = load(tmp_path, "strategy: {name: predictor, num_init: 3, refit_every: 3}\n"
                            "predictor: {name: gcn, epochs: 2, lr: 1e-3, weight_decay: 5E-4}\n"
                            "budget: {evaluations: 10, cost_s: 3.6e6}\n"
                            "constraints:\n"
                            "  - {metric: params, max: 3.5e6, evaluator: {name: proxies, proxies: [], "
                            "objective: params}}\n")
    assert config.predictor.params["lr"] == 1e-3 and isinstance(config.predictor.params["lr"], float)
    assert config.predictor.params["weight_decay"] == 5e-4
    assert config.budget.cost_s == 3.6e6
    assert config.constraints[0].max == 3.5e6
    # what YAML already read as numbers stays as it was; names stay names
    config = load(tmp_path, "strategy: {name: predictor, beta: 1.5e+0}\npredictor: {name: gcn, lr: .5e-2, "
                            "epochs: auto}\nbudget: 100\nname: e5\n")
    assert config.strategy.params["beta"] == 1.5 and config.predictor.params["lr"] == 0.005
    assert config.predictor.params["epochs"] == "auto" and config.budget.evaluations == 100 and config.name == "e5"


def test_a_float_exponent_is_not_a_count(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("space: nb201\nstrategy: {name: evolution}\nbudget: 1e30\n")
    assert "budget: expected a number of evaluations or a mapping, got float" in one_line_error(
        capsys, "search", cfg, "--out", tmp_path / "r", "--quiet")


def test_the_documented_configurations_load(tmp_path):
    """Every YAML block of docs/search.md "Configuration" and "Constraints",
    commented-out examples included, loads."""
    text = DOCS.read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    assert blocks
    for block in blocks:
        uncommented = re.sub(r"^(\s*)# (- \{metric)", r"\1\2", block, flags=re.M)
        if uncommented.lstrip().startswith("constraints:"):
            uncommented = "strategy: evolution\n" + uncommented
        load(tmp_path, uncommented)
    budget = re.search(r"or (\{evaluations: 150, cost_s: [^}]+\})", text).group(1)
    assert load(tmp_path, f"budget: {budget}\n").budget.cost_s == 3.6e6


@pytest.mark.parametrize("text, message", [
    ("predictor: {name: gcn, lr: fast}\n", "predictor.lr: expected float, got str 'fast'"),
    ("predictor: {name: gcn, batch_size: 6.5}\n", "predictor.batch_size: expected int, got float 6.5"),
    ("predictor: {name: mlp, epochs: soon}\n", "predictor.epochs: expected int or 'auto', got str 'soon'"),
    ("predictor: {name: mlp, loss: 3}\n", "predictor.loss: expected str, got int 3"),
    ("predictor: {name: mlp, grad_clip: off}\n", "predictor.grad_clip: expected float or null, got bool False"),
    ("strategy: {name: predictor, predictor: {name: gcn, lr: fast}}\n",
     "strategy.predictor.lr: expected float, got str 'fast'"),
    ("evaluator: {name: training, lr: fast}\n", "evaluator.lr: expected float or null, got str 'fast'"),
    ("evaluator: {name: training, nesterov: 1}\n", "evaluator.nesterov: expected bool, got int 1"),
])
def test_hyper_parameters_of_the_wrong_type_name_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    assert message in str(info.value)


def test_hyper_parameters_of_the_right_type_pass(tmp_path):
    config = load(tmp_path, "predictor: {name: mlp, lr: 1, epochs: auto, grad_clip: null, patience: 5, "
                            "prune_ops: [none], contract_ops: auto, loss: mse}\n")
    assert config.predictor.params["lr"] == 1   # an int where a float is expected
    config = load(tmp_path, "evaluator: {name: training, dataset: cifar10-mini, lr: 1e-2, epochs: 2, "
                            "grad_clip: null}\ndataset: null\n")
    assert config.evaluator.params["lr"] == 0.01


def test_a_wrong_learning_rate_type_is_one_line_from_the_cli(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("space: nb201\nstrategy: {name: predictor, num_init: 3, refit_every: 3}\n"
                   "predictor: {name: gcn, epochs: 2, lr: fast}\nbudget: 5\n")
    err = one_line_error(capsys, "search", cfg, "--out", tmp_path / "r", "--quiet")
    assert "predictor.lr: expected float, got str 'fast'" in err and not (tmp_path / "r").exists()


# -- F6: the dataset given twice -----------------------------------------------
def test_two_different_datasets_are_an_error_naming_both(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("space: nb201\nstrategy: {name: evolution}\nevaluator: {name: tabular, dataset: cifar100}\n"
                   "dataset: cifar10\nbudget: 5\n")
    err = one_line_error(capsys, "search", cfg, "--out", tmp_path / "r", "--quiet")
    assert "dataset given twice: cifar10 (top level) and cifar100 (evaluator.dataset)" in err
    assert not (tmp_path / "r").exists()


def test_the_same_dataset_twice_and_the_dataset_flag_are_accepted(tmp_path):
    config = load(tmp_path, "evaluator: {name: tabular, dataset: cifar100}\ndataset: cifar100\n")
    assert config.evaluator_params()["dataset"] == "cifar100"
    # a flag overrides the file, the evaluator's dataset included
    config = load(tmp_path, "evaluator: {name: tabular, dataset: cifar100}\n").with_flags(dataset="cifar10")
    assert config.evaluator_params()["dataset"] == "cifar10" and "dataset" not in config.evaluator.params
    assert config.to_dict()["dataset"] == "cifar10"


# -- F10: NaN and negative values ----------------------------------------------
@pytest.mark.parametrize("text, message", [
    ("strategy: {name: predictor, beta: .nan}\n", "strategy.beta: expected a finite number, got nan"),
    ("strategy: {name: predictor, beta: -.inf}\n", "strategy.beta: expected a finite number, got -inf"),
    ("strategy: {name: predictor, beta: -1}\n", "strategy.beta: must not be negative (default 1.0), got -1"),
    ("strategy: {name: predictor, num_mutations: -1}\n",
     "strategy.num_mutations: must not be negative (default 200), got -1"),
    ("predictor: {name: mlp, hidden: -5}\n", "predictor.hidden: must not be negative (default 128), got -5"),
    ("predictor: {name: gcn, lr: .nan}\n", "predictor.lr: expected a finite number, got nan"),
    ("strategy: evolution\nconstraints:\n  - {metric: latency_ms, max: .nan, "
     "evaluator: {name: latency_table, device: pixel3}}\n",
     "constraints[0].max: expected a finite number, got nan"),
    ("strategy: evolution\nconstraints:\n  - {metric: latency_ms, min: .inf, "
     "evaluator: {name: latency_table, device: pixel3}}\n",
     "constraints[0].min: expected a finite number, got inf"),
])
def test_nan_and_negative_parameters_are_refused(tmp_path, text, message):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    assert message in str(info.value)


def test_nan_from_the_cli(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("space: nb201\nstrategy: {name: predictor, ensemble: 2, num_init: 5, refit_every: 5, "
                   "beta: .nan}\npredictor: {name: gbt}\nbudget: 40\n")
    assert "strategy.beta: expected a finite number, got nan" in one_line_error(
        capsys, "search", cfg, "--out", tmp_path / "r", "--quiet")
    assert "expected a finite number" in one_line_error(
        capsys, "search", "--strategy", "evolution", "--constraint", "latency_ms <= nan latency_table device=pixel3",
        "--out", tmp_path / "r", "--quiet")


def test_zero_and_finite_values_pass(tmp_path):
    config = load(tmp_path, "strategy: {name: predictor, beta: 0, num_mutations: 0}\n"
                            "constraints:\n  - {metric: latency_ms, max: 5.0, min: 0, "
                            "evaluator: {name: latency_table, device: pixel3}}\n")
    assert config.strategy.params == {"beta": 0, "num_mutations": 0} and config.constraints[0].min == 0.0
    assert parse_constraint_flag("latency_ms <= 5e0 latency_table device=pixel3").max == 5.0
    with pytest.raises(ConfigError, match="finite"):
        parse_constraint_flag("latency_ms <= inf latency_table device=pixel3")


# -- F11: not a text file ------------------------------------------------------
def test_a_binary_config_is_one_line(tmp_path, capsys):
    cfg = tmp_path / "binary.yaml"
    cfg.write_bytes(b"\xff\xfe\x00garbage\x00\x01")
    err = one_line_error(capsys, "search", cfg, "--out", tmp_path / "r", "--quiet")
    assert f"{cfg}: not a UTF-8 text file" in err
    err = one_line_error(capsys, "bench", "search", cfg, "--seeds", "1")
    assert "not a UTF-8 text file" in err
    with pytest.raises(ConfigError, match="not a UTF-8 text file"):
        SearchConfig.load(cfg)


def test_a_utf8_config_with_a_byte_order_mark_loads(tmp_path):
    cfg = tmp_path / "bom.yaml"
    cfg.write_bytes("\ufeffstrategy: evolution\nname: café\n".encode("utf-8"))
    config = SearchConfig.load(cfg)
    assert config.strategy.name == "evolution" and config.name == "café"


# -- F27: empty files and duplicate keys ----------------------------------------
@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n   # and another\n", "---\n"])
def test_an_empty_config_is_an_error(tmp_path, capsys, text):
    cfg = tmp_path / "empty.yaml"
    cfg.write_text(text)
    err = one_line_error(capsys, "search", cfg, "--out", tmp_path / "r", "--quiet")
    assert f"{cfg} is empty" in err and not (tmp_path / "r").exists()


def test_an_empty_mapping_is_still_the_defaults(tmp_path):
    assert load(tmp_path, "{}\n").strategy.name == "predictor"


@pytest.mark.parametrize("text, message", [
    ("space: nb201\nstrategy: {name: evolution}\nbudget: 10\nbudget: 20\n",
     "duplicate key 'budget' at line 4 (first at line 3)"),
    ("strategy:\n  name: evolution\n  population_size: 10\n  population_size: 20\n",
     "duplicate key 'population_size' at line 4 (first at line 3)"),
    ("strategy: {name: evolution, name: random}\n", "duplicate key 'name' at line 1"),
])
def test_a_duplicate_key_is_an_error_naming_the_key_and_line(tmp_path, capsys, text, message):
    cfg = tmp_path / "dup.yaml"
    cfg.write_text(text)
    err = one_line_error(capsys, "search", cfg, "--out", tmp_path / "r", "--quiet")
    assert f"{cfg}: {message}" in err and not (tmp_path / "r").exists()


def test_yaml_merge_keys_may_still_override(tmp_path):
    config = load(tmp_path, "strategy:\n  <<: {name: evolution, population_size: 10}\n  population_size: 12\n")
    assert config.strategy.params == {"population_size": 12}
    config = load(tmp_path, "strategy:\n  <<: [{name: evolution, population_size: 10}, {sample_size: 3}]\n")
    assert config.strategy.params == {"population_size": 10, "sample_size": 3}


def test_a_second_merge_key_is_an_error_not_dropped(tmp_path, capsys):
    """YAML 1.1 kept the first ``<<`` and dropped the second without a word."""
    cfg = tmp_path / "merge.yaml"
    cfg.write_text("strategy:\n  <<: {name: evolution}\n  <<: {population_size: 12}\n")
    err = one_line_error(capsys, "search", cfg, "--out", tmp_path / "r", "--quiet")
    assert f"{cfg}: duplicate key '<<' at line 3 (first at line 2)" in err and "<<: [*a, *b]" in err


# -- F28: names that are not one directory -------------------------------------
@pytest.mark.parametrize("name", ["../../escape", "a/b", "..", ".", "a\\b", "/abs", ""])
def test_a_name_must_be_one_directory_name(tmp_path, name):
    with pytest.raises(ConfigError, match=r"^name: "):
        SearchConfig.from_dict({"name": name})
    with pytest.raises(ConfigError, match=r"^name: "):
        SearchConfig.from_dict({}).with_flags(name=name)


def test_a_name_with_a_path_is_refused_before_anything_is_written(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text('space: nb201\nstrategy: {name: evolution}\nname: "../../escape"\nbudget: 3\n')
    err = one_line_error(capsys, "search", "c.yaml", "--quiet")
    assert "name: '../../escape'" in err and "path separator" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]
    assert SearchConfig.from_dict({"name": "nb201-c10..v2"}).run_dir == Path("runs/nb201-c10..v2")


def test_with_flags_refuses_a_flag_it_does_not_know_or_of_the_wrong_type():
    """Python API walkthrough P8: a typo (budgett=10) was dropped without a word; budget='7' was a TypeError."""
    config = SearchConfig.from_dict({})
    with pytest.raises(ConfigError, match=r"^unknown flag 'budgett' \(did you mean 'budget'\?\); flags: space, "):
        config.with_flags(budgett=10)
    for key in ("budget", "seed", "threads", "workers"):
        with pytest.raises(ConfigError, match=f"^{key}: expected int, got str '7'$"):
            config.with_flags(**{key: "7"})
    assert config.with_flags(budget=7, seed=None).budget.evaluations == 7
