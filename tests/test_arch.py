import json
import pickle

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flownas.arch import Architecture
from flownas.errors import ArchitectureError

OPS = ("a", "b", "c")


@st.composite
def dags(draw, max_nodes=9, labelled=OPS):
    n = draw(st.integers(1, max_nodes))
    ops = draw(st.lists(st.sampled_from(labelled), min_size=n, max_size=n))
    bits = draw(st.lists(st.booleans(), min_size=n * n, max_size=n * n))
    adj = np.triu(np.array(bits, dtype=int).reshape(n, n), 1)
    return Architecture(ops, adj, space="t")


@given(dags(), st.randoms(use_true_random=False))
@settings(max_examples=300, deadline=None)
def test_relabeling_keeps_key_and_equality(arch, rnd):
    perm = list(range(arch.num_nodes))
    rnd.shuffle(perm)
    other = arch.relabel(perm)
    assert other.key == arch.key
    assert other == arch and hash(other) == hash(arch)
    assert other.canonical().same_numbering(arch.canonical())


@given(dags(max_nodes=7), dags(max_nodes=7))
@settings(max_examples=400, deadline=None)
def test_key_equal_exactly_for_isomorphic_graphs(a, b):
    iso = nx.is_isomorphic(a.to_networkx(), b.to_networkx(), node_match=lambda x, y: x["op"] == y["op"])
    assert (a.key == b.key) == iso


@given(dags())
@settings(max_examples=100, deadline=None)
def test_canonical_form_is_topological_and_isomorphic(arch):
    canon = arch.canonical()
    assert all(i < j for i, j in canon.edges)          # upper-triangular
    assert canon == arch


def test_symmetric_graphs_are_fast_and_exact():
    # 12 interchangeable parallel branches: twins are pruned, not enumerated
    ops = ["input"] + ["conv"] * 12 + ["output"]
    adj = np.zeros((14, 14), int)
    adj[0, 1:13] = 1
    adj[1:13, 13] = 1
    a = Architecture(ops, adj)
    assert a.relabel(list(range(13, -1, -1))).key == a.key


def test_different_labels_or_spaces_differ():
    a = Architecture(["input", "x", "output"], [[0, 1, 0], [0, 0, 1], [0, 0, 0]], space="s")
    assert a.with_ops(["input", "y", "output"]) != a
    assert a.with_space("other") != a
    attrs = a.with_ops(a.ops, attrs=[{}, {"k": 3}, {}])
    assert attrs != a and attrs == a.with_ops(a.ops, attrs=[{}, {"k": 3}, {}])


@given(dags())
@settings(max_examples=100, deadline=None)
def test_json_networkx_pickle_round_trips_are_lossless(arch):
    for back in (Architecture.from_json(arch.to_json()),
                 Architecture.from_networkx(arch.to_networkx()),
                 pickle.loads(pickle.dumps(arch))):
        assert back.same_numbering(arch) or back == arch
    assert Architecture.from_json(arch.to_json()).same_numbering(arch)


def test_json_keeps_attrs_and_is_versioned():
    a = Architecture(["in", "conv", "out"], [[0, 1, 0], [0, 0, 1], [0, 0, 0]], space="m",
                     attrs=[{}, {"kernel": 3, "channels": [16, 32], "se": True}, {}])
    d = json.loads(a.to_json())
    assert d["format"] == "flownas.architecture" and d["version"] == 1
    assert Architecture.from_json(a.to_json()).same_numbering(a)
    d["version"] = 99
    with pytest.raises(ArchitectureError, match="version 99"):
        Architecture.from_dict(d)


def test_from_networkx_orders_topologically_with_named_nodes():
    g = nx.DiGraph()
    g.add_node("out", op="output")
    g.add_node("conv", op="conv3x3", channels=16)
    g.add_node("inp", op="input")
    g.add_edges_from([("inp", "conv"), ("conv", "out")])
    a = Architecture.from_networkx(g, space="s")
    assert a.ops == ("input", "conv3x3", "output")
    assert a.attrs[1]["channels"] == 16


