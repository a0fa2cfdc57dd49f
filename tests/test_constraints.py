"""Constrained searches: only members within the bounds are proposed, trained and recorded."""
import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from flownas.cli import main
from flownas.errors import ArchitectureError, ConfigError, NotInSpaceError
from flownas.evaluators.base import Result
from flownas.search.constraints import ConstrainedSpace, Constraint
from flownas.search.config import SearchConfig
from flownas.search.simple import RegularizedEvolution
from flownas.toys import ToyEvaluator, ToySpace

# the toy evaluator's "size" counts the ops 'c' of a cell
AT_MOST_ONE_C = Constraint("size", ToyEvaluator(), max=1)


class UnsizedToy(ToySpace):
    """The toy space as if it were infinite: constraints fall back to rejection."""

    def size(self):
        return None

    def enumerate(self):
        raise NotImplementedError("space 'toy' cannot be enumerated")


def c_count(space, arch) -> int:
    return space.base.chain(arch).count("c") if isinstance(space, ConstrainedSpace) else space.chain(arch).count("c")


@pytest.mark.parametrize("base", [ToySpace, UnsizedToy], ids=["finite", "rejection"])
def test_every_proposal_is_feasible(base):
    space = ConstrainedSpace(base(), [AT_MOST_ONE_C])
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(200)]
    archs += [space.mutate(a, rng) for a in archs]
    assert all(c_count(space, a) <= 1 for a in archs)
    assert {c_count(space, a) for a in archs} == {0, 1}   # the bound is reached, not only the easy side
    assert all(space.mutate(a, rng) != a for a in archs[:50])
    for arch in archs[:20]:
        assert all(c_count(space, n) <= 1 for n in space.neighbours(arch))


class CountingToy(ToyEvaluator):
    """The toy evaluator, counting the architectures of each evaluate_many call;
    a cell of ``nan_at`` ops 'c' has no size (NaN)."""

    def __init__(self, nan_at=None):
        super().__init__()
        self.calls, self.nan_at = [], nan_at

    def evaluate_many(self, archs, fidelity=None):
        self.calls.append(len(archs))
        results = [self.evaluate(a, fidelity) for a in archs]
        return [Result({**r.metrics, "size": float("nan")}, r.cost_s) if r.metrics["size"] == self.nan_at else r
                for r in results]


def test_a_finite_space_is_filtered_in_one_call():
    evaluator = CountingToy()
    space = ConstrainedSpace(ToySpace(), [Constraint("size", evaluator, max=1)])
    assert evaluator.calls == [80] and space.size() == 48


def test_an_evaluate_many_that_loses_results_is_named():
    class Lossy(ToyEvaluator):
        def evaluate_many(self, archs, fidelity=None):
            return super().evaluate_many(archs[1:], fidelity)
    with pytest.raises(ConfigError, match=r"size <= 1 \(Lossy\): evaluate_many gave 79 results for 80 architectures"):
        ConstrainedSpace(ToySpace(), [Constraint("size", Lossy(), max=1)])


def test_a_neighbourhood_is_filtered_in_one_call_leaving_out_what_has_no_value():
    evaluator = CountingToy(nan_at=3)
    space = ConstrainedSpace(UnsizedToy(), [Constraint("size", evaluator, max=2)])
    arch = space.from_params({"p0": "c", "p1": "c", "p2": "a", "p3": "a"})
    calls = len(evaluator.calls)
    neighbours = space.neighbours(arch)
    assert evaluator.calls[calls:] == [8]   # the 8 one-op changes, at once
    # one 'c' changed: size 1 (4 cells); an 'a' to 'b': size 2 (2 cells); an 'a' to 'c': NaN, left out
    assert sorted(c_count(space, n) for n in neighbours) == [1, 1, 1, 1, 2, 2]
    with pytest.raises(ArchitectureError, match="size of .* is nan"):
        space.values(space.base.from_params({"p0": "c", "p1": "c", "p2": "c", "p3": "a"}))


def test_a_space_too_large_to_filter_enumerates_its_feasible_members(monkeypatch):
    import flownas.search.constraints as constraints
    monkeypatch.setattr(constraints, "ENUMERABLE", 10)   # the toy's 80 members: "too many"
    space = ConstrainedSpace(ToySpace(), [AT_MOST_ONE_C])
    assert space.size() is None and space.feasible_members is None
    assert len({a.key for a in space.enumerate()}) == 48 and all(c_count(space, a) <= 1 for a in space.enumerate())


