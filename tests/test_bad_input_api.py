"""Bad input to the Python API (architectures, spaces, predictors) gets a
flownas error that names the problem (findings F9, F15, F17, F20, F21 of the
bad-input sweep): ArchitectureError / ConfigError / DataError, which code
catching ValueError (or FileNotFoundError, for a missing file) still catches."""
from __future__ import annotations

import json
import re

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
    with pytest.raises(ConfigError, match=re.escape(f"num_classes must be at least 1 (a whole number), got {value!r}")):
        s.to_model(arch, num_classes=value)


def test_nb201_to_model_refuses_negative_channels_and_depth():
    s = get_space("nb201")
    arch = s.sample(np.random.default_rng(0))
    with pytest.raises(ConfigError, match="C must be"):
        s.to_model(arch, C=-1)
    with pytest.raises(ConfigError, match="N must be"):
        s.to_model(arch, N=0)


# -- predictors ------------------------------------------------------------------------
from flownas.registry import PREDICTORS  # noqa: E402

NEURAL_SIZES = [("mlp", "hidden"), ("mlp", "layers"), ("gcn", "dim"), ("flowerformer", "heads"),
                ("gcn", "epochs"), ("gcn", "batch_size"), ("narformer_v2", "groups"), ("tagates", "op_dim"),
                ("dele", "pretrain_epochs"), ("gbt", "ensemble"), ("blend", "ensemble")]


@pytest.fixture(scope="module")
def cells():
    space = get_space("nb201")
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(12)]
    return archs, np.linspace(0.0, 1.0, len(archs))


# F17: sizes are refused by name before torch sees them
@pytest.mark.parametrize("name, param", NEURAL_SIZES)
@pytest.mark.parametrize("value", [-5, 0])
def test_a_negative_or_zero_size_is_a_config_error_naming_it(name, param, value):
    with pytest.raises(ConfigError, match=rf"^{param} must be at least 1 \(a whole number\), got {value}$"):
        PREDICTORS.create(name, **{param: value})


@pytest.mark.parametrize("name, params, message", [
    ("mlp", {"hidden": 2.5}, "hidden must be at least 1 (a whole number), got 2.5"),
    ("mlp", {"hidden": True}, "hidden must be at least 1 (a whole number), got True"),
    ("tagates", {"dims": (32, -1)}, "dims must be positive whole numbers (each at least 1), got (32, -1)"),
    ("flowerformer", {"head_hidden": -1}, "head_hidden must be at least 0 (a whole number), got -1"),
    ("gcn", {"patience": -2}, "patience must be at least 1 (a whole number), got -2"),
    ("gcn", {"lr": "fast"}, "lr must be a number, got str 'fast'"),
])
def test_sizes_of_the_wrong_type_are_named(name, params, message):
    with pytest.raises(ConfigError) as info:
        PREDICTORS.create(name, **params)
    assert str(info.value) == message


def test_zero_sized_heads_and_none_patience_stay_allowed():
    p = PREDICTORS.create("flowerformer", head_hidden=0, patience=None, epochs="auto", **{"dim": 16, "heads": 2})
    assert p.head_hidden == 0


# F20: the predictor API raises flownas errors, and the old exception types still catch them
@pytest.mark.parametrize("name", ["mlp", "gbt"])
@pytest.mark.parametrize("ensemble", ["3", 2.0, 0])
def test_a_wrong_ensemble_is_refused_at_construction(name, ensemble):
    with pytest.raises(ConfigError, match=f"ensemble must be at least 1 .*got {ensemble!r}"):
        PREDICTORS.create(name, ensemble=ensemble)


@pytest.mark.parametrize("name", ["gcn", "gbt", "blend"])
def test_unknown_hyper_parameters_are_a_config_error(name):
    with pytest.raises(ConfigError, match="unknown hyper-parameters: foo"):
        PREDICTORS.create(name, foo=1)
    with pytest.raises(TypeError):   # as Python's own for an unexpected keyword
        PREDICTORS.create(name, foo=1)


def test_bad_training_data_is_a_flownas_error(cells):
    archs, y = cells
    p = PREDICTORS.create("gbt", max_iter=5)
    with pytest.raises(ArchitectureError, match="no architectures given"):
        p.fit([], [])
    with pytest.raises(ConfigError, match="targets must be finite: 12 are NaN"):
        p.fit(archs, [float("nan")] * len(archs))
    with pytest.raises(ConfigError, match="targets: expected 12 values"):
        p.fit(archs, y[:5])
    with pytest.raises(ConfigError, match="targets must be a list of numbers, got NoneType"):
        p.fit(archs, None)
    with pytest.raises(ArchitectureError, match="expected a list of Architectures, got NoneType"):
        p.fit(None, y)
    with pytest.raises(ArchitectureError, match="not an Architecture"):
        p.fit(["|none~0|"] * 12, y)
    p.fit(archs, y)
    with pytest.raises(ArchitectureError, match="no architectures given"):
        p.predict([])


