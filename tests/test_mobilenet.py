import json

import numpy as np
import pytest
import torch

from flownas.arch import Architecture
from flownas.errors import ArchitectureError, ConfigError, NotInSpaceError, NotInTableError
from flownas.spaces.mobilenet import (DEPTHS, MAX_DEPTH, NUM_STAGES, RESOLUTIONS, MobileNetConfig,
                                      MobileNetSpace)

MAX = {"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5, "r": 224}
MIN = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 128}


def active(record):
    """The (kernel, expand) of the active slots of an OFA record, per stage."""
    return [[(record["ks"][s * MAX_DEPTH + b], record["e"][s * MAX_DEPTH + b]) for b in range(d)]
            for s, d in enumerate(record["d"])]


def test_chain_form_carries_the_layer_attributes():
    s = MobileNetSpace()
    a = s.from_record({**MAX, "d": [2, 3, 4, 2, 3]})
    assert a.num_nodes == 3 + 14 + 5 and a.num_edges == a.num_nodes - 1
    assert a.ops[:3] == ("input", "stem", "mbconv_k3_e1") and a.ops[-5:] == (
        "head_conv", "pool", "feature_mix", "classifier", "output")
    assert a.attrs[0]["resolution"] == 224
    blocks = [dict(x) for op, x in zip(a.ops, a.attrs) if op == "mbconv_k7_e6"]
    # stage widths 24/40/80/112/160, first block of a stage strided (2,2,2,1,2), SE in stages 1, 3, 4
    assert [b["c_out"] for b in blocks] == [24] * 2 + [40] * 3 + [80] * 4 + [112] * 2 + [160] * 3
    firsts = [blocks[i] for i in (0, 2, 5, 9, 11)]
    assert [b["stride"] for b in firsts] == [2, 2, 2, 1, 2]
    assert [b["se"] for b in firsts] == [False, True, False, True, True]
    assert [b["act"] for b in firsts] == ["relu", "relu", "h_swish", "h_swish", "h_swish"]
    assert all(b["stride"] == 1 for i, b in enumerate(blocks) if i not in (0, 2, 5, 9, 11))


def test_every_ofa_record_round_trips_and_is_found(ofa_table):
    s = MobileNetSpace()
    archs = ofa_table.archs()
    assert len(archs) == len(ofa_table) == 5000
    for arch, record in zip(archs, ofa_table._rows.values()):
        back = s.to_record(arch)
        assert active(back) == active(record) and back["r"] == record["r"]
        assert ofa_table.query(arch)["i"] == record["i"]
    for record in list(ofa_table._rows.values())[::50]:
        arch = s.from_record(record)
        assert s.from_record(s.to_record(arch)).same_numbering(arch)
        assert s.from_string(s.to_string(arch)).same_numbering(arch)
        assert s.from_params(s.to_params(arch)).same_numbering(arch)
    assert len(ofa_table.devices()) == 12


def test_inactive_slots_are_ignored_and_normalized():
    s = MobileNetSpace()
    rec = {**MAX, "d": [2, 2, 2, 2, 2]}
    other = {**rec, "ks": [7, 7, 3, 5] * 5, "e": [6, 6, 4, 3] * 5}
    assert s.from_record(rec) == s.from_record(other)
    params = s.to_params(s.from_record(other))
    assert params["s0_b2_kernel"] == 3 and params["s0_b3_expand"] == 3
    assert s.to_string(s.from_record(other)).count("k7e6") == 10


def test_lookup_is_isomorphism_and_normalization_aware(ofa_table):
    s = MobileNetSpace()
    record = next(r for r in ofa_table._rows.values() if min(r["d"]) < 4)
    arch = s.from_record(record)
    rng = np.random.default_rng(0)
    relabeled = arch.relabel(list(rng.permutation(arch.num_nodes)))
    assert ofa_table.query(relabeled)["latency_ms"] == record["latency_ms"]
    s_short = record["d"].index(min(record["d"]))
    slot = s_short * MAX_DEPTH + MAX_DEPTH - 1      # an inactive slot
    changed = {**record, "ks": list(record["ks"])}
    changed["ks"][slot] = 3 if record["ks"][slot] != 3 else 5
    assert ofa_table.query(s.from_record(changed))["i"] == record["i"]
    assert s.parse(json.dumps({k: changed[k] for k in ("ks", "e", "d", "r")})) == arch


def test_lookup_misses_and_foreign_archs(ofa_table):
    s = MobileNetSpace()
    rng = np.random.default_rng(3)
    missing = next(a for a in (s.sample(rng) for _ in range(100)) if a not in ofa_table)
    with pytest.raises(NotInTableError, match="ofa table has no record of r"):
        ofa_table.query(missing)
    with pytest.raises(NotInTableError, match="ofa"):
        ofa_table.query(Architecture(["input", "output"], [[0, 1], [0, 0]], space="nb201"))