def test_a_finite_space_is_filtered_once():
    space = ConstrainedSpace(ToySpace(), [AT_MOST_ONE_C])
    members = list(space.enumerate())
    # 2^4 cells without 'c' + 4 * 2^3 with one 'c'
    assert space.size() == len(members) == 16 + 32
    assert len({a.key for a in members}) == len(members)
    assert {c_count(space, a) for a in members} == {0, 1}


def test_a_search_never_evaluates_an_infeasible_candidate():
    space = ConstrainedSpace(ToySpace(), [Constraint("size", ToyEvaluator(), min=1, max=2)])
    strategy = RegularizedEvolution(space, seed=3, population_size=8, sample_size=3)
    seen = []
    for _ in range(30):
        for arch in strategy.ask(1):
            seen.append(arch)
            strategy.tell(arch, ToyEvaluator().evaluate(arch).metrics["val"])
    assert len(seen) == 30 and all(1 <= c_count(space, a) <= 2 for a in seen)


class UniformCells(ToyEvaluator):
    """``uniform`` = 1 for the cells of one op ('aaaa', 'bbbb'), else 0."""

    def evaluate(self, arch, fidelity=None):
        return Result({"uniform": float(len(set(ToySpace().chain(arch))) == 1)}, cost_s=0.0)


def test_a_member_without_feasible_mutations_mutates_into_a_fresh_sample():
    space = ConstrainedSpace(UnsizedToy(), [Constraint("uniform", UniformCells(), min=1)])
    rng = np.random.default_rng(0)
    # every mutation of 'aaaa' changes one op: none is uniform, so the child is the other uniform cell
    assert {ToySpace().chain(space.mutate(ToySpace().make("aaaa"), rng)) for _ in range(5)} == {tuple("bbbb")}


def test_infeasible_architectures_are_refused_by_name():
    space = ConstrainedSpace(ToySpace(), [AT_MOST_ONE_C])
    bad = ToySpace().make("ccab")
    with pytest.raises(NotInSpaceError, match=r"breaks the constraint size <= 1 \(ToyEvaluator\) with size = 2"):
        space.validate(bad)
    with pytest.raises(NotInSpaceError, match="breaks the constraint"):
        space.from_params({"p0": "c", "p1": "c", "p2": "a", "p3": "b"})
    assert not space.contains(bad) and space.contains(ToySpace().make("cabb"))
    assert space.describe(bad) == {"constraints": {"size": 2.0}}


def test_constraints_nothing_satisfies_are_an_error_with_the_range():
    with pytest.raises(ConfigError, match=r"no architecture of space 'toy' satisfies size >= 5 .*"
                                          r"size ranges from 0 to 3 over 80 members"):
        ConstrainedSpace(ToySpace(), [Constraint("size", ToyEvaluator(), min=5)])
    space = ConstrainedSpace(UnsizedToy(), [Constraint("size", ToyEvaluator(), min=5)])
    with pytest.raises(ArchitectureError, match="1000 samples in a row broke the constraints"):
        space.sample(np.random.default_rng(0))


def test_bad_constraints_name_the_problem():
    with pytest.raises(ConfigError, match="give max, min or both"):
        Constraint("size", ToyEvaluator())
    with pytest.raises(ConfigError, match="min 3 is above max 1"):
        Constraint("size", ToyEvaluator(), max=1, min=3)
    for base in (ToySpace, UnsizedToy):   # found when the space is built, finite or not
        with pytest.raises(ConfigError, match=r"gives no metric 'latency_ms' \(it gives: size, test, val\)"):
            ConstrainedSpace(base(), [Constraint("latency_ms", ToyEvaluator(), max=1)])


LATENCY = "constraints:\n  - {metric: latency_ms, max: 5.0, evaluator: {name: latency_table, device: pixel3}}\n"


