import itertools
import json

import numpy as np
import pytest
import torch

from conftest import require_data
from flownas.arch import Architecture
from flownas.benchmarks.base import read_jsonl_gz
from flownas.errors import ArchitectureError, ConfigError, NotInSpaceError, NotInTableError
from flownas.spaces.nb101 import (INTERIOR_OPS, NUM_CELLS, NB101Space, enumerate_cells, fingerprint,
                                  split_depends_on_order, vertex_channels)
from flownas.spaces.networks.nb101 import NB101Network

C3, C1, MP = INTERIOR_OPS
MAIN = "nasbench101/nb101_subset20k.jsonl.gz"
ZERO_COST = "nasbench101/nb101_zc_subset.jsonl.gz"



def cell(ops, edges):
    return Architecture.from_edges(ops, edges, "nb101")


@pytest.fixture(scope="module")
def records():
    root = require_data(MAIN)
    return list(read_jsonl_gz(root / MAIN))


def _brute_force_count(max_vertices, max_edges=9):
    """NB101's generate_graphs.py: hash every labelled full DAG, count distinct hashes."""
    hashes = set()
    for v in range(2, max_vertices + 1):
        pairs = [(i, j) for j in range(v) for i in range(j)]
        for bits in range(1 << len(pairs)):
            edges = [p for k, p in enumerate(pairs) if bits >> k & 1]
            if len(edges) > max_edges:
                continue
            if any(not any(e[0] == i for e in edges) for i in range(v - 1)):
                continue
            if any(not any(e[1] == j for e in edges) for j in range(1, v)):
                continue
            for labels in itertools.product(INTERIOR_OPS, repeat=v - 2):
                hashes.add(fingerprint(cell(("input",) + labels + ("output",), edges)))
    return len(hashes)


@pytest.mark.parametrize("max_vertices", [2, 3, 4, 5])
def test_enumeration_matches_nb101_generator_on_small_cells(max_vertices):
    archs = list(enumerate_cells(max_vertices=max_vertices))
    assert len(archs) == len({a.key for a in archs}) == len({fingerprint(a) for a in archs})
    assert len(archs) == _brute_force_count(max_vertices)
    space = NB101Space()
    for a in archs[::7]:
        space.validate(a)


@pytest.mark.slow
def test_enumeration_yields_the_official_count():
    space = NB101Space()
    count = 0
    for count, _ in enumerate(space.enumerate(), 1):
        pass
    assert count == space.size() == NUM_CELLS == 423_624


def test_fingerprint_reproduces_the_table_hashes(records, data_root):
    rng = np.random.default_rng(0)
    space = NB101Space()
    for i in rng.choice(len(records), 300, replace=False):
        r = records[i]
        a = space.from_spec(r["matrix"], r["ops"])
        assert fingerprint(a) == r["hash"]
        perm = list(rng.permutation(a.num_nodes))
        assert fingerprint(a.relabel(perm)) == r["hash"]          # any numbering
    for r in read_jsonl_gz(data_root / ZERO_COST):
        assert space.fingerprint(space.from_spec(r["matrix"], r["ops"])) == r["hash"]


def test_pruning_matches_modelspec():
    space = NB101Space()
    # vertex 2 has no path to the output, vertex 3 none from the input
    raw = cell(["input", C3, C1, MP, "output"], [(0, 1), (1, 4), (1, 2), (3, 4)])
    with pytest.raises(NotInSpaceError, match=r"2 \(conv1x1-bn-relu\), 3 \(maxpool3x3\).*normalize\(\) prunes"):
        space.validate(raw)
    pruned = space.normalize(raw)
    assert pruned == cell(["input", C3, "output"], [(0, 1), (1, 2)])
    space.validate(pruned)
    assert space.fingerprint(raw) == fingerprint(pruned)
    # an 8-vertex spec that prunes to 7 vertices is a member (NB101 checks limits after pruning)
    big = cell(["input"] + [C3] * 6 + ["output"], [(0, v) for v in range(1, 6)] + [(v, 7) for v in range(1, 6)] + [(6, 7)])
    assert space.normalize(big).num_nodes == 7