@pytest.mark.parametrize("name", ["gcn", "gbt", "blend"])
def test_loading_a_missing_file_or_a_directory_is_a_data_error(name, tmp_path):
    cls = PREDICTORS.get(name)
    with pytest.raises(DataError, match="no such file"):
        cls.load(tmp_path / "nonexistent.pt")
    with pytest.raises(FileNotFoundError):   # DataError is one: old callers keep working
        cls.load(tmp_path / "nonexistent.pt")
    with pytest.raises(DataError, match="a directory, not a saved flownas predictor"):
        cls.load(tmp_path)


# F21: a garbage predictor file: one line, no torch essay
@pytest.mark.parametrize("name", ["gcn", "narformer_v2", "gbt", "blend"])
@pytest.mark.parametrize("content", ["random", "zip", "pickle"])
def test_a_garbage_predictor_file_is_one_line(name, content, tmp_path):
    import pickle
    import zipfile
    path = tmp_path / "garbage.pt"
    if content == "random":
        path.write_bytes(np.random.default_rng(0).bytes(2000))
    elif content == "zip":
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("archive/data.pkl", np.random.default_rng(0).bytes(300))
    else:
        path.write_bytes(pickle.dumps({"format": "other"}))
    with pytest.raises(DataError) as info:
        PREDICTORS.get(name).load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: not a saved flownas ")
    assert "\n" not in message and "weights_only" not in message and "Could this error" not in message
    assert len(message) < len(str(path)) + 200


def test_a_torch_file_with_other_content_is_refused_in_one_line(tmp_path):
    import torch
    path = tmp_path / "other.pt"
    torch.save({"format": "flownas.predictor", "version": 1}, path)   # a record lacking its parts
    with pytest.raises(DataError, match=r"a damaged flownas predictor file \('predictor'\)"):
        PREDICTORS.get("gcn").load(path)
    torch.save(torch.nn.Linear(2, 2), path)   # a pickled module: weights_only refuses its globals
    with pytest.raises(DataError) as info:
        PREDICTORS.get("gcn").load(path)
    assert "\n" not in str(info.value) and "not a saved flownas predictor" in str(info.value)


def test_a_saved_predictor_still_loads(cells, tmp_path):
    archs, y = cells
    for name, params in (("gcn", {"epochs": 2, "dim": 8, "layers": 1}), ("gbt", {"max_iter": 5})):
        p = PREDICTORS.create(name, **params).fit(archs, y)
        p.save(tmp_path / name)
        np.testing.assert_allclose(type(p).load(tmp_path / name).predict(archs), p.predict(archs))


@pytest.mark.parametrize("params, message", [
    ({"beta": float("nan")}, "beta must be a finite number >= 0, got nan"),
    ({"beta": -1.0}, "beta must be a finite number >= 0, got -1.0"),
    ({"num_mutations": -1}, "num_mutations must be at least 0, got -1"),
    ({"num_random": -5}, "num_random must be at least 0, got -5"),
])
def test_guided_strategies_refuse_a_nan_or_negative_setting_from_python(params, message):
    from flownas.errors import ConfigError
    from flownas.registry import STRATEGIES, get_space
    from flownas.toys import RidgePredictor
    for name in ("predictor", "predictor-evolution") if "beta" in params else ("predictor",):
        with pytest.raises(ConfigError, match=re.escape(message)):
            STRATEGIES.create(name, space=get_space("nb201"), seed=0, predictor=RidgePredictor(), **params)


def test_a_strategy_takes_a_space_by_name_and_refuses_a_value_that_is_not_finite():
    from flownas.errors import ConfigError
    from flownas.registry import STRATEGIES, get_space
    strategy = STRATEGIES.create("evolution", space="nb201", seed=0)
    assert strategy.space.name == "nb201" and len(strategy.ask(2)) == 2
    with pytest.raises(ConfigError, match="space: expected a SearchSpace or a registered space's name, got int"):
        STRATEGIES.create("evolution", space=5, seed=0)
    arch = get_space("nb201").sample(np.random.default_rng(0))
    with pytest.raises(ConfigError, match="the value must be a finite number, or None for a failure; got nan"):
        strategy.tell(arch, float("nan"))
    strategy.tell(arch, None)   # a failure is still told as None


@pytest.mark.parametrize("seed", [-1, "abc", 1.5])
def test_a_bad_seed_is_a_config_error_naming_it(seed):
    from flownas.errors import ConfigError
    from flownas.registry import STRATEGIES
    with pytest.raises(ConfigError, match=re.escape(f"seed: expected a non-negative whole number (or None), got {seed!r}")):
        STRATEGIES.create("evolution", space="nb201", seed=seed)


