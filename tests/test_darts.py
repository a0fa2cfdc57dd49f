import numpy as np
import pytest
import torch

from conftest import require_data
from flownas.arch import Architecture
from flownas.benchmarks.base import read_jsonl_gz
from flownas.errors import ArchitectureError, ConfigError, NotInSpaceError, NotInTableError
from flownas.spaces.darts import NUM_EDGES, NUM_NODES, SEARCH_OPS, DartsSpace, Genotype

TABLE = "nasbench301_darts/nb301_zc_subset.jsonl.gz"


# DARTS (second order), as the DARTS repository prints it
DARTS_V2 = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
            "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
            "normal_concat=range(2, 6), reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
            "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), "
            "('max_pool_3x3', 1)], reduce_concat=range(2, 6))")


@pytest.fixture(scope="module")
def space():
    return DartsSpace()


@pytest.fixture(scope="module")
def records():
    root = require_data(TABLE)
    return list(read_jsonl_gz(root / TABLE))


def _pairs(genotype, cell):
    return [list(p) for p in getattr(genotype, cell)]


def test_genotype_round_trip_for_the_whole_table(space, records):
    for r in records:
        g = space.to_genotype(space.from_genotype(r["genotype"]))
        assert _pairs(g, "normal") == r["genotype"]["normal"]
        assert _pairs(g, "reduce") == r["genotype"]["reduce"]
        assert g.normal_concat == g.reduce_concat == [2, 3, 4, 5]


def test_representation_shape(space):
    a = space.from_string(DARTS_V2)
    assert a.num_nodes == NUM_NODES == 32 and a.num_edges == NUM_EDGES == 45
    assert a.sources() == (0,) and a.sinks() == (31,)
    assert all(i < j for i, j in a.edges)                      # from_genotype's numbering is topological
    assert a.ops.count("add") == 8 and a.ops.count("concat") == 2 and a.ops.count("sep_conv_3x3") == 5
    assert space.to_genotype(a).normal[7] == ("dil_conv_3x3", 2)


def test_swapped_inputs_and_renumbered_nodes_are_equal(space):
    g = space.to_genotype(space.from_string(DARTS_V2))
    swapped = list(g.normal)
    swapped[6], swapped[7] = swapped[7], swapped[6]            # node 5: its two inputs in the other order
    assert space.from_genotype(g._replace(normal=swapped)) == space.from_string(DARTS_V2)
    # nodes 2 and 3 of the reduction cell both read 0 and 1: exchanging them only permutes channels
    r = [("max_pool_3x3", 0), ("sep_conv_3x3", 1), ("avg_pool_3x3", 0), ("skip_connect", 1),
         ("sep_conv_5x5", 2), ("dil_conv_3x3", 3), ("max_pool_3x3", 4), ("skip_connect", 0)]
    renumbered = r[2:4] + r[0:2] + [("sep_conv_5x5", 3), ("dil_conv_3x3", 2)] + r[6:]
    assert space.from_genotype(g._replace(reduce=r)) == space.from_genotype(g._replace(reduce=renumbered))
    # but a different op, input or cell is a different architecture
    other_op = list(g.normal)
    other_op[0] = ("sep_conv_5x5", 0)
    assert space.from_genotype(g._replace(normal=other_op)) != space.from_string(DARTS_V2)
    other_input = list(g.normal)
    other_input[7] = ("dil_conv_3x3", 4)     # (node 3 = node 2: reading it would be the same cell)
    assert space.from_genotype(g._replace(normal=other_input)) != space.from_string(DARTS_V2)
    assert space.from_genotype(Genotype(g.reduce, g.normal_concat, g.normal, g.reduce_concat)) != \
        space.from_string(DARTS_V2)


def test_any_numbering_is_a_member(space):
    rng = np.random.default_rng(0)
    a = space.from_string(DARTS_V2)
    for _ in range(5):
        b = a.relabel(list(rng.permutation(a.num_nodes)))
        space.validate(b)
        assert space.from_genotype(space.to_genotype(b)) == a
        assert space.to_string(b) == space.to_string(a)
        assert space.to_params(b) == space.to_params(a)


@pytest.mark.parametrize("change, message", [
    (lambda g: g._replace(normal=g.normal[:7]), "8 .op, input. pairs, got 7"),
    (lambda g: g._replace(normal=[("sep_conv_3x3", 1)] * 8), "node 2 reads input 1 twice"),
    (lambda g: g._replace(reduce=g.reduce[:2] + [("skip_connect", 3)] + g.reduce[3:]), "node 3 reads input 3"),
    (lambda g: g._replace(normal=[("conv_7x1_1x7", 0)] + g.normal[1:]), "unknown DARTS op 'conv_7x1_1x7'"),
    (lambda g: g._replace(normal_concat=[4, 5]), r"concatenates nodes \[2, 3, 4, 5\]"),
    (lambda g: {"normal": g.normal}, "needs 'reduce'"),
])
def test_bad_genotypes_are_named(space, change, message):
    g = space.to_genotype(space.from_string(DARTS_V2))
    with pytest.raises(ArchitectureError, match=message):
        space.from_genotype(change(g))


@pytest.mark.parametrize("text", ["", "Genotype(", "genotype(normal=[])", "Genotype(normal=x)",
                                  "Genotype(normal=[], bogus=1)", "|nor_conv_3x3~0|"])
def test_bad_strings(space, text):
    with pytest.raises(ArchitectureError):
        space.from_string(text)