@pytest.mark.parametrize("text, message", [
    ("constraints: 5\n", "constraints: expected a list of mappings"),
    ("constraints: [latency]\n", "constraints[0]: expected a mapping"),
    ("constraints: [{metric: latency_ms, max: 5}]\n", "constraints[0].evaluator: required"),
    ("constraints: [{max: 5, evaluator: latency_table}]\n", "constraints[0].metric: required"),
    ("constraints: [{metric: latency_ms, evaluator: latency_table}]\n", "give max, min or both"),
    ("constraints: [{metric: latency_ms, max: fast, evaluator: latency_table}]\n",
     "constraints[0].max: expected int or float or null, got str"),
    ("constraints: [{metric: latency_ms, max: 5, under: 3, evaluator: latency_table}]\n",
     "constraints[0].under: unknown key"),
    ("constraints: [{metric: latency_ms, max: 5, evaluator: latency_tabel}]\n",
     "constraints[0].evaluator: unknown evaluator 'latency_tabel'"),
    ("constraints: [{metric: latency_ms, max: 5, evaluator: latency_table}]\n",
     "constraints[0].evaluator.device: required by evaluator 'latency_table'"),
    ("constraints: [{metric: latency_ms, max: 5, evaluator: {name: latency_table, device: pixel3, x: 1}}]\n",
     "constraints[0].evaluator.x: evaluator 'latency_table' takes no parameter 'x'"),
])
def test_bad_constraint_configs_name_the_key(text, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        SearchConfig.from_dict(__import__("yaml").safe_load(text))


def test_constraints_round_trip_through_the_recorded_config():
    config = SearchConfig.from_dict(__import__("yaml").safe_load(LATENCY))
    again = SearchConfig.from_dict(config.to_dict())
    assert again == config and again.constraints[0].max == 5.0
    assert "constraints" not in SearchConfig.from_dict({}).to_dict()   # older recorded configs stay equal


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_latency_constrained_search_end_to_end(tmp_path, capsys, data_root):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("strategy: evolution\nbudget: 20\nseed: 2\n" + LATENCY)
    out = tmp_path / "run"
    code, stdout, err = run(capsys, "search", cfg, "--out", out)
    assert code == 0, err
    assert "latency_ms <= 5 (latency_table device=pixel3)" in stdout
    rows = list(csv.DictReader(open(out / "history.csv")))
    assert len(rows) == 20 and all(float(r["latency_ms"]) <= 5.0 for r in rows)
    best = json.loads((out / "best.json").read_text())
    assert best["constraints"]["latency_ms"] <= 5.0
    assert (out / "constraints.png").stat().st_size > 0 and "constraints.png" in stdout
    # the values are the table's
    from flownas.evaluators.latency import table_latency
    from flownas.registry import get_space
    arch = get_space("nb201").parse(rows[0]["arch"])
    assert float(rows[0]["latency_ms"]) == pytest.approx(table_latency(arch, "pixel3"))
    # a resume keeps the constraint: it extends the same search
    code, _, err = run(capsys, "search", "--resume", "--out", out, "--budget", "30", "--quiet")
    assert code == 0, err
    rows = list(csv.DictReader(open(out / "history.csv")))
    assert len(rows) == 30 and all(float(r["latency_ms"]) <= 5.0 for r in rows)
    # ... and refuses a config that drops or changes it
    plain = tmp_path / "plain.yaml"
    plain.write_text("strategy: evolution\nbudget: 40\nseed: 2\n")
    code, _, err = run(capsys, "search", plain, "--resume", "--out", out, "--quiet")
    assert code == 1 and "constraints: None differs from the search recorded" in err


@pytest.mark.parametrize("text, config", [
    ("latency_ms <= 5 latency_table device=pixel3",
     {"metric": "latency_ms", "max": 5.0, "evaluator": {"name": "latency_table", "device": "pixel3"}}),
    ("latency_ms<=5 (latency_table device=pixel3)",   # as the summary prints it
     {"metric": "latency_ms", "max": 5.0, "evaluator": {"name": "latency_table", "device": "pixel3"}}),
    ("1 <= params_m_c10 <= 2 tabular", {"metric": "params_m_c10", "max": 2.0, "min": 1.0, "evaluator": "tabular"}),
    ("params >= 1e6 and params <= 3.5e+06 proxies proxies=[] objective=params",
     {"metric": "params", "max": 3.5e6, "min": 1e6, "evaluator": {"name": "proxies", "proxies": [],
                                                                   "objective": "params"}}),
])
def test_constraint_flags_read_as_the_summary_prints_them(text, config):
    from flownas.search.config import parse_constraint_flag, parse_constraints
    spec = parse_constraint_flag(text)
    assert spec == parse_constraints([config])[0]
    assert parse_constraint_flag(str(spec)) == spec   # what --check and the summary print can be pasted back


@pytest.mark.parametrize("text, message", [
    ("latency_ms <= 5", "no evaluator to compute latency_ms"),
    ("latency_ms < 5 latency_table", "expected a bound such as latency_ms <= 5"),
    ("latency_ms <= fast latency_table", "'latency_ms <= fast': expected a metric <= a number"),
    ("latency_ms <= 5 and params <= 2 tabular", "one constraint bounds one metric, not latency_ms and params"),
    ("latency_ms <= 5 and latency_ms <= 4 tabular", "two max bounds on latency_ms"),
    ("latency_ms <= 5 and tabular", "expected another bound after 'and'"),
    ("latency_ms <= 5 latency_table pixel3", "'pixel3': the evaluator's parameters are key=value"),
    ("latency_ms <= 5 latency_table device=[pixel3", "the value is not YAML"),
    ("latency_ms >= 5 and latency_ms <= 1 tabular", "min 5 is above max 1"),
    ("latency_ms <= 5 latency_table device=pixel3 device=pixel2", "'device' is given twice"),   # the last won
    ("latency_ms <= 5 (latency_table device=pixel3", "unbalanced parentheses"),                 # was read
    ("latency_ms <= 5 latency_table) device=pixel3 (", "unbalanced parentheses"),
])
def test_bad_constraint_flags_say_what_is_wrong(text, message):
    from flownas.search.config import parse_constraint_flag
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_constraint_flag(text)


def test_constraint_flags_search_as_the_configuration_does(tmp_path, capsys, data_root):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("strategy: evolution\nbudget: 12\nseed: 4\n" + LATENCY)
    flag = ["--constraint", "latency_ms <= 5 latency_table device=pixel3"]
    assert run(capsys, "search", cfg, "--out", tmp_path / "file", "--quiet")[0] == 0
    assert run(capsys, "search", "--strategy", "evolution", "--budget", "12", "--seed", "4", *flag,
               "--out", tmp_path / "flag", "--quiet")[0] == 0
    history = [[(r["arch"], r["objective"], r["latency_ms"]) for r in csv.DictReader(open(tmp_path / d / "history.csv"))]
               for d in ("file", "flag")]
    assert history[0] == history[1] and len(history[0]) == 12
    # a flag replaces the file's constraints
    code, out, err = run(capsys, "search", cfg, "--constraint", "latency_ms <= 3 latency_table device=pixel3",
                         "--out", tmp_path / "other", "--check")
    assert code == 0 and "latency_ms <= 3 (latency_table device=pixel3)" in out and "<= 5" not in out
    # resume: the same flag goes on, another is refused and changes nothing
    assert run(capsys, "search", "--resume", "--out", tmp_path / "flag", "--budget", "14", *flag, "--quiet")[0] == 0
    code, _, err = run(capsys, "search", "--resume", "--out", tmp_path / "flag", "--budget", "16", "--quiet",
                       "--constraint", "latency_ms <= 4 latency_table device=pixel3")
    assert code == 1 and "--constraint: 'latency_ms <= 4 (latency_table device=pixel3)' differs from the " \
                         "search recorded" in err and "('latency_ms <= 5 (latency_table device=pixel3)')" in err
    assert len((tmp_path / "flag" / "history.csv").read_text().splitlines()) == 1 + 14


def test_a_constraint_that_cannot_measure_the_space_says_which(tmp_path, capsys, data_root):
    experiment = Path(__file__).resolve().parents[1] / "experiments" / "nb201-cifar10-dele-pixel3.yaml"
    code, _, err = run(capsys, "search", experiment, "--space", "nb101",
                       "--strategy", "evolution", "--out", tmp_path / "run", "--quiet")
    assert code == 1 and err.count("\n") == 1
    assert "constraint latency_ms <= 5 (latency_table): no latency table records" in err
    assert not (tmp_path / "run").exists()


def test_check_counts_the_members_within_the_constraints(tmp_path, capsys, data_root):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("strategy: random\nbudget: 5\n" + LATENCY)
    code, out, err = run(capsys, "search", cfg, "--out", tmp_path / "run", "--check")
    assert code == 0, err
    assert "nb201: 3,087 of 15,625 members, those within the constraints" in out
    assert not (tmp_path / "run").exists()


def test_an_unsatisfiable_constraint_leaves_no_run_directory(tmp_path, capsys, data_root):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("strategy: random\nbudget: 5\n" + LATENCY.replace("max: 5.0", "max: 0.001"))
    code, _, err = run(capsys, "search", cfg, "--out", tmp_path / "run", "--quiet")
    assert code == 1 and err.count("\n") == 1
    assert "no architecture of space 'nb201' satisfies latency_ms <= 0.001 (latency_table)" in err
    assert "latency_ms ranges from 0.0033 to 36.7665 over 15625 members" in err
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def pixel3_latency_predictor(tmp_path_factory, fbnet_table):
    """A narformer_v2 fitted on 150 FBNet networks' Pixel 3 latencies (log ms), saved."""
    from flownas.registry import PREDICTORS
    archs, ms = fbnet_table.latencies("pixel3")
    cls = PREDICTORS.get("narformer_v2")
    model = cls(**{**cls.quick_params, "epochs": 8, "target_transform": "log", "seed": 0})
    model.fit(archs[:150], ms[:150])
    path = tmp_path_factory.mktemp("pred") / "pixel3.pt"
    model.save(path)
    return path, model, archs[150:400], np.array(ms[150:400])


def test_a_predicted_latency_bounds_a_space_no_table_covers(pixel3_latency_predictor):
    import pickle
    from flownas.registry import EVALUATORS, get_space
    path, model, held_out, ms = pixel3_latency_predictor
    evaluator = EVALUATORS.create("predicted", path=str(path), metric="latency_ms")
    values = np.array([evaluator.evaluate(a).metrics["latency_ms"] for a in held_out])
    assert values == pytest.approx(model.predict(held_out), rel=1e-5)   # the saved predictor (float32, alone)
    assert np.corrcoef(np.log(values), np.log(ms))[0, 1] > 0.7        # and it has learnt latency
    assert pickle.loads(pickle.dumps(evaluator))._model is None        # workers read the file themselves
    bound = float(np.median(values))
    space = ConstrainedSpace(get_space("fbnet"), [Constraint("latency_ms", evaluator, max=bound)])
    assert space.size() is None                                       # 10^20 members: by rejection
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(10)]
    archs += [space.mutate(a, rng) for a in archs]
    assert all(float(model.predict([a])[0]) <= bound for a in archs)
    batched = [r.metrics["latency_ms"] for r in evaluator.evaluate_many(held_out)]   # one forward pass
    assert batched == pytest.approx(values, rel=1e-5) and evaluator.evaluate_many([]) == []
    near = space.neighbours(archs[0])    # filtered in one batch
    base_near = get_space("fbnet").neighbours(archs[0])
    assert near and [a.key for a in near] == [a.key for a in base_near if float(model.predict([a])[0]) <= bound]


