"""Bad input that reaches the evaluation: an evaluator that could never give a
result stops the search at once (at start, or at its first candidate, which
stays RUNNING for a resume) instead of burning the budget; a search whose every
evaluation failed is an error; Optuna objectives that the evaluator does not
give are refused; Ctrl-C with a process pool leaves one message, not one
traceback per worker."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from flownas.errors import ConfigError
from flownas.evaluators.base import Result
from flownas.registry import EVALUATORS, STRATEGIES, get_space
from flownas.runtime.local import ProcessExecutor
from flownas.search.loop import Budget, SearchAborted, SearchLoop
from flownas.store import Ledger, storage_url
from cli_run import one_line_error
from flownas.toys import ToyEvaluator, ToySpace

TESTS = Path(__file__).resolve().parent


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def toy_loop(evaluator, ledger=None, name="random", budget=6, executor=None, **params):
    space = ToySpace()
    return SearchLoop(space, STRATEGIES.get(name)(space, seed=0, **params), evaluator,
                      ledger or Ledger.create(None, "t", {}), budget=Budget(budget), executor=executor)


class ConfigBroken(ToyEvaluator):
    """Fails every candidate with a ConfigError (a device it has not, a file it cannot read)."""

    def evaluate(self, arch, fidelity=None):
        raise ConfigError("training option device='cuda': torch sees no CUDA device on this machine")


class AlwaysFails(ToyEvaluator):
    def evaluate(self, arch, fidelity=None):
        raise RuntimeError(f"training of {''.join(ToySpace().chain(arch))} diverged")


# -- F4 (a): a misconfigured evaluator is refused before anything runs --------
@pytest.mark.parametrize("evaluator, wrong", [
    ("{name: tabular, objective: c10_valid_val_acc_2000}",
     "objective 'c10_valid_val_acc_2000' is not a column of the nb201 table (did you mean 'c10_valid_val_acc_200'?"),
    ("{name: tabular, objective: c10_test_acc_200, test_metric: nope}",
     "test_metric 'nope' is not a column of the nb201 table"),
])
def test_a_column_the_table_lacks_is_refused_by_check_and_search(tmp_path, capsys, data_root, evaluator, wrong):
    config = write(tmp_path / "bad.yaml", f"""\
        space: nb201
        strategy: {{name: evolution}}
        evaluator: {evaluator}
        budget: 6
        """)
    out = tmp_path / "run"
    assert wrong in one_line_error(capsys, "search", config, "--out", out, "--check")
    assert wrong in one_line_error(capsys, "search", config, "--out", out, "--quiet")
    assert not out.exists()   # refused before the run directory is made


def test_a_table_of_another_space_stops_the_search_before_any_candidate(data_root):
    from flownas.benchmarks.base import table_path
    try:
        table_path("nasbench101/nb101_subset20k.jsonl.gz")
    except Exception:
        pytest.skip("no NB101 table")
    space = get_space("nb201")
    ledger = Ledger.create(None, "t", {})
    loop = SearchLoop(space, STRATEGIES.get("random")(space, seed=0), EVALUATORS.create("tabular", benchmark="nb101"),
                      ledger, budget=Budget(6))
    with pytest.raises(ConfigError, match="the nb101 table holds architectures of space 'nb101', not of the "
                                          "searched space 'nb201'"):
        loop.run()
    assert ledger.records() == []   # nothing dispatched, nothing failed


def test_the_nb201_table_on_space_nb101_stops_a_cli_search_before_any_candidate(tmp_path, capsys, data_root):
    """Before: the space was restricted to the table's NB201 cells, which were searched as NB101
    members, and the report failed at the end."""
    config = write(tmp_path / "s.yaml", """\
        space: nb101
        strategy: {name: evolution}
        evaluator: {name: tabular, benchmark: nb201}
        budget: 6
        """)
    out = tmp_path / "run"
    err = one_line_error(capsys, "search", config, "--out", out, "--quiet")
    assert "the nb201 table holds architectures of space 'nb201', not of the searched space 'nb101'" in err
    assert not out.exists()   # refused when the search is built: no run directory to clear away


def test_a_missing_or_broken_predictor_file_stops_the_search_before_any_candidate(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a predictor at all")
    for path, message in ((tmp_path / "none.pt", "no saved predictor at .*none.pt"),
                          (garbage, "garbage.pt: not a saved flownas predictor")):
        ledger = Ledger.create(None, "t", {})
        evaluator = EVALUATORS.create("predicted", path=str(path), metric="x")
        with pytest.raises(ConfigError, match=f"predicted: .*{message}"):
            toy_loop(evaluator, ledger).run()
        assert ledger.records() == []


def test_a_cuda_device_this_machine_lacks_is_refused_when_the_evaluator_is_made():
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    for name in ("training", "latency"):
        with pytest.raises(ConfigError, match="device='cuda': torch sees no CUDA device on this machine "
                                              r"\(device: auto takes a GPU"):
            EVALUATORS.create(name, device="cuda")
    EVALUATORS.create("training", device="auto")   # auto and cpu always work
    with pytest.raises(ConfigError, match="must be auto, cpu, cuda or cuda:N"):
        EVALUATORS.create("latency", device="tpu")


def test_a_cuda_device_is_refused_by_check(tmp_path, capsys, data_root):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    config = write(tmp_path / "cuda.yaml", """\
        space: nb201
        strategy: {name: evolution}
        evaluator: {name: training, dataset: cifar10-mini, epochs: 1, max_train_images: 128, device: cuda}
        budget: 6
        """)
    err = one_line_error(capsys, "search", config, "--out", tmp_path / "run", "--check")
    assert "evaluator: training option device='cuda': torch sees no CUDA device" in err


# -- F4 (b): a ConfigError while evaluating stops the search ------------------
@pytest.mark.parametrize("workers", [1, 2])
def test_a_config_error_while_evaluating_stops_the_search_and_the_candidate_runs_again(tmp_path, workers):
    ledger = Ledger.create(storage_url(tmp_path / "l.db"), "t", {})
    executor = ProcessExecutor(workers) if workers > 1 else None
    with pytest.raises(ConfigError, match="torch sees no CUDA device"):
        toy_loop(ConfigBroken(), ledger, budget=10, executor=executor).run()
    records = ledger.records()
    assert records and not any(r.finished for r in records)   # RUNNING, not the candidates' failures
    # the cause fixed, the resume runs them and the rest
    result = toy_loop(ToyEvaluator(), ledger, budget=10).run()
    assert len(result.records) == 10 and result.failures == 0
    assert all(r.state == "complete" for r in ledger.records())


def test_a_low_fidelity_table_of_another_space_stops_a_cli_search_before_any_candidate(tmp_path, capsys, data_root):
    """Before: every candidate failed with the same ConfigError, 6 of 6, and the search exited 0."""
    config = write(tmp_path / "s.yaml", """\
        space: nb101
        strategy: {name: evolution}
        evaluator: {name: low_fidelity}
        budget: 6
        """)
    out = tmp_path / "run"
    err = one_line_error(capsys, "search", config, "--out", out, "--quiet")
    assert "this LowFidelityTable serves space 'nb201', not the searched space 'nb101' (give it space: nb101)" in err
    assert not out.exists()   # refused when the search is built: no run directory to clear away


# -- F4 (c): a search in which every evaluation failed is an error ------------
def test_a_search_whose_every_evaluation_failed_is_an_error():
    ledger = Ledger.create(None, "t", {})
    with pytest.raises(SearchAborted, match=r"all 6 evaluations failed, none completed; the first: "
                                            r"RuntimeError: training of \w+ diverged \(after fixing the cause, "
                                            r"--resume --retry-failed runs them again\)"):
        toy_loop(AlwaysFails(), ledger, budget=6).run()
    assert [r.state for r in ledger.records()] == ["failed"] * 6   # recorded all the same


def test_one_success_among_failures_is_a_search():
    class MostlyFails(ToyEvaluator):
        calls = 0

        def evaluate(self, arch, fidelity=None):
            self.calls += 1   # in this process (inline executor)
            if self.calls != 3:
                raise RuntimeError("diverged")
            return super().evaluate(arch, fidelity)
    result = toy_loop(MostlyFails(), budget=6).run()
    assert result.best is not None and result.failures == 5


# -- F5: Optuna objectives that the evaluator does not give --------------------
def test_optuna_objectives_the_table_lacks_are_refused_before_any_candidate(tmp_path, capsys, data_root):
    config = write(tmp_path / "o.yaml", """\
        space: nb201
        strategy: {name: optuna, objectives: [nope, "x:max"]}
        budget: 10
        """)
    out = tmp_path / "run"
    err = one_line_error(capsys, "search", config, "--out", out, "--quiet")
    assert "strategy.objectives: the evaluator gives no metric 'nope' (it gives: " in err
    assert "c10_valid_val_acc_200" in err and "params_m_c10" in err
    assert not out.exists()   # refused when the search is built: no run directory to clear away


def test_optuna_objectives_are_checked_against_the_first_result_of_any_evaluator():
    ledger = Ledger.create(None, "t", {})
    with pytest.raises(ConfigError, match=r"strategy.objectives: the evaluator gives no metric 'nope' "
                                          r"\(it gives: size, test, val\)"):
        toy_loop(ToyEvaluator(), ledger, name="optuna", budget=10, objectives=["val", "nope:min"]).run()
    assert len(ledger.records()) == 1   # the first result, recorded; nothing more dispatched
    # the right names search as before
    result = toy_loop(ToyEvaluator(), name="optuna", budget=10, objectives=["val", "size:min"]).run()
    assert len(result.records) == 10 and result.failures == 0


def test_a_listed_metric_missing_from_one_result_is_that_candidates_failure_for_the_sampler():
    """NB201's naswot_score is missing in 341 cells: a candidate without it is no configuration error."""
    from optuna.trial import TrialState

    class Sparse(ToyEvaluator):
        def metric_names(self):
            return {"val", "test", "size"}

        def evaluate(self, arch, fidelity=None):
            result = super().evaluate(arch, fidelity)
            ops = ToySpace().chain(arch)
            metrics = {k: v for k, v in result.metrics.items() if not (k == "size" and ops[0] == "a")}
            return Result(metrics, result.cost_s)

    loop = toy_loop(Sparse(), name="optuna", budget=30, objectives=["val", "size:min"])
    result = loop.run()
    assert len(result.records) == 30 and result.failures == 0
    states = [t.state for t in loop.strategy._study.trials]
    assert TrialState.FAIL in states and TrialState.COMPLETE in states


