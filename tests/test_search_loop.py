"""The search loop: dispatch, budgets, failures, asynchronous workers, and
resume by replaying the ledger (in process; tests/test_search_resume.py
kills real processes)."""
import inspect
import signal
import warnings

import numpy as np
import optuna
import pytest

from flownas.errors import DataError
from flownas.evaluators.base import Evaluator, Result
from flownas.registry import STRATEGIES
from flownas.runtime.local import InlineExecutor, ProcessExecutor
from flownas.search.loop import Budget, SearchAborted, SearchLoop
from flownas.store import Ledger, Record, storage_url
from flownas.toys import RidgePredictor, ToyEvaluator, ToySpace, optimum


def strategy(name="evolution", seed=0, **params):
    if "predictor" in inspect.signature(STRATEGIES.get(name).__init__).parameters:
        params.setdefault("predictor", RidgePredictor())
    return STRATEGIES.get(name)(ToySpace(), seed=seed, **params)


def loop(ledger=None, name="evolution", evaluator=None, budget=Budget(30), seed=0, executor=None, **kw):
    return SearchLoop(ToySpace(), strategy(name, seed, **kw.pop("params", {})), evaluator or ToyEvaluator(),
                      ledger or Ledger.create(None, "t", {}), budget=budget, executor=executor, **kw)


def outcome(result):
    return [(r.arch.key, r.value, r.done) for r in result.records]


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_budget_of_evaluations_and_no_duplicates(name):
    result = loop(name=name, budget=Budget(25)).run()
    keys = [r.arch.key for r in result.records]
    assert len(keys) == 25 and len(set(keys)) == 25 and result.stopped == "budget"
    assert [r.done for r in result.records] == list(range(25))


def test_budget_of_cost_stops_dispatching_once_spent():
    result = loop(budget=Budget(evaluations=None, cost_s=100.0)).run()
    costs = [r.cost_s for r in result.records]
    assert sum(costs[:-1]) < 100.0 <= sum(costs)


def test_a_small_space_runs_out():
    result = loop(name="random", budget=Budget(500)).run()
    assert result.stopped == "exhausted" and len(result.records) == ToySpace().size()
    assert result.best.value == optimum()


def test_failures_are_recorded_and_the_search_goes_on():
    ledger = Ledger.create(None, "t", {})
    result = loop(ledger, name="random", evaluator=ToyEvaluator(fail="abab"), budget=Budget(80)).run()
    failed = [r for r in ledger.records() if r.state == "failed"]
    assert len(failed) == 1 and failed[0].error == "RuntimeError: training of abab diverged"
    assert result.failures == 1 and len(result.records) == 80


class Broken(Evaluator):
    objective = "val"

    def __init__(self, exc):
        self.exc = exc

    def evaluate(self, arch, fidelity=None):
        raise self.exc


def test_failing_every_time_aborts():
    with pytest.raises(SearchAborted, match="5 evaluations failed in a row; the last: ValueError: nan loss"):
        loop(evaluator=Broken(ValueError("nan loss")), max_consecutive_failures=5).run()


def test_missing_data_stops_at_once_and_leaves_the_candidate_to_rerun():
    ledger = Ledger.create(None, "t", {})
    with pytest.raises(DataError):
        loop(ledger, evaluator=Broken(DataError("missing benchmark table x"))).run()
    (rec,) = ledger.records()
    assert not rec.finished


class NoObjective(Evaluator):
    objective = "val"

    def evaluate(self, arch, fidelity=None):
        return Result({"other": 1.0}, 1.0)


def test_a_result_without_the_objective_is_a_failure():
    ledger = Ledger.create(None, "t", {})
    with pytest.raises(SearchAborted, match="all 3 evaluations failed"):   # none completed: the search says so
        loop(ledger, evaluator=NoObjective(), budget=Budget(3)).run()
    assert {r.error for r in ledger.records()} == {"ValueError: the result has no finite objective 'val'"}


def test_process_pool_keeps_workers_busy_and_records_everything(tmp_path):
    ledger = Ledger.create(storage_url(tmp_path / "l.db"), "t", {})
    result = loop(ledger, name="random", budget=Budget(12), executor=ProcessExecutor(2)).run()
    records = ledger.records()
    assert len(records) == 12 and all(r.finished for r in records)
    assert len({r.arch.key for r in records}) == 12 and len(result.records) == 12


