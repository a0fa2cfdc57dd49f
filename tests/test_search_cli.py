"""`flownas search`, `flownas report`, `flownas bench search` and configuration errors."""
import csv
import json
from pathlib import Path

import optuna
import pytest

from flownas.cli import main
from flownas.errors import ConfigError
from flownas.search.config import SearchConfig
from cli_run import one_line_error, run

EXPERIMENTS = sorted((Path(__file__).resolve().parents[1] / "experiments").glob("*.yaml"))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, data_root):
    out = tmp_path_factory.mktemp("runs") / "evo"
    assert main(["search", "--strategy", "evolution", "--budget", "30", "--seed", "1", "--out", str(out),
                 "--quiet"]) == 0
    return out


def test_flags_alone_run_a_search_and_leave_the_report(finished_run):
    files = {p.name for p in finished_run.iterdir()}
    assert {"run.json", "config.yaml", "ledger.db", "best.json", "history.csv", "best_so_far.png"} <= files
    with open(finished_run / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 30 and len({r["arch"] for r in rows}) == 30
    best = json.loads((finished_run / "best.json").read_text())
    assert best["value"] == max(float(r["objective"]) for r in rows)
    assert best["objective"] == "c10_valid_val_acc_200" and "c10_test_acc_200" in best["metrics"]
    assert best["string"].startswith("|")


def test_the_ledger_is_an_optuna_study(finished_run):
    run = json.loads((finished_run / "run.json").read_text())
    study = optuna.load_study(study_name=run["study"], storage=f"sqlite:///{finished_run / 'ledger.db'}")
    assert len(study.trials) == 30
    best = json.loads((finished_run / "best.json").read_text())
    assert study.best_value == best["value"]


def test_the_documented_way_out_builds_the_best_network(finished_run, capsys):
    """docs/search.md, "The result as a network", run on a finished search."""
    import torch
    doc = (Path(__file__).resolve().parents[1] / "docs" / "search.md").read_text()
    section = doc.split("### The result as a network", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(code.replace("runs/nb201-cifar10-predictor", str(finished_run)), namespace)
    best, model = namespace["best"], namespace["model"]
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(best["string"]) and len(out) == 1 + len(namespace["ledger"].records())
    assert all(line.split()[1] == "complete" for line in out[1:])
    assert max(float(line.split()[2]) for line in out[1:]) == best["value"]


def test_report_redraws_from_the_ledger(finished_run, capsys):
    for name in ("best_so_far.png", "history.csv", "best.json"):
        (finished_run / name).unlink()
    code, out, _ = run(capsys, "report", finished_run)
    assert code == 0 and "c10_valid_val_acc_200" in out and out.startswith("flownas report")
    assert "30 finished (0 failed) of a budget of 30 evaluations" in " ".join(out.replace("│", " ").split())
    assert (finished_run / "best_so_far.png").stat().st_size > 1000
    assert (finished_run / "history.csv").exists() and (finished_run / "best.json").exists()
    assert f"no run directory {finished_run.parent / 'nothing'}" in one_line_error(
        capsys, "report", finished_run.parent / "nothing")
    (finished_run.parent / "empty").mkdir()
    err = one_line_error(capsys, "report", finished_run.parent / "empty")
    assert "holds no search (no run.json" in err and "--resume" not in err


def test_running_again_into_a_run_directory_is_refused(finished_run, capsys):
    err = one_line_error(capsys, "search", "--strategy", "evolution", "--budget", "30", "--out", finished_run,
                         "--quiet")
    assert "already holds a search" in err and "--resume" in err


def test_resume_may_extend_the_budget_but_not_change_the_search(finished_run, capsys, tmp_path):
    err = one_line_error(capsys, "search", "--resume", "--out", finished_run, "--seed", "2", "--quiet")
    assert "--seed: 2 differs from the search recorded" in err
    err = one_line_error(capsys, "search", "--resume", "--out", tmp_path / "nothing", "--quiet")
    assert f"no run directory {tmp_path / 'nothing'}" in err
    err = one_line_error(capsys, "search", "--retry-failed", "--out", tmp_path / "new", "--quiet")
    assert "--retry-failed goes with --resume" in err and not (tmp_path / "new").exists()
    code, out, _ = run(capsys, "search", "--resume", "--retry-failed", "--out", finished_run, "--quiet")
    assert code == 0 and "30 replayed" in out and "ran again" not in out   # nothing failed: a plain replay
    code, out, err = run(capsys, "search", "--resume", "--out", finished_run, "--budget", "40", "--quiet")
    assert code == 0 and "40 finished (0 failed; 30 replayed" in out
    assert err == ("flownas: warning: the resumed search's budget is 40 evaluations (--budget); it was recorded "
                   "with 30 evaluations\n")   # allowed, never silent
    same = tmp_path / "same.yaml"   # the recorded search, as a file, whose budget is another: said at --check too
    same.write_text("strategy: evolution\nseed: 1\nbudget: 150\n")
    code, out, err = run(capsys, "search", same, "--resume", "--out", finished_run, "--check")
    assert code == 0 and "150 evaluations" in out
    assert "budget is 150 evaluations (the configuration file); it was recorded with 40 evaluations" in err
    code, out, err = run(capsys, "search", "--resume", "--out", finished_run, "--check")
    assert code == 0 and err == ""   # as recorded: nothing to say


def test_check_says_what_would_run_and_writes_nothing(finished_run, capsys, tmp_path):
    from flownas.search.api import Run
    code, out, _ = run(capsys, "search", "--strategy", "evolution", "--check", "--out", tmp_path / "new")
    assert code == 0 and "new search" in out and "nb201: 15,625 members" in out
    assert "\nstrategy: evolution\n" in out and not (tmp_path / "new").exists()
    finished = len(list(csv.DictReader(open(finished_run / "history.csv"))))
    code, out, _ = run(capsys, "search", "--resume", "--out", finished_run, "--budget", "500", "--check")
    assert code == 0 and f"resumes: {finished} finished (0 failed)" in out and "500 evaluations" in out
    ledger = Run.load(finished_run).open_ledger()
    try:
        assert ledger.meta["config"]["budget"]["evaluations"] != 500 and len(ledger.records()) == finished
    finally:
        ledger.close()
    assert "already holds a search" in one_line_error(capsys, "search", "--strategy", "evolution", "--check",
                                                      "--out", finished_run)
    assert "--seed: 2 differs" in one_line_error(capsys, "search", "--resume", "--out", finished_run, "--seed",
                                                 "2", "--check")


def test_a_second_driver_is_refused_while_the_search_runs(finished_run, capsys):
    import os
    from flownas.search.api import driving
    with driving(finished_run):   # as another process running this search would hold it
        err = one_line_error(capsys, "search", "--resume", "--out", finished_run, "--quiet")
        assert err == one_line_error(capsys, "search", "--resume", "--out", finished_run, "--check")
    assert f"{finished_run} is being searched by pid {os.getpid()} on " in err and "before resuming" in err
    code, _, _ = run(capsys, "search", "--resume", "--out", finished_run, "--quiet")   # released: it resumes
    assert code == 0


def test_predictor_search_plots_predicted_vs_true(tmp_path, capsys, data_root):
    out = tmp_path / "pred"
    cfg = tmp_path / "c.yaml"
    cfg.write_text("strategy: {name: predictor, num_init: 6, refit_every: 4, ensemble: 2, num_mutations: 40, "
                   "num_random: 10}\npredictor: {name: mlp, epochs: 5, hidden: 16, layers: 1}\nbudget: 14\n")
    import torch
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        code, stdout, _ = run(capsys, "search", cfg, "--out", out, "--quiet", "--threads", "1")
        assert torch.get_num_threads() == 2   # given back (the search ran on one: see the Python test below)
    finally:
        torch.set_num_threads(before)
    assert code == 0 and "+ mlp" in stdout
    assert (out / "predicted_vs_true.png").stat().st_size > 1000
    with open(out / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["origin"] for r in rows[:6]] == ["random"] * 6 and all(r["predicted"] for r in rows[6:])


@pytest.mark.parametrize("text, message", [
    ("strategy: [evolution\n", "not valid YAML at line 2"),
    ("stratgy: evolution\n", "unknown key 'stratgy' (did you mean 'strategy'?"),
    ("strategy: evolushun\n", "strategy: unknown strategy 'evolushun'; did you mean 'evolution'?"),
    ("space: nb999\n", "space: unknown space 'nb999'"),
    ("strategy: {name: evolution, population: 5}\n", "strategy.population: strategy 'evolution' takes no"),
    ("predictor: {name: gcn, epoch: 10}\n",
     "predictor.epoch: predictor 'gcn' takes no parameter 'epoch' (did you mean 'epochs'?)"),   # through **kwargs
    ("predictor: {name: flowerformer, zzz: 1}\n", "predictor.zzz: predictor 'flowerformer' takes no parameter 'zzz' "
                                                  "(known: dim, "),
    ("strategy: {name: evolution, population_size: many}\n", "strategy.population_size: expected int"),
    ("budget: {evaluations: -3}\n", "budget.evaluations must be at least 1"),
    ("seed: -1\n", "seed must be an integer >= 0"),
    ("seed: 1.5\n", "seed: expected int"),
    ("strategy: random\npredictor: mlp\n", "predictor: the strategy 'random' uses no predictor"),
    ("predictor: flowerfomer\n", "predictor: unknown predictor 'flowerfomer'"),
    ("predictor: {name: flowerformer, dim: 30, heads: 4}\n",
     "predictor: dim (30) must be divisible by heads (4)"),
    ("strategy: predictor\npredictor: {name: gbt, max_iter: 0}\n",
     "predictor: max_iter must be at least 1 (a whole number), got 0"),
    ("strategy: dele\npredictor: {name: dele, signals: [acc_13]}\n",
     "predictor.signals: unknown nb201 signals acc_13"),
    ("dataset: cifar1000\n", "has no dataset 'cifar1000'"),
    ("- just\n- a list\n", "a configuration is a mapping"),
    ("threads: 0\n", "threads must be at least 1"),
    ("threads: two\n", "threads: expected int or null"),
])
def test_bad_configs_name_the_problem(tmp_path, capsys, text, message):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    err = one_line_error(capsys, "search", cfg, "--out", tmp_path / "r", "--quiet")
    assert message in err


def test_bad_flags_and_files(tmp_path, capsys):
    assert "unknown strategy 'nope'" in one_line_error(capsys, "search", "--strategy", "nope", "--quiet")
    assert "unknown space 'nb999'" in one_line_error(capsys, "search", "--space", "nb999", "--quiet")
    assert "cannot read config" in one_line_error(capsys, "search", tmp_path / "missing.yaml")


def test_missing_data_stops_a_new_search_before_it_leaves_a_run_directory(tmp_path, capsys, monkeypatch):
    from flownas.benchmarks.base import load_benchmark
    from flownas.search import api
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("FLOWNAS_DATA", str(tmp_path / "empty"))
    monkeypatch.setattr(api, "_SUBSPACES", {})   # as in a fresh process
    load_benchmark.cache_clear()
    try:
        err = one_line_error(capsys, "search", "--strategy", "random", "--budget", "3", "--out", tmp_path / "r",
                             "--quiet")
    finally:
        load_benchmark.cache_clear()
    # so the same command, once the data is there, starts the search (no "--resume" needed)
    assert "missing benchmark table" in err and not (tmp_path / "r").exists()


def test_unreachable_storage_is_one_clear_line(tmp_path, capsys, data_root):
    err = one_line_error(capsys, "search", "--strategy", "random", "--budget", "3", "--out", tmp_path / "r",
                         "--storage", "postgresql://flownas:pw@127.0.0.1:1/ledger", "--quiet")
    assert "storage 'postgresql://flownas:***@127.0.0.1:1/ledger' cannot be opened" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.name)
def test_experiment_configs_are_valid(path):
    config = SearchConfig.load(path)
    assert config.name == path.stem and config.out == f"runs/{path.stem}"


def test_another_strategy_by_flag_drops_a_predictor_it_cannot_use():
    config = SearchConfig.load(EXPERIMENTS[0].parent / "nb201-cifar10-dele.yaml")
    assert config.with_flags(strategy="evolution").predictor is None
    assert config.with_flags(strategy="predictor").predictor == config.predictor   # one that ranks keeps it
    with pytest.raises(ConfigError, match="the strategy 'random' uses no predictor"):
        config.with_flags(strategy="random", predictor="mlp")   # asked for both: an error, as in a file


def test_flags_override_the_config(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("strategy: {name: evolution, population_size: 12}\nbudget: 50\nseed: 4\n")
    config = SearchConfig.load(cfg).with_flags(budget=9, seed=None, strategy="evolution", workers=2)
    assert config.budget.evaluations == 9 and config.seed == 4
    assert config.strategy.params == {"population_size": 12}
    assert config.executor.params == {"workers": 2}
    assert SearchConfig.load(cfg).with_flags(strategy="random").strategy.params == {}
    with pytest.raises(ConfigError, match="budget.evaluations"):
        SearchConfig.from_dict({"budget": {"evaluations": 0}})


def test_bench_search_reports_checkpoints_and_the_optimum(tmp_path, capsys, data_root):
    out = tmp_path / "bench.json"
    code, stdout, stderr = run(capsys, "bench", "search", "--strategy", "random", "--budget", "30", "--seeds", "3",
                               "--json", out)
    assert code == 0 and "after  25 evaluations" in stdout
    assert "after  30 evaluations: c10_test_acc_200" in stdout      # the budget is a checkpoint too
    assert "seed   0: c10_test_acc_200 of the incumbent after 30 evaluations" in stderr
    data = json.loads(out.read_text())
    assert data["seeds"] == [0, 1, 2] and data["optimum"]["test"] == pytest.approx(94.3733)
    assert list(data["checkpoints"]) == ["25", "30"] and data["checkpoints"]["30"]["seeds"] == 3
    assert data["checkpoints"]["30"]["mean"] == pytest.approx(sum(r["test"][29] for r in data["runs"]) / 3)
    assert len(data["runs"]) == 3 and all(len(r["test"]) == 30 for r in data["runs"])
    assert data["command"].startswith("flownas bench search --strategy random --budget 30 --seeds 3")


def test_bench_search_takes_a_seed_list_and_refuses_seed(tmp_path, capsys, data_root):
    out = tmp_path / "bench.json"
    code, stdout, stderr = run(capsys, "bench", "search", "--strategy", "random", "--budget", "5", "--seeds", "4,",
                               "--json", out)
    assert code == 0 and "1 seed, budget 5" in stdout and "seed   4:" in stderr
    data = json.loads(out.read_text())
    assert data["seeds"] == [4] and list(data["checkpoints"]) == ["5"]
    assert data["command"].endswith("--budget 5 --seeds 4,")
    code, _, stderr = run(capsys, "bench", "search", "--strategy", "random", "--budget", "5", "--seeds", "2",
                          "--first-seed", "7")
    assert code == 0 and "seed   7:" in stderr and "seed   8:" in stderr
    # --seed was read and ignored (seeds 0 and 1 ran)
    err = one_line_error(capsys, "bench", "search", "--strategy", "random", "--seeds", "2", "--seed", "7")
    assert "name them with --seeds" in err and "'7,' is seed 7 alone" in err
    err = one_line_error(capsys, "bench", "search", "--seeds", "1,2", "--first-seed", "3")
    assert "--first-seed starts a count of --seeds; --seeds 1,2 already names the seeds" in err


def test_bench_search_help_names_both_seed_forms(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "search", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "3, = seed 3 alone" in text and "a count starts at --first-seed" in text and "--seed " not in text


def test_bench_search_labels_the_reported_metric_by_name():
    from flownas.search.commands import _reported_metric
    nb101 = SearchConfig.from_dict({"space": "nb101", "strategy": "random"})
    assert _reported_metric(nb101) == "val_acc_108"           # no test column: it was labelled "test"
    assert _reported_metric(SearchConfig.from_dict({"strategy": "random"})) == "c10_test_acc_200"


def test_bench_search_keeps_the_runs_of_an_interrupted_benchmark(data_root):
    from flownas.search.bench import bench_config, bench_search, run_seed
    config = bench_config(SearchConfig.from_dict({"strategy": "random"}), 30)
    kept = {**run_seed(config, 1), "wall_s": -1.0}      # a marker: a re-run would not have it
    seen = []
    data = bench_search(config, [0, 1, 2], progress=seen.append, done=[kept, {**kept, "seed": 7}])
    assert [r["seed"] for r in seen] == [0, 2]          # seed 1 is not run again; seed 7 is not asked for
    assert [r["seed"] for r in data["runs"]] == [0, 1, 2] and data["runs"][1]["wall_s"] == -1.0
    assert data["runs"][0]["test"] == run_seed(config, 0)["test"]


def test_bench_search_overrides_strategy_and_predictor_settings():
    import importlib.util
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_search.py"
    spec = importlib.util.spec_from_file_location("bench_search_script", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    config = SearchConfig.load(Path(__file__).resolve().parents[1] / "experiments" / "nb201-cifar10-predictor.yaml")
    tuned = script.with_overrides(config, {"num_parents": 2, "predictor.epochs": 7})
    assert tuned.strategy.params["num_parents"] == 2 and tuned.predictor.params["epochs"] == 7
    assert tuned.predictor.name == config.predictor.name and tuned.predictor.params["dim"] == config.predictor.params["dim"]
    swapped = script.with_overrides(config, {"predictor": "dele", "predictor.signals": ["params", "naswot"]})
    assert swapped.predictor.name == "dele" and swapped.predictor.params == {"signals": ["params", "naswot"]}
    assert script.with_overrides(config, {}) == config


def test_name_flag_names_another_search_of_one_file(tmp_path, capsys, monkeypatch, data_root):
    """Two seeds of one configuration file into one shared ledger: --name gives the second its own
    study and run directory (the file's `out` named the first's); without it, it is refused."""
    from flownas.search.api import Run
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text("name: evo\nstrategy: evolution\nbudget: 3\nout: runs/evo\n")
    shared = ["--storage", f"sqlite:///{tmp_path / 'shared.db'}", "--quiet"]
    assert main(["search", "c.yaml", *shared]) == 0
    err = one_line_error(capsys, "search", "c.yaml", "--seed", "2", "--out", "runs/evo-2", *shared)
    assert "already holds a search named 'evo'" in err and "another --name" in err
    assert main(["search", "c.yaml", "--seed", "2", "--name", "evo-s2", *shared]) == 0
    assert Run.load(tmp_path / "runs" / "evo-s2").study == "evo-s2"
    code, out, _ = run(capsys, "search", "--resume", "--name", "evo-s2", "--check")
    assert code == 0 and "resumes: 3 finished" in out


def test_a_multi_objective_search_records_and_draws_each_objective(tmp_path, capsys, data_root):
    """Before: without a constraint the second objective had no history column and no plot."""
    import csv
    config = tmp_path / "mo.yaml"
    config.write_text('strategy: {name: optuna, objectives: ["params_m_c10:min", c10_valid_val_acc_200]}\n'
                      "budget: 12\n")   # the search objective need not come first
    out = tmp_path / "run"
    assert run(capsys, "search", config, "--out", out, "--quiet")[0] == 0
    rows = list(csv.DictReader(open(out / "history.csv")))
    assert len(rows) == 12 and all(float(r["params_m_c10"]) > 0 for r in rows)
    assert (out / "objectives.png").stat().st_size > 1000


def test_the_summary_says_which_budget_ran_out(tmp_path, capsys, data_root):
    """Before: 'stopped: budget' whichever it was."""
    config = tmp_path / "cost.yaml"
    config.write_text("strategy: evolution\nbudget: {evaluations: 500, cost_s: 3.6e4}\n")
    for flags, said in (([], "stopped: budget of 36000 s of cost"), (["--budget", "4"], "stopped: budget of 4 evaluations")):
        code, out, _ = run(capsys, "search", config, "--out", tmp_path / str(len(flags)), *flags)
        assert code == 0 and said in " ".join(out.replace("│", " ").split())


def test_the_report_leaves_a_host_programs_matplotlib_alone(finished_run):
    """Before: the report switched the backend to Agg (a notebook's inline plots stopped showing)."""
    import subprocess
    import sys
    script = ("import matplotlib, sys; matplotlib.use('svg'); from flownas.cli import main; "
              f"assert main(['report', {str(finished_run)!r}]) == 0; "
              "print(matplotlib.get_backend(), 'matplotlib.pyplot' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "svg False"


def test_a_search_from_python_gives_back_torch_threads_and_random_state(tmp_path, data_root):
    """Before: run_search left torch at one thread, and a predictor's fit reset torch's global generator."""
    import torch

    from flownas.registry import PREDICTORS
    from flownas.search.api import run_search
    from flownas.search.config import SearchConfig
    from flownas.toys import ToySpace
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        config = SearchConfig.from_dict({"strategy": {"name": "predictor", "num_init": 3, "refit_every": 3,
                                                      "ensemble": 1},
                                         "predictor": {"name": "flowerformer", "epochs": 2, "dim": 8, "layers": 1},
                                         "budget": 6, "out": str(tmp_path / "run")})
        during = []
        run_search(config, callbacks=[lambda record, loop: during.append(torch.get_num_threads())])
        assert set(during) == {1} and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    archs = list(ToySpace().enumerate())[:12]
    PREDICTORS.create("flowerformer", epochs=2, dim=8, layers=1, seed=0).fit(archs, [float(i) for i in range(12)])
    assert torch.equal(torch.rand(3), expected)
