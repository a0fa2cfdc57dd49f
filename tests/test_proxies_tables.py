"""Low-fidelity experts served from the benchmark tables."""
import pytest

from flownas.errors import ConfigError
from flownas.evaluators.lowfidelity import LowFidelityTable, every_signal, low_fidelity_signals
from flownas.registry import EVALUATORS
from flownas.spaces.nb201 import NB201Space

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def test_nb201_signals(nb201_table):
    arch = NB201Space().from_string(BEST)
    row = nb201_table.row(arch)
    assert low_fidelity_signals(arch) == {
        "acc_12": row["c10_valid_val_acc_12"], "test_acc_12": row["c10_test_acc_12"],
        "params": row["params_m_c10"], "naswot": row["naswot_score"]}
    assert low_fidelity_signals(arch, "cifar100", ["acc_12", "test_acc_12"]) == {
        "acc_12": row["c100_val_acc_12"], "test_acc_12": row["c100_test_acc_12"]}
    # another dataset's run, whatever the dataset searched
    assert low_fidelity_signals(arch, signals=["acc_12", "acc_12@cifar100", "acc_12@ImageNet16-120"]) == {
        "acc_12": row["c10_valid_val_acc_12"], "acc_12@cifar100": row["c100_val_acc_12"],
        "acc_12@ImageNet16-120": row["in16_val_acc_12"]}


def test_every_signal_adds_the_other_datasets_runs(nb201_table):
    arch = NB201Space().from_string(BEST)
    names = every_signal("nb201", "cifar100")
    assert names == ("acc_12", "test_acc_12", "params", "naswot", "acc_12@cifar10", "acc_12@ImageNet16-120",
                     "test_acc_12@cifar10", "test_acc_12@ImageNet16-120")
    values = low_fidelity_signals(arch, "cifar100", names)   # eight distinct columns
    assert values["acc_12@cifar10"] == nb201_table.row(arch)["c10_valid_val_acc_12"]
    assert every_signal("nb101") == ("acc_4", "acc_12", "acc_36", "params")


@pytest.mark.parametrize("signals, dataset, message", [
    (["params@cifar100"], "cifar10", "same on every dataset"),
    (["acc_12@mnist"], "cifar10", "no dataset 'mnist'"),
    (["acc_12", "acc_12@cifar100"], "cifar100", "same column 'c100_val_acc_12'"),
    (["acc_36"], "cifar10", "unknown nb201 signals acc_36"),
])
def test_bad_signal_names_are_explained(nb201_table, signals, dataset, message):
    arch = NB201Space().from_string(BEST)
    with pytest.raises(ConfigError, match=message):
        low_fidelity_signals(arch, dataset, signals)


def test_missing_signal_is_none(nb201_table):
    space = NB201Space()
    arch = next(a for a in map(space.from_string, nb201_table._rows) if nb201_table.row(a)["naswot_score"] is None)
    assert low_fidelity_signals(arch)["naswot"] is None


def test_evaluator_objective_and_simulated_cost(nb201_table):
    ev = EVALUATORS.create("low_fidelity")
    assert isinstance(ev, LowFidelityTable) and ev.objective == "acc_12"
    space = NB201Space()
    nats = nb201_table.extras()["nats"]
    recorded = space.from_string(next(iter(nats)))
    r = ev.evaluate(recorded)
    assert r.cost_s == nats[space.to_string(recorded)]["cifar10"]["12"]["train_time_s"]
    unrecorded = next(a for a in map(space.from_string, nb201_table._rows) if space.to_string(a) not in nats)
    assert ev.evaluate(unrecorded).cost_s > 0          # the median of the recorded times
    assert LowFidelityTable(objective="naswot", signals=["naswot"]).evaluate(recorded).cost_s == 0.0


def test_bad_configuration_is_named():
    with pytest.raises(ConfigError, match="no low-fidelity table signals for space 'darts'"):
        LowFidelityTable("darts")
    with pytest.raises(ConfigError, match="objective 'acc_12' is not among the signals params"):
        LowFidelityTable(signals=["params"])
    with pytest.raises(ConfigError, match="has no dataset 'svhn'"):
        LowFidelityTable(dataset="svhn")


def test_nb101_signals_and_cost(nb101_table):
    from flownas.evaluators.lowfidelity import table_pool
    arch = nb101_table.archs()[0]
    row = nb101_table.row(arch)
    assert low_fidelity_signals(arch) == {"acc_4": row["val_acc_4"], "acc_12": row["val_acc_12"],
                                          "acc_36": row["val_acc_36"], "params": row["params"]}
    ev = LowFidelityTable("nb101", objective="acc_36")
    r = ev.evaluate(arch.relabel(list(reversed(range(arch.num_nodes)))))
    assert r.metrics["acc_36"] == row["val_acc_36"]
    assert r.cost_s == pytest.approx(row["train_time_108_s"] * 36 / 108)
    archs, signals = table_pool("nb101", signals=["acc_4"])
    assert len(archs) == len(signals["acc_4"]) == 20001 and signals["acc_4"][0] == row["val_acc_4"]
