import numpy as np
import pytest
import torch

from flownas.arch import Architecture
from flownas.errors import ArchitectureError, DataError, NotInSpaceError, NotInTableError
from flownas.spaces.nb201 import NB201Space
from flownas.spaces.transnas import TASK_OUTPUTS, TransNASMacroSpace, TransNASMicroSpace

MICRO, MACRO = TransNASMicroSpace(), TransNASMacroSpace()


def test_micro_cell_has_the_nb201_node_form():
    a = MICRO.from_string("64-41414-3_12_013")
    # digits in NB201 edge order: 1<-0 | 2<-0, 2<-1 | 3<-0, 3<-1, 3<-2
    assert MICRO.edge_ops(a) == ("nor_conv_3x3", "skip_connect", "nor_conv_1x1",
                                 "none", "skip_connect", "nor_conv_3x3")
    twin = NB201Space().from_edge_ops(MICRO.edge_ops(a))
    assert a.edges == twin.edges and a.ops == twin.ops and a.space == "transnas_micro"
    assert MICRO.size() == 4 ** 6


def test_macro_space_rules_and_size():
    assert MACRO.size() == 3256
    a = MACRO.from_string("64-1324-basic")
    assert a.ops == ("input", "stem", "res_normal", "res_down", "res_widen", "res_down_widen", "output")
    stages = [dict(x) for x in a.attrs[2:6]]
    assert [(s["c_in"], s["c_out"], s["stride"]) for s in stages] == [
        (64, 64, 1), (64, 64, 2), (64, 128, 1), (128, 256, 2)]


def test_every_record_round_trips_and_is_found(transnas_table):
    seen = {"micro": 0, "macro": 0}
    for (kind, text), tasks in transnas_table._rows.items():
        space = MICRO if kind == "micro" else MACRO
        arch = space.from_string(text)
        assert space.to_string(arch) == text
        assert space.from_params(space.to_params(arch)).same_numbering(arch)
        assert set(transnas_table.query(arch)["tasks"]) == set(tasks)
        seen[kind] += 1
    assert seen == {"micro": 711, "macro": 725} == {k: len(transnas_table.archs(k)) for k in seen}


def test_query_gives_per_task_metrics_with_missing_proxies_as_none(transnas_table):
    arch = MICRO.from_string("64-41414-3_33_333")
    rec = transnas_table.query(arch.relabel([7, 5, 6, 4, 3, 2, 1, 0]))
    assert rec["arch"] == "64-41414-3_33_333" and rec["space"] == "micro"
    assert set(rec["tasks"]) == set(transnas_table.tasks())
    seg = rec["tasks"]["segmentsemantic"]
    assert seg["metric"] == "valid_acc" and seg["val_metric"] == pytest.approx(94.691902)
    assert seg["zc_epe_nas"] is None and seg["params_m"] == pytest.approx(52.435793)
    assert rec["tasks"]["room_layout"]["val_metric"] < 0     # negative L2 loss


def test_archs_and_targets(transnas_table):
    archs, y = transnas_table.archs_and_targets("class_scene")
    assert len(archs) == len(y) == 711 and all(a.space == "transnas_micro" for a in archs)
    assert y.dtype == np.float64 and 10 < y.min() < y.max() < 60
    archs, y = transnas_table.archs_and_targets("class_object", space="transnas_macro")
    assert len(archs) == 662 and archs[0].space == "transnas_macro"
    archs, y = transnas_table.archs_and_targets("jigsaw", metric="zc_epe_nas")
    assert 0 < len(archs) < 711 and np.isfinite(y).all()      # -1e8 sentinels left out
    with pytest.raises(DataError, match="unknown TransNAS task 'depth'"):
        transnas_table.archs_and_targets("depth")
    with pytest.raises(DataError, match="unknown TransNAS space 'mega'"):
        transnas_table.archs_and_targets(space="mega")
    with pytest.raises(DataError, match="unknown TransNAS metric 'acc'"):
        transnas_table.archs_and_targets(metric="acc")