@pytest.mark.parametrize("name", ["evolution", "predictor", "optuna"])
def test_a_resumed_search_ends_exactly_as_an_uninterrupted_one(name, tmp_path):
    params = {"num_init": 5, "refit_every": 4, "num_mutations": 30, "num_random": 5} if name == "predictor" else {}
    reference = loop(name=name, budget=Budget(40), params=params).run()

    url = storage_url(tmp_path / "l.db")
    log = tmp_path / "evaluations.log"
    ledger = Ledger.create(url, "t", {})
    for stop_after in (7, 19, 30):   # "kill" the search three times
        def kill(record, lp, n=stop_after):
            if len(lp.finished) == n:
                raise KeyboardInterrupt
        with pytest.raises(KeyboardInterrupt):
            loop(ledger, name=name, evaluator=ToyEvaluator(log=str(log)), budget=Budget(40), params=params,
                 callbacks=[kill]).run()
    resumed = loop(Ledger.open(url, "t"), name=name, evaluator=ToyEvaluator(log=str(log)), budget=Budget(40),
                   params=params).run()
    assert outcome(resumed) == outcome(reference)
    assert resumed.replayed == 30 and not resumed.warm_started
    evaluated = log.read_text().split()
    assert len(evaluated) == len(set(evaluated)) == 40          # nothing evaluated twice


class KillOnce(ToyEvaluator):
    """Interrupts the search in the middle of one evaluation (the candidate stays RUNNING)."""

    def __init__(self, at, log):
        super().__init__(log=log)
        self.at = at
        self.count = 0

    def evaluate(self, arch, fidelity=None):
        self.count += 1
        if self.count == self.at:
            raise KeyboardInterrupt
        return super().evaluate(arch, fidelity)


def test_a_candidate_running_at_the_kill_runs_again(tmp_path):
    reference = loop(budget=Budget(20)).run()
    url = storage_url(tmp_path / "l.db")
    log = tmp_path / "log"
    with pytest.raises(KeyboardInterrupt):
        loop(Ledger.create(url, "t", {}), evaluator=KillOnce(9, str(log)), budget=Budget(20)).run()
    ledger = Ledger.open(url, "t")
    assert [r.finished for r in ledger.records()] == [True] * 8 + [False]
    resumed = loop(ledger, evaluator=ToyEvaluator(log=str(log)), budget=Budget(20)).run()
    assert outcome(resumed) == outcome(reference)
    assert ledger.records()[8].restarts == 1
    assert len(log.read_text().split()) == 20


def test_resume_with_a_larger_budget_continues():
    ledger = Ledger.create(None, "t", {})
    loop(ledger, budget=Budget(15)).run()
    longer = loop(ledger, budget=Budget(30)).run()
    assert longer.replayed == 15 and len(longer.records) == 30
    assert outcome(longer) == outcome(loop(budget=Budget(30)).run())


def test_resume_with_a_smaller_budget_shows_everything_recorded_and_runs_nothing():
    """Before: the summary showed the first 10 of 20 recorded outcomes, and a worse best than report."""
    ledger = Ledger.create(None, "t", {})
    full = loop(ledger, budget=Budget(20)).run()
    for budget in (Budget(10), Budget(evaluations=None, cost_s=50.0)):
        shorter = loop(ledger, budget=budget).run()
        assert shorter.replayed == 20 and outcome(shorter) == outcome(full) and shorter.best.value == full.best.value
    assert len(ledger.records()) == 20
    # a killed search with several workers can leave a candidate running with finished ones after it
    holed = Ledger.create(None, "holed", {})
    for r in ledger.records():
        trial = holed.start(r.seq, r.arch, r.info)
        if r.seq != 18:
            done = Record(r.seq, trial, r.arch, dict(r.info))
            done.state, done.value, done.metrics, done.cost_s = r.state, r.value, r.metrics, r.cost_s
            done.done = {19: 17, 17: 18}.get(r.seq, r.done)
            holed.finish(done)
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # not "the strategy did not replay" (a warm start for good)
        shorter = loop(holed, budget=Budget(10)).run()
    assert not shorter.warm_started and shorter.replayed == 19   # every finished one, the running one aside
    assert shorter.best.value == full.best.value
    assert [r.state for r in holed.records() if r.seq == 18] == ["running"]   # nothing run past the budget


def test_a_strategy_that_does_not_replay_falls_back_to_a_warm_start(tmp_path):
    log = tmp_path / "log"
    ledger = Ledger.create(None, "t", {})
    loop(ledger, evaluator=ToyEvaluator(log=str(log)), budget=Budget(15), seed=1).run()
    with pytest.warns(RuntimeWarning, match="warm start"):
        result = loop(ledger, evaluator=ToyEvaluator(log=str(log)), budget=Budget(30), seed=2).run()
    assert result.warm_started and len(result.records) == 30
    keys = [r.arch.key for r in ledger.records()]
    assert len(keys) == len(set(keys)) == 30
    assert len(log.read_text().split()) == 30