def test_every_error_class_the_docs_name_is_in_flownas_errors():
    """docs/predictors.md: bad input raises a flownas.errors exception."""
    import flownas.errors as errors
    from flownas.predictors.base import UnknownParameterError
    from flownas.predictors.neural import NotFittedError
    assert errors.UnknownParameterError is UnknownParameterError and errors.NotFittedError is NotFittedError
    assert issubclass(errors.UnknownParameterError, (errors.ConfigError, TypeError))
    assert issubclass(errors.NotFittedError, errors.FlownasError) and issubclass(errors.NotAnArchitectureError, TypeError)


# -- walkthrough X6: architecture JSON nested too deeply, in every space's parser ----------
DEEP_TEXTS = ['{"a":' * 20000 + "1" + "}" * 20000, "[" * 20000 + "]" * 20000,
              "Genotype(normal=" + "-" * 20000 + "1)", "Genotype(normal=" + "+".join(["1"] * 100000) + ")"]


@pytest.mark.parametrize("space", ["nb201", "nb101", "darts", "fbnet", "mobilenet", "transnas_micro",
                                   "transnas_macro"])
@pytest.mark.parametrize("text", DEEP_TEXTS, ids=["object", "list", "unary", "sum"])
def test_deeply_nested_text_is_an_architecture_error(space, text):
    with pytest.raises(ArchitectureError) as exc:
        get_space(space).parse(text)
    assert len(str(exc.value)) < 400   # the text is quoted cut short


@pytest.mark.parametrize("space, text", [("nb101", "[" * 20000 + "]" * 20000),
                                         ("fbnet", "[" * 20000 + "]" * 20000),
                                         ("mobilenet", '{"a":' * 20000 + "1" + "}" * 20000),
                                         ("nb101", '{"a":' * 20000 + "1" + "}" * 20000),
                                         ("nb201", '{"a":' * 20000 + "1" + "}" * 20000),
                                         ("darts", "Genotype(normal=" + "-" * 20000 + "1)")])
def test_the_spaces_own_json_forms_say_nested_too_deeply(space, text):
    with pytest.raises(ArchitectureError, match="nested too deeply"):
        get_space(space).parse(text)


# -- walkthrough X14: what the space and architecture errors say -----------------------
def test_darts_names_the_part_of_a_genotype_that_is_not_a_literal():
    with pytest.raises(ArchitectureError, match=r"\"__import__\('os'\).system\('id'\)\" is not a literal") as exc:
        get_space("darts").parse("Genotype(normal=__import__('os').system('id'))")
    assert "<ast." not in str(exc.value)
    with pytest.raises(ArchitectureError, match=r"'f\(1\)' is not a literal"):
        get_space("darts").parse("Genotype(normal=[('sep_conv_3x3', f(1))])")
    for concat in ("range('a')", "range(10**12)", "range(0, 10000)"):   # no traceback, no huge list
        with pytest.raises(ArchitectureError, match="not a DARTS genotype"):
            get_space("darts").parse(f"Genotype(normal=[], normal_concat={concat})")


@pytest.mark.parametrize("space, text", [("darts", '{"normal": 5}'),
                                         ("nb201", '{"matrix": [[0, 1], [0, 0]], "ops": ["input", "output"]}')])
def test_a_json_object_that_is_no_form_of_the_space_says_what_was_expected(space, text):
    with pytest.raises(ArchitectureError, match=rf"space '{space}' reads flownas JSON \(an object with "
                                                r'"format": "flownas.architecture".* or its own text form') as exc:
        get_space(space).parse(text)
    assert "format=None" not in str(exc.value)


@pytest.mark.parametrize("space", ["nb201", "nb101", "darts", "fbnet", "mobilenet", "transnas_micro",
                                   "transnas_macro"])
def test_methods_taking_an_architecture_refuse_none_alike(space):
    s = get_space(space)
    for method in (s.to_params, s.to_string, s.validate):
        with pytest.raises(ArchitectureError, match="expected an Architecture, got NoneType"):
            method(None)


@pytest.mark.parametrize("space", ["nb201", "nb101", "darts", "fbnet", "mobilenet", "transnas_micro",
                                   "transnas_macro"])
def test_from_params_refuses_an_unknown_parameter_naming_it(space):
    s = get_space(space)
    params = s.to_params(s.sample(np.random.default_rng(0)))
    assert s.from_params(params) == s.sample(np.random.default_rng(0))
    first = next(iter(s.param_space()))
    with pytest.raises(ArchitectureError, match=rf"space '{space}' has no parameter 'extra' \(its parameters: "
                                                rf"{re.escape(first)}, "):
        s.from_params({**params, "extra": 1})
    typo = first + "x"
    with pytest.raises(ArchitectureError, match=rf"did you mean {re.escape(repr(first))}"):
        s.from_params({**params, typo: params[first]})