@pytest.mark.parametrize("size", [224, 64, 32])
def test_network_runs_at_224_and_small_resolutions(size):
    s = MobileNetSpace()
    model = s.to_model(s.from_record(MAX)).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, size, size))
    assert out.shape == (1, 1000) and torch.isfinite(out).all()


def test_network_classes_option_and_training_step():
    s = MobileNetSpace()
    model = s.to_model(s.sample(np.random.default_rng(1)), num_classes=10)
    loss = model(torch.randn(2, 3, 64, 64)).logsumexp(1).mean()
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    with pytest.raises(TypeError, match="width"):
        s.to_model(s.from_record(MIN), width=2)


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def test_params_and_macs_of_the_extremes(count_macs):
    s = MobileNetSpace()
    big, small = s.to_model(s.from_record(MAX)), s.to_model(s.from_record(MIN))
    assert 7.6e6 < n_params(big) < 7.7e6      # OFA's largest subnet (d=4, e=6, k=7)
    assert 3.3e6 < n_params(small) < 3.5e6
    assert count_macs(small, (3, 128, 128)) < count_macs(big, (3, 224, 224))


def test_layer_builders_reproduce_torchvision_mobilenet_v3_large(count_macs):
    """MobileNetV3-Large through our layers: torchvision publishes 5,483,032 params
    (``MobileNet_V3_Large_Weights.IMAGENET1K_V1``; its 960->1280 layer is a Linear
    with 1,280 biases where OFA's feature_mix conv has none) and 0.217 GMACs."""
    from flownas.spaces.networks.mobilenet import MobileNetV3Network
    # (kernel, mid channels, c_out, SE, activation, stride) of torchvision's bneck table
    bneck = [(3, 16, 16, False, "relu", 1), (3, 64, 24, False, "relu", 2), (3, 72, 24, False, "relu", 1),
             (5, 72, 40, True, "relu", 2), (5, 120, 40, True, "relu", 1), (5, 120, 40, True, "relu", 1),
             (3, 240, 80, False, "h_swish", 2), (3, 200, 80, False, "h_swish", 1),
             (3, 184, 80, False, "h_swish", 1), (3, 184, 80, False, "h_swish", 1),
             (3, 480, 112, True, "h_swish", 1), (3, 672, 112, True, "h_swish", 1),
             (5, 672, 160, True, "h_swish", 2), (5, 960, 160, True, "h_swish", 1),
             (5, 960, 160, True, "h_swish", 1)]
    layers = [("stem", {"kernel": 3, "c_in": 3, "c_out": 16, "stride": 2, "act": "h_swish"})]
    c = 16
    for k, mid, c_out, se, act, stride in bneck:
        layers.append((f"mbconv_k{k}", {"kernel": k, "expand": mid / c, "c_in": c, "c_out": c_out,
                                  "stride": stride, "act": act, "se": se}))
        c = c_out
    layers += [("head_conv", {"kernel": 1, "c_in": 160, "c_out": 960, "stride": 1, "act": "h_swish"}),
               ("pool", {}), ("feature_mix", {"c_in": 960, "c_out": 1280, "act": "h_swish"}),
               ("classifier", {"c_in": 1280})]
    model = MobileNetV3Network(layers)
    assert n_params(model) == 5_483_032 - 1280
    assert count_macs(model, (3, 224, 224)) / 1e9 == pytest.approx(0.217, abs=0.0015)


def test_mutation_changes_exactly_one_choice():
    s = MobileNetSpace()
    rng = np.random.default_rng(5)
    for _ in range(30):
        a = s.sample(rng)
        (stages, r), (stages2, r2) = s.config(a), s.config(s.mutate(a, rng))
        changes = (r != r2) + sum(len(x) != len(y) for x, y in zip(stages, stages2)) + sum(
            p != q for x, y in zip(stages, stages2) if len(x) == len(y) for p, q in zip(x, y)
            for p, q in [(p[0], q[0]), (p[1], q[1])])
        assert changes == 1


def test_resolutions_can_be_restricted():
    s = MobileNetSpace(resolutions=[224])
    rng = np.random.default_rng(0)
    assert {s.config(s.sample(rng)).resolution for _ in range(10)} == {224}
    assert s.param_space()["resolution"] == (224,)
    assert MobileNetSpace().size() == sum(9 ** d for d in DEPTHS) ** NUM_STAGES * len(RESOLUTIONS)
    with pytest.raises(NotInSpaceError, match="resolution 160 is not one of 224..224"):
        s.from_record({**MAX, "r": 160})
    with pytest.raises(ConfigError, match="resolutions must be"):
        MobileNetSpace(resolutions=[16])