def test_a_missing_predictor_file_is_named(tmp_path, data_root):
    from flownas.registry import EVALUATORS
    evaluator = EVALUATORS.create("predicted", path=str(tmp_path / "none.pt"))
    with pytest.raises(ConfigError, match="no saved predictor at .*none.pt"):
        ConstrainedSpace(UnsizedToy(), [Constraint("predicted", evaluator, max=1)])
    from flownas.search.api import build
    config = SearchConfig.from_dict({"constraints": [{"metric": "latency_ms", "max": 5, "evaluator": {
        "name": "predicted", "path": "x.pt", "predictor": "narformer3"}}]})
    with pytest.raises(ConfigError, match=r"constraints\[0\].evaluator: unknown predictor 'narformer3'"):
        build(config)


def test_a_constrained_metric_can_also_be_an_objective(data_root):
    """NSGA-II trades accuracy against the latency the constraint measures."""
    from optuna.trial import TrialState
    from flownas.search.api import build
    from flownas.search.loop import Budget, SearchLoop
    from flownas.store import Ledger
    import yaml
    config = SearchConfig.from_dict(yaml.safe_load(
        "strategy: {name: optuna, objectives: [c10_valid_val_acc_200, 'latency_ms:min']}\nbudget: 24\n"
        + LATENCY.replace("max: 5.0", "max: 10.0")))
    parts = build(config)
    SearchLoop(parts.space, parts.strategy, parts.evaluator, Ledger.create(None, "mo", {}),
               budget=Budget(evaluations=24)).run()
    told = [t for t in parts.strategy._study.trials if t.state == TrialState.COMPLETE]
    assert len(told) >= 24 and all(len(t.values) == 2 and 0 < t.values[1] <= 10.0 for t in told)