@pytest.mark.parametrize("workers", [1, 2])
def test_retry_failed_runs_the_failures_again_and_keeps_them_in_the_study(tmp_path, workers):
    url = storage_url(tmp_path / "l.db")
    log = tmp_path / "log"
    ledger = Ledger.create(url, "t", {})
    first = loop(ledger, name="random", evaluator=ToyEvaluator(fail="abab", log=str(log)), budget=Budget(80)).run()
    assert first.failures == 1
    failed = next(r for r in ledger.records() if r.state == "failed")

    # the error was transient: the same search, resumed with retry_failed, runs it again
    result = loop(Ledger.open(url, "t"), name="random", evaluator=ToyEvaluator(log=str(log)), budget=Budget(80),
                  retry_failed=True, executor=ProcessExecutor(workers) if workers > 1 else None).run()
    assert result.retried == 1 and result.warm_started and result.failures == 0
    records = Ledger.open(url, "t").records()
    assert len(records) == 80 and all(r.state == "complete" for r in records)   # no budget spent on it
    again = records[failed.seq]
    assert again.arch == failed.arch and again.trial_id != failed.trial_id
    assert again.retried == ["RuntimeError: training of abab diverged"] and again.done == 80
    assert len({r.done for r in records}) == 80
    evaluated = log.read_text().split()
    assert evaluated.count("abab") == 2 and len(evaluated) == 81
    study = optuna.load_study(study_name="t", storage=url)   # the failed trial is still there, as it was
    states = [t.state.name for t in study.trials]
    (kept,) = [t for t in study.trials if t.state.name == "FAIL"]
    assert len(states) == 81 and kept._trial_id == failed.trial_id and kept.user_attrs["seq"] == failed.seq

    # a later resume cannot replay that history: it warm-starts at once, without a warning, and runs nothing
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        later = loop(Ledger.open(url, "t"), name="random", evaluator=ToyEvaluator(log=str(log)),
                     budget=Budget(80)).run()
    assert later.warm_started and later.retried == 0 and len(later.records) == 80
    assert len(log.read_text().split()) == 81


class FailAt(ToyEvaluator):
    """A transient error at the given evaluation numbers of this process (from 1)."""

    def __init__(self, at, log=None):
        super().__init__(log=log)
        self.at, self.count = at, 0

    def evaluate(self, arch, fidelity=None):
        self.count += 1
        if self.count in self.at:
            raise RuntimeError("CUDA out of memory")
        return super().evaluate(arch, fidelity)


def test_a_search_killed_while_retrying_resumes_the_retry(tmp_path):
    url = storage_url(tmp_path / "l.db")
    loop(Ledger.create(url, "t", {}), name="random", evaluator=FailAt({3, 7}), budget=Budget(20)).run()
    with pytest.raises(KeyboardInterrupt):   # killed during the second retry
        loop(Ledger.open(url, "t"), name="random", evaluator=KillOnce(2, str(tmp_path / "log")), budget=Budget(20),
             retry_failed=True).run()
    before = {r.seq: r for r in Ledger.open(url, "t").records()}
    assert [(r.state, r.retried) for r in before.values() if r.retried] == [
        ("complete", ["RuntimeError: CUDA out of memory"]), ("running", ["RuntimeError: CUDA out of memory"])]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = loop(Ledger.open(url, "t"), name="random", evaluator=ToyEvaluator(), budget=Budget(20)).run()
    after = Ledger.open(url, "t").records()
    assert result.warm_started and result.failures == 0 and len(after) == 20
    assert [r.restarts for r in after if r.retried] == [0, 1]      # the interrupted retry ran again
    assert len({r.done for r in after}) == 20


def test_a_retry_that_fails_again_lists_every_error_and_nothing_failed_is_a_plain_replay():
    ledger = Ledger.create(None, "t", {})
    loop(ledger, name="random", evaluator=ToyEvaluator(fail="abab"), budget=Budget(80)).run()
    for attempt in (1, 2):
        result = loop(ledger, name="random", evaluator=ToyEvaluator(fail="abab"), budget=Budget(80),
                      retry_failed=True).run()
        assert result.retried == 1 and result.failures == 1
        (failed,) = [r for r in ledger.records() if r.state == "failed"]
        assert failed.retried == ["RuntimeError: training of abab diverged"] * attempt
    clean = Ledger.create(None, "t", {})
    loop(clean, budget=Budget(15)).run()
    resumed = loop(clean, budget=Budget(15), retry_failed=True).run()
    assert resumed.replayed == 15 and not resumed.warm_started and resumed.retried == 0


