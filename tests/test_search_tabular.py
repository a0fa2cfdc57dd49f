"""TabularEvaluator (objective, test metric, simulated cost) and TableSubspace."""
import numpy as np
import pytest

from flownas.errors import ConfigError, NotInSpaceError, NotInTableError
from flownas.evaluators.tabular import TabularEvaluator
from flownas.registry import EVALUATORS, get_space
from flownas.search.subspace import TableSubspace
from flownas.toys import ToySpace

BEST_C10 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


@pytest.mark.parametrize("dataset, objective, test", [
    ("cifar10", "c10_valid_val_acc_200", "c10_test_acc_200"),
    ("cifar100", "c100_val_acc_12", "c100_test_acc_200"),
    ("ImageNet16-120", "in16_val_acc_12", "in16_test_acc_200"),
])
def test_objective_and_test_metric_per_dataset(nb201_table, dataset, objective, test):
    ev = EVALUATORS.get("tabular")(benchmark="nb201", dataset=dataset)
    arch = get_space("nb201").from_string(BEST_C10)
    result = ev.evaluate(arch)
    row = nb201_table.row(arch)
    assert (ev.objective, ev.test_metric) == (objective, test)
    assert result.metrics[objective] == row[objective] and result.metrics[test] == row[test]
    assert result.cost_s > 0 and result.info["cost_source"] in ("table", "estimate")


def test_nb201_cost_is_the_logged_time_where_the_table_has_it(nb201_table):
    from flownas.benchmarks.base import read_jsonl_gz, table_path
    ev = TabularEvaluator(dataset="cifar10")
    space = get_space("nb201")
    logged = next(read_jsonl_gz(table_path("nasbench201/nb201_nats_tss_subset1000.jsonl.gz")))
    result = ev.evaluate(space.from_string(logged["arch"]))
    assert result.info["cost_source"] == "table"
    assert result.cost_s == logged["results"]["cifar10"]["200"]["train_time_s"]
    # elsewhere (15 in 16 cells) an estimate from the op counts
    sources = [ev.evaluate(a).info["cost_source"] for a in nb201_table.archs()[-200:]]
    assert sources.count("estimate") > 150
    cheap = ev.evaluate(space.from_string("|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"))
    dear = ev.evaluate(space.from_string("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
                                         "+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"))
    assert 500 < cheap.cost_s < dear.cost_s < 20_000
    # the 12-epoch objective costs the 12-epoch run
    assert TabularEvaluator(dataset="cifar100").evaluate(space.from_string(BEST_C10)).cost_s < dear.cost_s / 5


def test_unknown_dataset_or_benchmark_is_named():
    with pytest.raises(ConfigError, match="no dataset 'svhn'.*cifar10, cifar100, ImageNet16-120"):
        TabularEvaluator(dataset="svhn")
    with pytest.raises(ConfigError, match="has no table 'nb999' \\(it has nb101, nb201, nb301\\)"):
        TabularEvaluator(benchmark="nb999")


def test_a_space_without_a_table_is_told_to_give_an_evaluator(capsys, data_root):
    """The default evaluator of a space is its table: fbnet (or a space of your own) has none."""
    from cli_run import one_line_error
    err = one_line_error(capsys, "search", "--space", "fbnet", "--check")
    assert "evaluator: the tabular evaluator has no table 'fbnet'" in err
    assert "evaluator: {name: training, dataset: cifar10-mini}" in err


def test_darts_searches_the_nb301_table_by_default(capsys, tmp_path, data_root):
    """Before: 'the tabular evaluator has no table 'darts'' (and 'nb301' when named)."""
    import csv

    from cli_run import run
    code, out, _ = run(capsys, "search", "--space", "darts", "--check")
    assert code == 0 and "darts: 1,218 members, those in the table" in out and "val_acc_surrogate" in out
    assert run(capsys, "search", "--space", "darts", "--strategy", "evolution", "--budget", "12",
               "--out", tmp_path / "d", "--quiet")[0] == 0
    rows = list(csv.DictReader(open(tmp_path / "d" / "history.csv")))
    assert len(rows) == 12 and all(80 < float(r["objective"]) < 100 for r in rows)
    result = TabularEvaluator(benchmark="nb301").evaluate(get_space("darts").from_string(rows[0]["arch"]))
    assert result.cost_s == 0.0 and result.info["cost_source"] == "none" and "params_m" in result.metrics


def test_an_architecture_outside_the_table_fails_the_evaluation(nb201_table):
    toy = ToySpace().sample(np.random.default_rng(0))
    with pytest.raises(NotInTableError):
        TabularEvaluator().evaluate(toy)


def test_table_subspace_samples_and_mutates_within_the_table():
    space = ToySpace()
    members = list(space.enumerate())[::7]
    sub = TableSubspace(space, members)
    rng = np.random.default_rng(0)
    assert sub.size() == len(members) and list(sub.enumerate()) == members
    for _ in range(30):
        arch = sub.sample(rng)
        child = sub.mutate(arch, rng)
        assert arch in sub and child in sub and child != arch
    outside = next(a for a in space.enumerate() if a not in members)
    assert not sub.contains(outside)
    with pytest.raises(NotInSpaceError, match="benchmark table has no record"):
        sub.validate(outside)
    with pytest.raises(NotInSpaceError):
        sub.from_params(space.to_params(outside))
    assert sub.to_string(members[0]) == space.to_string(members[0])