def test_generations_depths_and_reachability():
    #   0 -> 1 -> 3, 0 -> 2 -> 3, 0 -> 3
    a = Architecture(["i", "x", "y", "o"], [[0, 1, 1, 1], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]])
    assert a.generations() == [(0,), (1, 2), (3,)]
    assert a.reverse_depths().tolist() == [2, 1, 1, 0]
    r = a.reachability()
    assert r[0, 3] and r[1, 3] and not r[1, 2] and not r[3, 0] and not r.diagonal().any()


@pytest.mark.parametrize("ops, adj, message", [
    ([], [], "at least one node"),
    (["a", "b"], [[0, 1], [1, 0]], "cycle: 0\\(a\\) -> 1\\(b\\) -> 0\\(a\\)"),
    (["a", "b"], [[0, 1, 0], [0, 0, 0]], "must be 2x2"),
    (["a", "b"], [[0, 2], [0, 0]], "0 or 1"),
    (["a", "b"], [[1, 0], [0, 0]], "self-loop on node 0"),
    (["a", ""], [[0, 1], [0, 0]], "non-empty string"),
    (["a", "b"], [[0, 1], [0]], "not a matrix|must be 2x2"),
])
def test_malformed_architectures_raise_named_errors(ops, adj, message):
    with pytest.raises(ArchitectureError, match=message):
        Architecture(ops, adj)


def test_bad_records_and_attrs_raise():
    with pytest.raises(ArchitectureError, match="not a flownas architecture"):
        Architecture.from_dict({"ops": ["a"], "edges": []})
    with pytest.raises(ArchitectureError, match="does not parse"):
        Architecture.from_json("{nope")
    with pytest.raises(ArchitectureError, match="outside 0..1"):
        Architecture.from_edges(["a", "b"], [(0, 5)])
    with pytest.raises(ArchitectureError, match="finite"):
        Architecture(["a"], [[0]], attrs=[{"w": float("nan")}])
    with pytest.raises(ArchitectureError, match="one mapping per node"):
        Architecture(["a"], [[0]], attrs=[{}, {}])


def test_immutable():
    a = Architecture(["a"], [[0]])
    with pytest.raises(AttributeError):
        a.ops = ("b",)
    with pytest.raises(ValueError):
        a.adjacency[0, 0] = 1


# -- walkthrough X6, X11, X14: deep JSON, equality and key, ragged rows, foreign records --
DEEP_OBJECT = '{"a":' * 20000 + "1" + "}" * 20000
DEEP_LIST = "[" * 20000 + "]" * 20000


@pytest.mark.parametrize("text", [DEEP_OBJECT, DEEP_LIST])
def test_json_nested_too_deeply_is_an_architecture_error(text):
    with pytest.raises(ArchitectureError, match="the architecture JSON is nested too deeply"):
        Architecture.from_json(text)


@pytest.mark.parametrize("a_value, b_value", [(204, 204.0), (1, True), (0.0, -0.0), ([1, 2], [1.0, 2])])
def test_equality_agrees_with_key_for_attributes_python_calls_equal(a_value, b_value):
    # Python has 204 == 204.0, but their JSON (the key) differs: == must follow the key, as the hash does
    a = Architecture.from_edges(["input", "output"], [(0, 1)], "t", [{"r": a_value}, {}])
    b = Architecture.from_edges(["input", "output"], [(0, 1)], "t", [{"r": b_value}, {}])
    assert (a == b) == (a.key == b.key) == (hash(a) == hash(b))
    assert len({a, b}) == (1 if a == b else 2)
    assert not a.same_numbering(b) or a.key == b.key
    same = Architecture.from_edges(["input", "output"], [(0, 1)], "t", [{"r": a_value}, {}])
    assert a == same and a.same_numbering(same)


def test_a_ragged_adjacency_names_the_rows():
    with pytest.raises(ArchitectureError, match=r"the adjacency matrix rows have unequal lengths \(3, 4, 3\)") as exc:
        Architecture(["input", "conv", "output"], [[0, 1, 1], [0, 0, 0, 1], [0, 0, 0]])
    assert "inhomogeneous" not in str(exc.value)


def test_a_json_object_without_format_says_what_a_record_is():
    with pytest.raises(ArchitectureError, match=r'it has no "format": "flownas.architecture" \(its keys: \'normal\'\)'):
        Architecture.from_json('{"normal": 5}')
    with pytest.raises(ArchitectureError, match=r"format='x', expected 'flownas.architecture'"):
        Architecture.from_json('{"format": "x"}')