def test_async_resume_reruns_only_what_was_running(tmp_path):
    url = storage_url(tmp_path / "l.db")
    log = tmp_path / "log"

    def kill(record, lp):
        if len(lp.finished) == 9:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        loop(Ledger.create(url, "t", {}), evaluator=ToyEvaluator(log=str(log)), budget=Budget(24),
             executor=ProcessExecutor(3), callbacks=[kill]).run()
    before = {r.seq: r for r in Ledger.open(url, "t").records()}
    finished_before = {s for s, r in before.items() if r.finished}
    assert len(finished_before) == 9
    result = loop(Ledger.open(url, "t"), evaluator=ToyEvaluator(log=str(log)), budget=Budget(24),
                  executor=ProcessExecutor(3)).run()
    after = {r.seq: r for r in Ledger.open(url, "t").records()}
    assert len(after) == 24 and all(r.finished for r in after.values())
    for seq in finished_before:   # recorded outcomes are untouched
        assert (after[seq].value, after[seq].done, after[seq].restarts) == (before[seq].value, before[seq].done, 0)
    counts = {}
    for ops in log.read_text().split():
        counts[ops] = counts.get(ops, 0) + 1
    space = ToySpace()
    for r in after.values():   # evaluated once, plus once per restart of a candidate left running
        assert counts[space.to_string(r.arch)] <= 1 + r.restarts
    assert result.replayed == 9


def test_inline_executor_runs_on_submit():
    future = InlineExecutor().submit(divmod, 7, 2)
    assert future.done() and future.result() == (3, 1)
    failed = InlineExecutor().submit(divmod, 1, 0)
    assert isinstance(failed.exception(), ZeroDivisionError)


@pytest.mark.parametrize("crash_signal, bystander_note", [
    (None, "WorkerLost: another worker process died and the pool with it (runs again)"),
    # a SIGTERM looks like the pool's own ending of its workers: the culprit is found by running each alone
    (signal.SIGTERM, "WorkerLost: a worker process died while it ran beside others (runs again alone)"),
])
def test_a_worker_death_in_the_process_pool_fails_only_the_candidate_that_kills_it(crash_signal, bystander_note):
    """Before: every candidate in flight beside the dying worker was recorded as failed
    (BrokenProcessPool), lost to the search for good."""
    first = [r.arch for r in loop(name="random", budget=Budget(6)).run().records]
    crasher = "".join(ToySpace().chain(first[1]))
    ledger = Ledger.create(None, "t", {})
    result = loop(ledger, name="random", evaluator=ToyEvaluator(crash=crasher, delay_s=0.5, crash_signal=crash_signal),
                  budget=Budget(12), executor=ProcessExecutor(3, max_retries=1)).run()
    records = {r.arch.key: r for r in ledger.records()}
    failed = [r for r in records.values() if r.state == "failed"]
    assert [r.arch for r in failed] == [first[1]]
    assert failed[0].error == "WorkerLost: its worker process died each time it ran (2 times)"
    assert result.failures == 1 and len(records) == 12
    bystanders = [r for r in records.values() if r.failures and r.state == "complete"]
    assert bystanders and all(set(r.failures) == {bystander_note} for r in bystanders)
    same = {r.arch.key: r.value for r in loop(name="random", budget=Budget(12)).run().records}
    assert {k: r.value for k, r in records.items() if r.state == "complete"} == \
        {k: v for k, v in same.items() if k != first[1].key}


def test_an_evaluators_info_is_recorded_with_its_result():
    """Python API walkthrough P6: Result.info (the training evaluator's images per second, say) was dropped."""

    class WithInfo(ToyEvaluator):
        def evaluate(self, arch, fidelity=None):
            result = super().evaluate(arch, fidelity)
            return Result(result.metrics, result.cost_s, {"device": "cpu", "shape": (3, 32), "odd": object(),
                                                          "curve": np.array([0.5, 0.25]), "lr": [np.float32(0.5)]})

    ledger = Ledger.create(None, "t", {})
    loop(ledger, name="random", evaluator=WithInfo(), budget=Budget(3)).run()
    info = ledger.records()[0].evaluation_info
    assert info["device"] == "cpu" and info["shape"] == [3, 32] and info["odd"].startswith("<object object")
    assert info["curve"] == [0.5, 0.25] and info["lr"] == [0.5]   # a numpy array stopped the search


def test_optunas_info_lines_are_held_back_and_its_verbosity_given_back(capfd):
    """Python API walkthrough P5: opening a ledger turned Optuna's logging down for the whole process."""
    optuna.logging.set_verbosity(optuna.logging.INFO)
    try:
        loop(Ledger.create(None, "t", {}), name="optuna", budget=Budget(5)).run()
        assert optuna.logging.get_verbosity() == optuna.logging.INFO
    finally:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    err = capfd.readouterr().err
    assert "Trial" not in err and "A new study created" not in err