# -- F18: Ctrl-C with a process pool ---------------------------------------------
DRIVER = """\
import os, signal, sys, time
# as in a terminal: a job a script starts in the background inherits SIGINT ignored
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.path.insert(0, {tests!r})
from flownas.toys import ToyEvaluator, ToySpace

MARKS = {marks!r}
BUSY = sys.argv[1] == "busy"


class Marked(ToyEvaluator):
    def evaluate(self, arch, fidelity=None):
        open(os.path.join(MARKS, str(os.getpid())), "w").close()   # this worker's pid
        if BUSY:
            time.sleep(120)
        return super().evaluate(arch, fidelity)


def driver_busy(record, loop):   # the driver refits a predictor, say, while the workers wait for work
    if not BUSY and len(loop.finished) == 4:
        open(os.path.join(MARKS, "driver"), "w").close()
        time.sleep(120)


if __name__ == "__main__":
    from flownas.registry import STRATEGIES
    from flownas.runtime.local import ProcessExecutor
    from flownas.search.loop import Budget, SearchLoop
    from flownas.store import Ledger, storage_url
    ledger = Ledger.create(storage_url({db!r}), "t", {{}})
    loop = SearchLoop(ToySpace(), STRATEGIES.get("random")(ToySpace(), seed=0), Marked(), ledger,
                      executor=ProcessExecutor(2), budget=Budget(10), callbacks=[driver_busy])
    try:
        loop.run()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
"""


