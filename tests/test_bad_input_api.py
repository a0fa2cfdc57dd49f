"""Bad input to the Python API (architectures, spaces, predictors) gets a
flownas error that names the problem (findings F9, F15, F17, F20, F21 of the
bad-input sweep): ArchitectureError / ConfigError / DataError, which code
catching ValueError (or FileNotFoundError, for a missing file) still catches."""
from __future__ import annotations

import json

import numpy as np
import pytest

from flownas import get_space
from flownas.arch import Architecture
from flownas.errors import ArchitectureError, ConfigError, DataError, FlownasError, UnknownNameError

OPS = ["input", "conv", "output"]
CHAIN = [(0, 1), (1, 2)]


def _record(**over):
    return {"format": "flownas.architecture", "version": 1, "space": "", "ops": OPS,
            "edges": [list(e) for e in CHAIN], **over}


# -- F9: from_edges / from_dict check ops and edges as the constructor does ----------
@pytest.mark.parametrize("edges", [[(0, 1.7), (1, 2)], [(0, 1.0), (1, 2)], [("0", "1"), (1, 2)],
                                   [(False, True), (1, 2)], [(0, None), (1, 2)]])
def test_from_edges_refuses_edges_that_are_not_integer_pairs(edges):
    with pytest.raises(ArchitectureError, match=r"edge .* is not a pair of node indices"):
        Architecture.from_edges(OPS, edges)


@pytest.mark.parametrize("op", [5, "", ["x"], None])
def test_from_edges_refuses_ops_that_are_not_non_empty_strings(op):
    with pytest.raises(ArchitectureError, match="op of node 1 must be a non-empty string"):
        Architecture.from_edges(["input", op, "output"], CHAIN)
    with pytest.raises(ArchitectureError, match="op of node 1 must be a non-empty string"):
        Architecture.from_dict(_record(ops=["input", op, "output"]))


def test_from_edges_still_takes_numpy_integers_and_arrays():
    a = Architecture.from_edges(OPS, np.array(CHAIN))
    b = Architecture.from_edges(np.array(OPS), [(np.int64(0), np.int32(1)), (1, 2)])
    assert a.edges == b.edges == ((0, 1), (1, 2))
    assert all(type(i) is int for e in a.edges for i in e)


# -- F15: None or non-iterables as ops, edges, attrs, JSON text ---------------------
@pytest.mark.parametrize("field, value, message", [
    ("ops", None, "ops must be a list of op names"),
    ("ops", 5, "ops must be a list of op names"),
    ("ops", "abc", "ops must be a list of op names"),
    ("ops", [["input"], "output"], "op of node 0 must be a non-empty string"),
    ("edges", None, "edges must be a list"),
    ("edges", 5, "edges must be a list"),
    ("edges", [5], "edge 5 is not a pair"),
    ("attrs", 5, "attrs must be a list"),
])
def test_from_dict_and_from_json_refuse_wrong_types_by_name(field, value, message):
    with pytest.raises(ArchitectureError, match=message):
        Architecture.from_dict(_record(**{field: value}))
    with pytest.raises(ArchitectureError, match=message):
        Architecture.from_json(json.dumps(_record(**{field: value})))


def test_from_edges_the_constructor_and_from_json_refuse_none():
    with pytest.raises(ArchitectureError, match="ops must be a list"):
        Architecture.from_edges(None, CHAIN)
    with pytest.raises(ArchitectureError, match="edges must be a list"):
        Architecture.from_edges(OPS, None)
    with pytest.raises(ArchitectureError, match="ops must be a list"):
        Architecture(None, np.zeros((3, 3)))
    with pytest.raises(ArchitectureError, match="JSON must be text, got None"):
        Architecture.from_json(None)


def test_the_space_parse_of_a_nested_op_is_an_architecture_error():
    text = json.dumps(_record(space="nb201", ops=[["input"], "output"], edges=[[0, 1]]))
    with pytest.raises(ArchitectureError, match="op of node 0"):
        get_space("nb201").parse(text)


def test_a_valid_record_still_round_trips():
    a = Architecture.from_edges(OPS, CHAIN, "t", [{"k": 3}, {}, {"k": [1, 2]}])
    assert Architecture.from_json(a.to_json()).same_numbering(a)


# -- F20: the space API refuses wrong types with flownas errors ---------------------
@pytest.mark.parametrize("name", [None, 5, ["nb201"]])
def test_get_space_of_a_non_name(name):
    with pytest.raises(FlownasError, match="must be a name"):
        get_space(name)


def test_get_space_of_an_unknown_name_is_still_unknown_name_error():
    with pytest.raises(UnknownNameError, match="did you mean 'nb201'"):
        get_space("nb210")


@pytest.mark.parametrize("space", ["nb201", "nb101", "darts", "fbnet", "mobilenet", "transnas_micro"])
def test_space_entry_points_refuse_wrong_types(space):
    s = get_space(space)
    with pytest.raises(ArchitectureError, match="text form must be a str, got None"):
        s.from_string(None)
    with pytest.raises(ArchitectureError, match="must be a str, got int 5"):
        s.parse(5)
    with pytest.raises(ArchitectureError, match="must be a str, got bytes"):
        s.parse(b"{}")
    with pytest.raises(ArchitectureError, match="params must be a mapping"):
        s.from_params(None)
    with pytest.raises(ConfigError, match="rng must be a numpy.random.Generator"):
        s.sample("abc")
    s.sample(np.random.default_rng(0))   # the guard lets a real generator through


def test_a_user_space_gets_the_same_checks():
    from flownas.spaces.custom import cell_space
    Space = cell_space(name="tiny-guarded", ops=["conv", "pool"], num_nodes=2, register=False)
    s = Space()
    with pytest.raises(ConfigError, match="rng must be"):
        s.sample(0)
    with pytest.raises(ArchitectureError, match="must be a str"):
        s.parse(None)


# -- F17: sizes of networks -----------------------------------------------------------
@pytest.mark.parametrize("value", [-3, 0, "ten", 2.5, True])
def test_to_model_refuses_a_bad_num_classes_before_torch(value):
    s = get_space("nb201")
    arch = s.sample(np.random.default_rng(0))
    with pytest.raises(ConfigError, match=f"num_classes must be a whole number >= 1, got {value!r}"):
        s.to_model(arch, num_classes=value)


def test_nb201_to_model_refuses_negative_channels_and_depth():
    s = get_space("nb201")
    arch = s.sample(np.random.default_rng(0))
    with pytest.raises(ConfigError, match="C must be"):
        s.to_model(arch, C=-1)
    with pytest.raises(ConfigError, match="N must be"):
        s.to_model(arch, N=0)