def test_disconnected_cell_raises():
    space = NB101Space()
    raw = cell(["input", C3, "output"], [(0, 1)])
    with pytest.raises(NotInSpaceError, match="nb101.*input.*output.*not connected"):
        space.normalize(raw)
    with pytest.raises(NotInSpaceError, match="not connected"):
        space.validate(raw)
    with pytest.raises(NotInSpaceError, match="not connected"):
        space.from_params({**{k: 0 for k in space.param_space()}, "op_1": C3, "op_2": C3,
                           "op_3": C3, "op_4": C3, "op_5": C3, "edge_0_1": 1})


def test_rules_are_named():
    space = NB101Space()
    chain8 = cell(["input"] + [C3] * 6 + ["output"], [(v, v + 1) for v in range(7)])
    with pytest.raises(NotInSpaceError, match="8 vertices.*at most 7"):
        space.validate(chain8)
    # 7 vertices, 10 edges: a chain plus 4 skips
    dense = cell(["input"] + [C3] * 5 + ["output"], [(v, v + 1) for v in range(6)] + [(0, 2), (0, 3), (0, 4), (0, 5)])
    with pytest.raises(NotInSpaceError, match="10 edges.*at most 9"):
        space.validate(dense)
    with pytest.raises(NotInSpaceError, match="unknown op 'conv5x5'"):
        space.validate(cell(["input", "conv5x5", "output"], [(0, 1), (1, 2)]))
    with pytest.raises(NotInSpaceError, match="exactly one input"):
        space.validate(cell(["input", "input", "output"], [(0, 2), (1, 2)]))
    with pytest.raises(NotInSpaceError, match="nb101.*belongs to space 'nb201'"):
        space.validate(Architecture.from_edges(["input", C3, "output"], [(0, 1), (1, 2)], "nb201"))
    with pytest.raises(ArchitectureError, match="cycle"):
        space.from_spec([[0, 1, 0], [0, 0, 1], [0, 1, 0]], ["input", C3, "output"])


def test_any_numbering_is_accepted_and_reads_the_same():
    space = NB101Space()
    rng = np.random.default_rng(3)
    for _ in range(20):
        a = space.sample(rng)
        b = a.relabel(list(rng.permutation(a.num_nodes)))
        space.validate(b)
        assert space.to_string(b) == space.to_string(a)
        assert space.to_params(b) == space.to_params(a)
        assert space.from_string(space.to_string(b)) == a


def test_spec_text_and_params():
    space = NB101Space()
    text = '{"matrix":[[0,1,1,0],[0,0,0,1],[0,0,0,1],[0,0,0,0]],"ops":["input","maxpool3x3","conv3x3-bn-relu","output"]}'
    a = space.parse(text)
    # NB101 order: same bitmask, the smaller labelling (conv3x3 = 0) first
    assert json.loads(space.to_string(a))["ops"] == ["input", C3, MP, "output"]
    params = space.to_params(a)
    assert len(params) == 21 + 5 and set(params) == set(space.param_space())
    assert space.from_params(params) == a
    with pytest.raises(ArchitectureError):
        space.parse('{"matrix": [[0, 1], [0, 0]]}')
    with pytest.raises(ArchitectureError, match="must be 0 or 1"):
        space.from_params({**params, "edge_0_1": 2})
    too_many = {**params, **{k: 1 for k in space.param_space() if k.startswith("edge_")}}
    with pytest.raises(NotInSpaceError, match="21 edges"):
        space.from_params(too_many)


def test_mutation_changes_one_member_into_another():
    space = NB101Space()
    rng = np.random.default_rng(5)
    a = space.sample(rng)
    children = {space.mutate(a, rng) for _ in range(30)}
    assert a not in children and len(children) > 5
    for c in children:
        space.validate(c)


def test_sampling_is_uniform_over_cells():
    space = NB101Space()
    rng = np.random.default_rng(0)
    sizes = [space.sample(rng).num_nodes for _ in range(2000)]
    # 359,082 of the 423,624 cells (84.8%) have 7 vertices
    assert 0.82 < sizes.count(7) / len(sizes) < 0.88
    assert len(set(sizes)) >= 3