def test_malformed_graphs_are_rejected(space):
    a = space.from_string(DARTS_V2)
    with pytest.raises(NotInSpaceError, match="darts.*32 nodes and 45 edges"):
        space.validate(Architecture.from_edges(a.ops, a.edges + ((1, 31),), "darts"))
    # same counts: the normal cell's dil_conv (node 5, reads node 2) moved to read c_k-2,
    # which node 5's skip_connect reads already
    edges = list(a.edges)
    i = next(k for k, (u, v) in enumerate(edges) if a.ops[v] == "dil_conv_3x3")
    edges[i] = (1, edges[i][1])
    with pytest.raises(NotInSpaceError, match="darts.*node 5 reads input 0 twice"):
        space.validate(Architecture.from_edges(a.ops, edges, "darts"))
    with pytest.raises(NotInSpaceError, match="belongs to space 'nb201'"):
        space.validate(a.with_space("nb201"))


def test_none_is_in_the_vocabulary_but_not_searched(space):
    g = space.to_genotype(space.from_string(DARTS_V2))
    with_none = space.from_genotype(g._replace(normal=[("none", 0)] + list(g.normal[1:])))
    space.validate(with_none)
    assert space.from_string(space.to_string(with_none)) == with_none
    with pytest.raises(ArchitectureError, match="uses 'none'"):
        space.to_params(with_none)
    assert "none" not in SEARCH_OPS
    rng = np.random.default_rng(0)
    assert all("none" not in space.sample(rng).ops for _ in range(20))


def test_params(space):
    a = space.from_string(DARTS_V2)
    params = space.to_params(a)
    assert len(params) == len(space.param_space()) == 24
    assert params["normal_node5_inputs"] == "0,2" and params["normal_node5_op_a"] == "skip_connect"
    assert space.from_params(params) == a
    with pytest.raises(ArchitectureError, match="must be 'i,j'"):
        space.from_params({**params, "normal_node3_inputs": "01"})
    with pytest.raises(ArchitectureError, match="reads input 0 twice"):
        space.from_params({**params, "normal_node3_inputs": "0,0"})


def test_sampling_covers_inputs_and_ops(space):
    rng = np.random.default_rng(1)
    pairs = [p for _ in range(200) for p in space.to_genotype(space.sample(rng)).normal[6:8]]
    assert {i for _, i in pairs} == {0, 1, 2, 3, 4}
    assert {op for op, _ in pairs} == set(SEARCH_OPS)


def test_mutation_changes_one_op_or_one_input(space):
    rng = np.random.default_rng(2)
    a = space.from_string(DARTS_V2)
    g = space.to_genotype(a)
    kinds = set()
    for _ in range(40):
        c = space.to_genotype(space.mutate(a, rng))
        diff = [(x, y) for cell in ("normal", "reduce") for x, y in zip(getattr(g, cell), getattr(c, cell)) if x != y]
        assert len(diff) == 1
        (old, new), = diff
        kinds.add("op" if old[1] == new[1] else "input")
    assert kinds == {"op", "input"}


def test_forward_pass_and_options(space):
    a = space.from_string(DARTS_V2)
    model = space.to_model(a, C=4, layers=4, num_classes=100, auxiliary=True, drop_path_prob=0.2)
    x = torch.randn(2, 3, 32, 32)
    model.train()
    out = model(x)
    assert out.shape == (2, 100) and model.aux_logits.shape == (2, 100)
    out.sum().backward()
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (2, 100) and model.aux_logits is None
        assert model(torch.randn(1, 3, 15, 15)).shape == (1, 100)      # odd sizes
    g = space.to_genotype(a)
    with_none = space.from_genotype(g._replace(reduce=[("none", 0)] + list(g.reduce[1:])))
    with torch.no_grad():
        assert space.to_model(with_none, C=4, layers=3).eval()(x).shape == (2, 10)
    with pytest.raises(TypeError, match="unknown DARTS network options"):
        space.to_model(a, stem_channels=16)
    with pytest.raises(ConfigError, match="layers >= 3"):
        space.to_model(a, layers=2)
    with pytest.raises(ConfigError, match="drop_path_prob"):
        space.to_model(a, drop_path_prob=1.0)


def test_network_params_match_the_table(space, records):
    """NASLib's network (C=32, 8 layers, ops without BN affine) counted the table's params."""
    for r in records[::150]:
        with torch.device("meta"):
            model = space.to_model(space.from_genotype(r["genotype"]), C=32, layers=8, affine=False)
        assert sum(p.numel() for p in model.parameters()) == round(r["params_m"] * 1e6)


def test_table_lookups(space, nb301_table, records):
    r = records[17]
    g = Genotype(r["genotype"]["normal"], [2, 3, 4, 5], r["genotype"]["reduce"], [2, 3, 4, 5])
    swapped = [g.normal[1], g.normal[0]] + list(g.normal[2:])
    a = space.from_genotype(g._replace(normal=swapped))
    rec = nb301_table.query(a.relabel(list(reversed(range(a.num_nodes)))))
    assert rec["val_acc_surrogate"] == r["val_acc_surrogate"] and rec["params_m"] == r["params_m"]
    assert rec["zero_cost"]["zc_synflow"] == r["zc_synflow"]
    assert len(nb301_table) == len(nb301_table.archs()) == 1218
    with pytest.raises(NotInTableError, match=r"nb301.*Genotype\(normal="):
        nb301_table.query(space.from_string(DARTS_V2))
    with pytest.raises(NotInTableError, match="nb301"):
        nb301_table.query(Architecture(["input", "output"], [[0, 1], [0, 0]], space="darts"))