def running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize("workers_are", ["idle", "busy"])
def test_ctrl_c_with_a_process_pool_stops_the_workers_quietly_and_resumes(tmp_path, workers_are):
    """Ctrl-C signals the whole process group: idle workers printed a KeyboardInterrupt
    traceback each; busy ones (which now ignore it) must be ended by the driver."""
    marks = tmp_path / "marks"
    marks.mkdir()
    db = tmp_path / "l.db"
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(tests=str(TESTS), marks=str(marks), db=str(db)))
    proc = subprocess.Popen([sys.executable, str(script), workers_are], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True, cwd=tmp_path)   # a terminal's group
    ready = (lambda: len(list(marks.iterdir())) >= 2) if workers_are == "busy" else \
        (lambda: (marks / "driver").exists())
    try:
        deadline = time.monotonic() + 120
        while not ready():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the search never got there"
            time.sleep(0.2)
        time.sleep(1.0)                        # idle: the workers wait for work by now
        os.killpg(proc.pid, signal.SIGINT)     # what Ctrl-C does: the driver and every worker
        _, err = proc.communicate(timeout=60)  # busy workers sleep 120 s: they are ended, not waited for
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    err = err.decode()
    assert proc.returncode == 130 and err == "interrupted\n", err   # no traceback from any worker
    for pid in [int(p.name) for p in marks.iterdir() if p.name.isdigit()]:   # no worker left running
        assert not running(pid)
    ledger = Ledger.open(storage_url(db), "t")
    states = [r.state for r in ledger.records()]
    assert "running" in states or workers_are == "idle"
    result = toy_loop(ToyEvaluator(), ledger, budget=10).run()   # the resume runs what was left, then the rest
    assert len(result.records) == 10 and result.failures == 0
    assert all(r.state == "complete" for r in ledger.records())