def test_the_front_keeps_only_the_undominated():
    from flownas.report import pareto_front
    points = [(3.0, 80.0), (1.0, 70.0), (2.0, 60.0), (3.0, 85.0), (4.0, 84.0), (1.0, 72.0), (5.0, 90.0)]
    assert pareto_front(points) == [(1.0, 72.0), (3.0, 85.0), (5.0, 90.0)]
    assert pareto_front([]) == []


def test_the_benchmark_compares_constrained_with_filtered_searches(tmp_path, capsys, data_root, monkeypatch):
    root = Path(__file__).resolve().parents[1]
    monkeypatch.syspath_prepend(str(root / "benchmarks"))
    import bench_constrained
    out = tmp_path / "c.json"
    assert bench_constrained.main(["search", "--out", str(out), "--strategies", "random", "--seeds", "2",
                                   "--budget", "12", "--jobs", "1"]) == 0
    data = json.loads(out.read_text())
    constrained = data["summary"]["random constrained"]
    assert constrained["feasible_share_of_evaluations"] == 1.0 and constrained["seeds"] == [0, 1]
    assert data["summary"]["random unconstrained, filtered after"]["feasible_share_of_evaluations"] < 1.0
    assert all(len(r["rows"]) == 12 for r in data["runs"]) and data["constrained_optimum"]["test"] == 90.935
    capsys.readouterr()
    assert bench_constrained.main(["table", str(out)]) == 0
    assert "| random constrained (2 seeds) |" in capsys.readouterr().out


