import numpy as np
import pytest
import torch

from flownas.arch import Architecture
from flownas.errors import ArchitectureError, NotInSpaceError, NotInTableError, UnknownNameError
from flownas.spaces.fbnet import BLOCKS, LAYER_SHAPES, NUM_LAYERS, FBNetSpace

SHAPE_CHANGING = [i for i, (c_in, c_out, stride) in enumerate(LAYER_SHAPES) if c_in != c_out or stride != 1]


def test_skeleton_is_hw_nas_bench_cifar():
    assert NUM_LAYERS == 22
    assert SHAPE_CHANGING == [1, 5, 9, 13, 17, 21]
    assert [LAYER_SHAPES[i] for i in SHAPE_CHANGING] == [
        (16, 24, 1), (24, 32, 2), (32, 64, 2), (64, 112, 1), (112, 184, 2), (184, 352, 1)]
    a = FBNetSpace().from_blocks(["k3_e1_g2"] * 22)
    assert a.num_nodes == 2 + 22 + 4 and a.ops[:2] == ("input", "stem")
    assert dict(a.attrs[2]) == {"kernel": 3, "expand": 1, "groups": 2, "c_in": 16, "c_out": 16, "stride": 1}


def test_every_record_round_trips_and_is_found(fbnet_table):
    s = FBNetSpace()
    archs = fbnet_table.archs()
    assert len(archs) == len(fbnet_table) == 5000
    for arch, record in zip(archs, fbnet_table._rows.values()):
        assert s.op_idx(arch) == record["op_idx"]
        assert fbnet_table.query(arch)["i"] == record["i"]
    for record in list(fbnet_table._rows.values())[::50]:
        arch = s.from_blocks(record["op_idx"])
        assert list(s.blocks(arch)) == record["ops"]
        assert s.from_string(s.to_string(arch)).same_numbering(arch)
        assert s.from_params(s.to_params(arch)).same_numbering(arch)
    assert len(fbnet_table.devices()) == 27
    archs2, lat = fbnet_table.latencies("pixel3")
    assert len(lat) == 5000 and min(lat) > 0 and archs2[0] == archs[0]


def test_lookup_by_relabeled_graph_and_codes(fbnet_table):
    s = FBNetSpace()
    record = next(iter(fbnet_table._rows.values()))
    arch = s.from_string(str(record["op_idx"]))
    rng = np.random.default_rng(0)
    assert fbnet_table.query(arch.relabel(list(rng.permutation(arch.num_nodes))))["i"] == record["i"]
    missing = next(a for a in (s.sample(rng) for _ in range(50)) if a not in fbnet_table)
    with pytest.raises(NotInTableError, match="fbnet table has no record of k"):
        fbnet_table.query(missing)
    with pytest.raises(NotInTableError, match="fbnet"):
        fbnet_table.query(Architecture(["input", "output"], [[0, 1], [0, 0]], space="mobilenet"))
    with pytest.raises(UnknownNameError, match="no device 'pixel9'"):
        fbnet_table.latencies("pixel9")


def test_skip_is_identity_or_projection():
    s = FBNetSpace()
    model = s.to_model(s.from_blocks(["skip"] * 22))
    layers = list(model)[1:23]      # the model is stem, 22 layers, head_conv, pool, classifier
    for i, layer in enumerate(layers):
        has_weights = any(True for _ in layer.parameters())
        assert has_weights == (i in SHAPE_CHANGING), i


def test_network_runs_with_every_block():
    s = FBNetSpace()
    mixed = [BLOCKS[i % len(BLOCKS)] for i in range(NUM_LAYERS)]   # skip at layers 8 and 17 (a projection)
    model = s.to_model(s.from_blocks(mixed)).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 100) and torch.isfinite(out).all()


def test_params_of_the_extremes():
    s = FBNetSpace()
    n = {b: sum(p.numel() for p in s.to_model(s.from_blocks([b] * 22)).parameters()) for b in BLOCKS}
    assert min(n, key=n.get) == "skip" and max(n, key=n.get) == "k5_e6"
    assert n["k3_e1_g2"] < n["k3_e1"] < n["k3_e3"] < n["k3_e6"] < n["k5_e6"]
    assert sum(p.numel() for p in s.to_model(s.from_blocks(["skip"] * 22), num_classes=10).parameters()) \
        == n["skip"] - 90 * (1504 + 1)


@pytest.mark.parametrize("blocks, message", [
    (["k3_e1"] * 21, "22 layers, got 21"),
    (["k3_e1"] * 21 + [9], "layer 21: block code 9 is not in 0..8"),
    (["k7_e6"] + ["k3_e1"] * 21, "layer 0: unknown FBNet block 'k7_e6'"),
])
def test_bad_block_lists_name_the_problem(blocks, message):
    with pytest.raises(ArchitectureError, match=message):
        FBNetSpace().from_blocks(blocks)


def test_tampered_and_foreign_graphs_are_rejected():
    s = FBNetSpace()
    a = s.from_blocks(["k5_e3"] * 22)
    attrs = [dict(x) for x in a.attrs]
    attrs[3]["groups"] = 2
    with pytest.raises(NotInSpaceError, match=r"fbnet.*layer 3 \(k5_e3\) has groups=2 \(expected 1\)"):
        s.validate(a.with_ops(a.ops, attrs))
    with pytest.raises(NotInSpaceError, match="fbnet.*belongs to space 'nb201'"):
        s.validate(a.with_space("nb201"))
    with pytest.raises(ArchitectureError, match="not an FBNet block list"):
        s.parse("[1, 2")