def test_low_fidelity_signals_are_the_tasks_zero_cost_columns(transnas_table):
    from flownas.errors import ConfigError
    from flownas.evaluators.lowfidelity import low_fidelity_signals, table_pool, zero_cost_signals
    arch = MICRO.from_string("64-41414-3_33_333")
    tasks = transnas_table.query(arch)["tasks"]
    signals = low_fidelity_signals(arch, "segmentsemantic", ["params", "naswot", "snip@jigsaw"])
    assert signals == {"params": pytest.approx(tasks["segmentsemantic"]["params_m"]),
                       "naswot": pytest.approx(tasks["segmentsemantic"]["zc_nwot"]),
                       "snip@jigsaw": pytest.approx(tasks["jigsaw"]["zc_snip"])}
    assert set(zero_cost_signals("transnas_micro")) == {"params", "flops", "naswot", "snip", "fisher", "grad_norm",
                                                        "grasp", "jacov", "l2_norm", "plain"}
    archs, columns = table_pool("transnas_micro", "class_scene", ["jacov"])
    assert len(archs) == 711 and {a.space for a in archs} == {"transnas_micro"}   # the macro records are apart
    assert 0 < sum(v is None for v in columns["jacov"]) < 711                   # a failed proxy is missing
    archs, columns = table_pool("transnas_macro", "class_scene", ["params"])
    assert len(archs) == 725 and sum(v is None for v in columns["params"]) == 725 - 662   # no class_scene record
    with pytest.raises(ConfigError, match="no dataset 'cifar10' .known: class_scene, class_object"):
        low_fidelity_signals(arch, "cifar10", ["params"])


def test_dele_pretrains_on_the_zero_cost_signals_of_the_task(transnas_table):
    from flownas.predictors.dele import DELEPredictor
    from flownas.predictors.metrics import kendall_tau
    archs, y = transnas_table.archs_and_targets("class_scene")
    perm = np.random.default_rng(0).permutation(len(archs))
    train, test = perm[:40], perm[40:]
    quick = {**DELEPredictor.quick_params, "epochs": 10, "pretrain_epochs": 3, "pool_size": 400}
    p = DELEPredictor(seed=0, dataset="class_scene", signals=["naswot", "snip", "params"], **quick)
    p.fit([archs[i] for i in train], y[train])
    assert p.signals == ("naswot", "snip", "params") and p.pretrain_size_ == 400
    assert kendall_tau(y[test], p.predict([archs[i] for i in test])) > 0.45


def test_lookup_misses_and_foreign_archs(transnas_table):
    with pytest.raises(NotInTableError, match="spaces transnas_micro, transnas_macro, not 'nb201'"):
        transnas_table.query(NB201Space().from_edge_ops(["none"] * 6))
    held = {text for kind, text in transnas_table._rows if kind == "micro"}
    missing = next(a for a in MICRO.enumerate() if MICRO.to_string(a) not in held)
    with pytest.raises(NotInTableError, match=r"transnas table has no record of 64-41414-.* \(the table holds "
                                              rf"{len(held):,} of the 4,096 micro cells\)"):
        transnas_table.query(missing)


@pytest.mark.parametrize("kind", ["micro", "macro"])
def test_network_params_match_the_table(transnas_table, kind):
    """TransNAS-Bench-101 counts encoder + linear decoder params (NASLib's create_model)."""
    space = MICRO if kind == "micro" else MACRO
    rows = [(text, tasks) for (k, text), tasks in transnas_table._rows.items() if k == kind]
    for text, tasks in rows[::150]:
        for task in TASK_OUTPUTS:
            if task in tasks:
                model = space.to_model(space.from_string(text), task=task)
                params = sum(p.numel() for p in model.parameters()) / 1e6
                assert params == pytest.approx(tasks[task]["params_m"], abs=1e-6), (text, task)