@pytest.mark.parametrize("record, message", [
    ({**MAX, "d": [4, 4, 5, 4, 4]}, r"d\[2\] = 5: depth must be one of \(2, 3, 4\)"),
    ({**MAX, "ks": [4] + [7] * 19}, r"stage 0 block 0: kernel 4 is not one of \(3, 5, 7\)"),
    ({**MAX, "e": [6] * 19 + [2]}, r"stage 4 block 3: expand ratio 2 is not one of \(3, 4, 6\)"),
    ({**MAX, "r": 225}, "resolution 225 is not one of 128..224"),
    ({**MAX, "ks": [7] * 19}, "has 20 ks, 20 e and 5 d values, got 19, 20 and 5"),
    ({"ks": [7] * 20, "e": [6] * 20}, "'d' is missing"),
])
def test_bad_records_name_the_problem(record, message):
    with pytest.raises(ArchitectureError, match=message):
        MobileNetSpace().from_record(record)


@pytest.mark.parametrize("text, message", [
    ("r224:k3e4", "stage"),
    ("224:k3e3,k3e3|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3", "not a mobilenet string"),
    ("r224:k3e3,k3x3|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3", "not a mobilenet string"),
    ("r224:k3e3,k3e3,k3e3,k3e3,k3e3|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3|k3e3,k3e3", "stage 0 has 5 blocks"),
    ('{"ks": [7]}', "needs ks, e and d"),
])
def test_bad_strings_name_the_problem(text, message):
    with pytest.raises(ArchitectureError, match=message):
        MobileNetSpace().parse(text)


def test_tampered_graphs_are_rejected_naming_the_layer():
    s = MobileNetSpace()
    a = s.from_record(MAX)
    attrs = [dict(x) for x in a.attrs]
    attrs[5]["stride"] = 2
    with pytest.raises(NotInSpaceError, match=r"mobilenet.*layer 5 \(mbconv_k7_e6\) has stride=2 \(expected 1\)"):
        s.validate(a.with_ops(a.ops, attrs))
    ops = list(a.ops)
    ops[4] = "mbconv_k4_e6"
    with pytest.raises(NotInSpaceError, match="unknown op 'mbconv_k4_e6'"):
        s.validate(a.with_ops(ops, a.attrs))
    forked = Architecture.from_edges(a.ops, list(a.edges) + [(2, 4)], "mobilenet", a.attrs)
    with pytest.raises(NotInSpaceError, match="not a chain"):
        s.validate(forked)
    with pytest.raises(NotInSpaceError, match="mobilenet.*belongs to space 'fbnet'"):
        s.validate(a.with_space("fbnet"))


def test_cli_lookup_accepts_an_ofa_record(ofa_table, capsys):
    from flownas.cli import main
    record = next(iter(ofa_table._rows.values()))
    text = json.dumps({k: record[k] for k in ("ks", "e", "d", "r")})
    assert main(["lookup", "mobilenet", text, "--compact"]) == 0
    assert json.loads(capsys.readouterr().out)["latency_ms"] == record["latency_ms"]


def test_config_is_the_choices():
    s = MobileNetSpace()
    config = MobileNetConfig(tuple(((3, 4), (5, 6)) for _ in range(NUM_STAGES)), 192)
    assert s.config(s.from_config(config)) == config
    assert s.to_string(s.from_config(config)) == "r192:" + "|".join(["k3e4,k5e6"] * 5)


# -- walkthrough X11: a resolution (or any choice) written as a float ------------------------
def test_whole_floats_are_stored_as_ints_and_other_floats_refused():
    s = MobileNetSpace()
    a = s.from_record({**MAX, "r": 204})
    b = s.from_record({**MAX, "r": 204.0, "ks": [7.0] * 20, "d": [4.0] * 5})
    assert a == b and a.key == b.key and hash(a) == hash(b) and len({a, b}) == 1
    assert a.same_numbering(b) and s.to_string(b) == s.to_string(a) == s.to_string(s.parse(s.to_string(b)))
    assert type(s.to_record(b)["r"]) is int
    assert s.parse(json.dumps({**MAX, "r": 204.0})) == a
    for bad, message in [({"r": 204.5}, "resolution must be a whole number, got 204.5"),
                         ({"r": "204"}, "resolution must be a whole number"),
                         ({"r": True}, "resolution must be a whole number, got True"),
                         ({"d": [2.5] * 5}, r"d\[0\] must be a whole number, got 2.5"),
                         ({"ks": [7.5] * 20}, "kernel must be a whole number, got 7.5")]:
        with pytest.raises(ArchitectureError, match=message):
            s.from_record({**MAX, **bad})


def test_a_flownas_record_with_a_float_attribute_is_not_a_member():
    # Python calls it equal to the member, but its key differs: validate must refuse it, naming the layer
    s = MobileNetSpace()
    record = s.from_record({**MAX, "r": 204}).to_dict()
    record["attrs"][0]["resolution"] = 204.0
    with pytest.raises(NotInSpaceError, match=r"layer 0 \(input\) has resolution=204.0 \(expected 204\)"):
        s.parse(json.dumps(record))


def test_an_ofa_record_given_as_text_has_only_its_keys():
    with pytest.raises(ArchitectureError, match="an OFA record has the keys ks, e, d and r .*not 'extra'"):
        MobileNetSpace().parse(json.dumps({**MAX, "extra": 1}))