def test_ctrl_c_after_the_command_finished_is_ignored_while_python_shuts_down(tmp_path):
    """A Ctrl-C landing after the summary (in the interpreter's finalizers)
    printed "Exception ignored in ... KeyboardInterrupt": the program ignores
    SIGINT once its work is done and recorded. ``main`` itself (tests call it
    in-process) leaves the handler alone."""
    script = tmp_path / "after.py"
    script.write_text(textwrap.dedent("""\
        import os, signal, sys, time
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from flownas.cli import command, main
        assert main(["spaces"]) == 0
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        code = command(["spaces"])
        os.kill(os.getpid(), signal.SIGINT)   # Ctrl-C, just after the summary
        time.sleep(0.5)
        print("finished", code, file=sys.stderr)
        """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stderr.strip() == "finished 0", proc.stderr


def test_a_latency_table_evaluator_is_checked_against_the_space(data_root):
    """A device typo, or a space no latency table covers, stops the search before its first candidate."""
    from flownas.evaluators.latency import TableLatencyEvaluator
    with pytest.raises(ConfigError, match=r"^latency_table: the nb201 table has no latency device 'pixel_3' \(known: "):
        TableLatencyEvaluator("pixel_3").check(get_space("nb201"))
    with pytest.raises(ConfigError, match="no latency table covers space 'transnas_micro'"):
        TableLatencyEvaluator("pixel3").check(get_space("transnas_micro"))
    TableLatencyEvaluator("pixel3").check(get_space("nb201"))


def test_the_proxies_objective_defaults_to_a_proxy_it_computes():
    proxies = EVALUATORS.get("proxies")
    assert proxies().objective == "synflow" and proxies(proxies=["nwot"]).objective == "nwot"
    assert proxies(proxies=[]).objective == "params"
    with pytest.raises(ConfigError, match="objective 'snip' is not computed .* or add it to proxies"):
        proxies(proxies=["nwot"], objective="snip")


def test_a_dataset_typo_or_a_bad_model_option_is_refused_by_check_and_search(tmp_path, capsys, data_root):
    """Before: the search started, and stopped at its first candidate (the dataset) or failed every
    candidate (an unknown network option)."""
    cases = (("dataset: cifar10-mnii", "evaluator.dataset: dataset cifar10-mnii does not exist (give a path, "
                                       "or one of the shared names: cifar10-mini)"),
             ("dataset: cifar10-mini, model_options: {C: 4, N: 1, widht: 2}",
              "evaluator.model_options: cannot build a nb201 network: unknown NB201 network options: widht"))
    for options, message in cases:
        config = write(tmp_path / "train.yaml", f"""\
            space: nb201
            strategy: random
            evaluator: {{name: training, epochs: 1, {options}}}
            budget: 2
            """)
        out = tmp_path / "run"
        for flags in (["--check"], []):
            err = one_line_error(capsys, "search", config, "--out", out, "--quiet", *flags)
            assert message in err
            assert not out.exists()


def test_the_dataset_of_a_ray_cluster_is_looked_for_on_its_workers_not_here(monkeypatch, tmp_path):
    """A cluster's nodes have their own disks: the driver does not need the dataset."""
    import flownas.runtime.ray as ray_executor
    from flownas.search.api import build
    from flownas.search.config import SearchConfig
    monkeypatch.setattr(ray_executor, "_unreachable", lambda address: None)   # no cluster needed to build
    evaluator = {"name": "training", "dataset": str(tmp_path / "only-on-the-workers.npz"), "epochs": 1}

    def config(executor):
        return SearchConfig.from_dict({"space": "nb201", "strategy": "random", "budget": 2,
                                       "evaluator": evaluator, "executor": executor})
    assert not build(config({"name": "ray", "address": "10.0.0.1:6379"})).executor.on_this_machine
    with pytest.raises(ConfigError, match="evaluator.dataset: dataset .*only-on-the-workers.npz does not exist"):
        build(config({"name": "ray"}))   # an instance of its own runs here


def test_an_evaluator_of_a_notebook_is_refused_for_worker_processes_before_the_search():
    """Before: each worker failed to unpickle it, and every candidate ended as 'WorkerLost: its worker process
    died ...' after three runs each. (python -c stands for a notebook: a __main__ without a file.)"""
    script = textwrap.dedent("""\
        from flownas.errors import ConfigError
        from flownas.runtime.base import evaluate
        from flownas.runtime.local import InlineExecutor, ProcessExecutor
        from flownas.toys import ToyEvaluator, ToySpace

        class Mine(ToyEvaluator):
            pass

        def my_scale(x):
            return x

        arch = next(ToySpace().enumerate())
        holder = ToyEvaluator()
        holder.scale = my_scale   # a notebook function inside a module's evaluator: found by its pickle
        try:
            ProcessExecutor(2).check_sendable(holder)
        except ConfigError as exc:
            print(str(exc).split(" is defined")[0])
        InlineExecutor().check_sendable(Mine())   # one worker: this process
        for attempt in (lambda ex: ex.check_sendable(Mine()), lambda ex: ex.submit(evaluate, Mine(), arch)):
            try:
                attempt(ProcessExecutor(2))
            except ConfigError as exc:
                print(exc)
        ProcessExecutor(2).check_sendable(ToyEvaluator())   # from a module: fine
        """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "my_scale"
    assert lines[1:] == ["Mine is defined in an interactive session (a notebook): worker processes cannot import it; "
                         "define it in a module file and import it from there, or search with one worker"] * 2