def test_vertex_channels_follow_nb101():
    # three vertices feed the output: 128 = 43 + 43 + 42, the first ones get the remainder
    m = [[0, 1, 1, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]]
    assert vertex_channels(64, 128, m) == [64, 43, 43, 42, 128]
    # a vertex that only feeds others takes the widest of them
    m = [[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]]
    assert vertex_channels(64, 128, m) == [64, 128, 128, 128]


def test_network_params_match_the_table(records):
    """Channel splits depend on the vertex order: cells whose table order splits
    differently (and whose table-order network has other params) are built in
    NB101 order and must match."""
    space = NB101Space()
    sensitive, plain = [], []
    for r in records:
        a = space.from_spec(r["matrix"], r["ops"])
        if split_depends_on_order(a, r["matrix"]):
            sensitive.append((a, r))
        elif len(plain) < 6:
            plain.append((a, r))
        if len(sensitive) >= 6 and len(plain) >= 6:
            break
    assert len(sensitive) == 6
    with torch.device("meta"):
        in_table_order = [sum(p.numel() for p in NB101Network(r["matrix"], r["ops"]).parameters())
                          for _, r in sensitive]
        assert any(n != r["params"] for n, (_, r) in zip(in_table_order, sensitive))
        for a, r in sensitive + plain:
            assert sum(p.numel() for p in space.to_model(a).parameters()) == r["params"], r["hash"]


def test_forward_pass_small_and_default():
    space = NB101Space()
    a = space.from_spec([[0, 1, 1, 0, 1], [0, 0, 0, 1, 0], [0, 0, 0, 1, 1], [0, 0, 0, 0, 1], [0] * 5],
                        ["input", C3, MP, C1, "output"])
    model = space.to_model(a, stem_channels=16, num_classes=100).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 100)
        assert model(torch.randn(1, 3, 15, 15)).shape == (1, 100)   # odd sizes pool like TF 'same'
    only_io = space.from_spec([[0, 1], [0, 0]], ["input", "output"])
    model = space.to_model(only_io, stem_channels=8).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(TypeError, match="unknown NB101 network options"):
        space.to_model(a, C=16)
    with pytest.raises(ConfigError, match="stem_channels >= 5"):
        space.to_model(a, stem_channels=4)


def test_table_lookup_by_fingerprint(nb101_table, records):
    space = NB101Space()
    r = records[123]
    a = space.from_spec(r["matrix"], r["ops"])
    perm = list(reversed(range(a.num_nodes)))
    rec = nb101_table.query(a.relabel(perm))
    assert rec["hash"] == r["hash"] and rec["val_acc_108"] == r["val_acc_108"]
    assert len(nb101_table) == 20001
    archs = nb101_table.archs()
    assert len(archs) == 20001 and archs[123] == a


def test_table_zero_cost_section_and_missing_cells(nb101_table, data_root):
    space = NB101Space()
    zc = next(iter(read_jsonl_gz(data_root / ZERO_COST)))
    rec = nb101_table.query(space.from_spec(zc["matrix"], zc["ops"]))
    assert rec["zero_cost"]["zc_synflow"] == zc["zc_synflow"]
    missing = [a for a in enumerate_cells(max_vertices=4) if a not in nb101_table]
    assert missing
    key = fingerprint(missing[0])
    with pytest.raises(NotInTableError, match=f"nb101.*{key}"):
        nb101_table.query(missing[0])
    with pytest.raises(NotInTableError, match="nb101"):
        nb101_table.query(Architecture(["input", "output"], [[0, 1], [0, 0]], space="nb201"))


def test_a_ragged_matrix_says_its_rows_have_unequal_lengths():
    text = json.dumps({"matrix": [[0, 1, 1], [0, 0, 0, 1], [0, 0, 0]], "ops": ["input", C3, "output"]})
    with pytest.raises(ArchitectureError, match="the adjacency matrix rows have unequal lengths") as exc:
        NB101Space().parse(text)
    assert "inhomogeneous" not in str(exc.value)