def test_fit_latency_then_search_a_space_no_table_covers(tmp_path, capsys, data_root, monkeypatch):
    """The example: a latency predictor fitted from the CLI bounds an FBNet search."""
    import yaml
    monkeypatch.chdir(tmp_path)   # the example's relative paths land here
    code, out, err = run(capsys, "fit-latency", "--table", "fbnet", "--device", "pixel3", "--out",
                         "runs/latency/fbnet-pixel3.pt", "--train-size", "120", "--epochs", "3", "--threads", "1")
    assert code == 0, err
    assert "fbnet pixel3: narformer_v2 fitted on 120 networks" in out and "MAPE" in out
    snippet = yaml.safe_load(out[out.index("constraints:"):])
    assert SearchConfig.from_dict(snippet).constraints[0].max == pytest.approx(17.71)
    example = Path(__file__).resolve().parents[1] / "examples" / "fbnet-pixel3-search.yaml"
    code, out, err = run(capsys, "search", example, "--budget", "4", "--quiet")
    assert code == 0, err
    rows = list(csv.DictReader(open(tmp_path / "runs" / "fbnet-pixel3-nwot" / "history.csv")))
    assert len(rows) == 4 and all(float(r["latency_ms"]) <= 17.71 for r in rows)
    assert "fbnet: too many members to count (within the constraints)" in run(
        capsys, "search", example, "--check", "--out", tmp_path / "other")[1]


@pytest.mark.parametrize("bound", [float("nan"), float("inf")])
def test_a_constraint_built_in_python_refuses_a_bound_that_is_not_finite(bound):
    from flownas.search.config import Component, ConstraintSpec
    with pytest.raises(ConfigError, match="max must be a finite number"):
        Constraint("latency_ms", ToyEvaluator(), max=bound)
    with pytest.raises(ConfigError, match="min must be a finite number"):
        ConstraintSpec("latency_ms", Component("latency_table", {"device": "pixel3"}), max=5.0, min=bound)