def test_network_macs_match_the_table_flops(transnas_table, count_macs):
    """The table's FLOPs (256x256 input) also count a few elementwise ops: within 3%."""
    for kind, text in (("micro", "64-41414-0_00_222"), ("macro", "64-111141-basic")):
        space = MICRO if kind == "micro" else MACRO
        flops = transnas_table._rows[kind, text]["class_scene"]["flops_m"]
        macs = count_macs(space.to_model(space.from_string(text)), (3, 256, 256)) / 1e6
        assert macs == pytest.approx(flops, rel=0.03)


@pytest.mark.parametrize("text", ["64-41414-0_00_000", "64-41414-1_11_111", "64-41414-3_21_302"])
def test_micro_network_runs_and_trains(text):
    model = MICRO.to_model(MICRO.from_string(text), task="class_object")
    out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 100) and torch.isfinite(out).all()
    out.square().mean().backward()


def test_macro_network_at_benchmark_resolution():
    model = MACRO.to_model(MACRO.from_string("64-4441-basic"), num_classes=7).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 256, 256)).shape == (1, 7)
    with pytest.raises(ValueError, match="jigsaw"):
        MACRO.to_model(MACRO.from_string("64-4441-basic"), task="jigsaw")


@pytest.mark.parametrize("text, message", [
    ("64-41414-4_00_000", "op codes are 0..3, got 4"),
    ("64-4141-0_00_000", "skeleton 64-41414, got 64-4141"),
    ("32-41414-0_00_000", "skeleton 64-41414, got 32-41414"),
    ("64-41414-000000", "not a TransNAS micro string"),
])
def test_bad_micro_strings(text, message):
    with pytest.raises(ArchitectureError, match=message):
        MICRO.parse(text)


@pytest.mark.parametrize("text, message", [
    ("64-111-basic", "3 stages; the macro skeleton has 4-6"),
    ("64-1111111-basic", "7 stages"),
    ("64-1111-basic", "0 downsampling stages"),
    ("64-3333-basic", "0 channel-doubling stages"),
    ("64-44443-basic", "5 downsampling stages"),
    ("64-22223-basic", "4 channel-doubling stages"),
    ("64-1235-basic", "stage code 5 is not one of 1, 2, 3, 4"),
    ("64-1234-bottleneck", "not a TransNAS macro string"),
    ("32-1234-basic", "64 base channels, got 32"),
])
def test_bad_macro_strings(text, message):
    with pytest.raises(ArchitectureError, match=message):
        MACRO.parse(text)


def test_macro_params_and_tampering():
    with pytest.raises(NotInSpaceError, match="depth 7 is not one of"):
        MACRO.from_params({"depth": 7, **{f"stage{i}": 1 for i in range(6)}})
    with pytest.raises(NotInSpaceError, match="0 downsampling stages"):
        MACRO.from_params({"depth": 4, **{f"stage{i}": 2 for i in range(6)}})
    a = MACRO.from_string("64-1324-basic")
    attrs = [dict(x) for x in a.attrs]
    attrs[3]["c_out"] = 128
    with pytest.raises(NotInSpaceError, match=r"layer 3 \(res_down\) has c_out=128 \(expected 64\)"):
        MACRO.validate(a.with_ops(a.ops, attrs))
    with pytest.raises(NotInSpaceError, match="transnas_macro.*belongs to space 'transnas_micro'"):
        MACRO.validate(a.with_space("transnas_micro"))
    with pytest.raises(NotInSpaceError, match="transnas_micro.*a cell has 8 nodes"):
        MICRO.validate(Architecture.from_edges(["input", "none", "output"], [(0, 1), (1, 2)], "transnas_micro"))


def test_macro_mutation_reaches_other_depths():
    rng = np.random.default_rng(0)
    a = MACRO.from_string("64-12341-basic")
    depths = {len(MACRO.codes(MACRO.mutate(a, rng))) for _ in range(60)}
    assert depths == {4, 5, 6}
