"""The ledger: Optuna storage, one study per search, one trial per candidate."""
import numpy as np
import optuna
import pytest

from flownas.errors import ConfigError, FlownasError
from flownas.store import Ledger, Record, storage_url
from flownas.toys import ToySpace


def _archs(n, seed=0):
    space, rng, out = ToySpace(), np.random.default_rng(seed), []
    while len(out) < n:
        a = space.sample(rng)
        if a not in out:
            out.append(a)
    return out


def _fill(ledger, archs, finish=True):
    records = []
    for i, arch in enumerate(archs):
        tid = ledger.start(i, arch, {"origin": "random", "predicted": np.float64(1.5)})
        rec = Record(i, tid, arch, {"origin": "random"})
        if finish:
            if i == 1:
                rec.state, rec.error, rec.cost_s = "failed", "RuntimeError: diverged", 0.0
            else:
                rec.state, rec.value, rec.metrics, rec.cost_s = "complete", float(i), {"val": float(i)}, 2.0
            rec.done, rec.wall_s = i, 0.01
            ledger.finish(rec)
        records.append(rec)
    return records


def test_records_round_trip_and_optuna_reads_the_ledger(tmp_path):
    url = storage_url(tmp_path / "ledger.db")
    ledger = Ledger.create(url, "s1", {"config": {"seed": 3}})
    archs = _archs(4)
    _fill(ledger, archs)
    ledger.close()

    records = Ledger.open(url, "s1").records()
    assert [r.seq for r in records] == [0, 1, 2, 3]
    assert [r.arch for r in records] == archs
    assert [r.state for r in records] == ["complete", "failed", "complete", "complete"]
    assert records[1].error == "RuntimeError: diverged" and records[1].value is None
    assert records[3].value == 3.0 and records[3].metrics == {"val": 3.0} and records[3].done == 3
    assert Ledger.open(url, "s1").meta["config"] == {"seed": 3}

    study = optuna.load_study(study_name="s1", storage=url)
    trials = study.trials
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert study.best_trial.value == 3.0
    assert trials[0].user_attrs["info"] == {"origin": "random", "predicted": 1.5}
    assert trials[2].user_attrs["arch"]["ops"] == list(archs[2].ops)
    assert trials[2].user_attrs["result"]["metrics"] == {"val": 2.0}


def test_a_second_search_of_the_same_name_is_refused(tmp_path):
    url = storage_url(tmp_path / "l.db")
    Ledger.create(url, "s", {})
    with pytest.raises(FlownasError, match="already holds a search named 's'.*--resume"):
        Ledger.create(url, "s", {})
    Ledger.create(url, "other", {})   # another study in the same storage is fine
    with pytest.raises(FlownasError, match="holds no search named 'nope'"):
        Ledger.open(url, "nope")


def test_a_result_written_just_before_a_kill_is_kept_and_repaired(tmp_path):
    url = storage_url(tmp_path / "l.db")
    ledger = Ledger.create(url, "s", {})
    (rec,) = _fill(ledger, _archs(1), finish=False)
    rec.state, rec.value, rec.metrics, rec.cost_s, rec.done = "complete", 7.0, {"val": 7.0}, 1.0, 0
    ledger.storage.set_trial_user_attr(rec.trial_id, "result", {"done": 0, "value": 7.0, "metrics": {"val": 7.0},
                                                                "cost_s": 1.0, "wall_s": 0.1, "error": None})
    (seen,) = ledger.records()            # the process died before the state was written
    assert seen.finished and seen.value == 7.0 and seen.trial_state == "RUNNING"
    ledger.repair([seen])
    assert optuna.load_study(study_name="s", storage=url).trials[0].state.name == "COMPLETE"


def test_restarts_are_counted(tmp_path):
    ledger = Ledger.create(storage_url(tmp_path / "l.db"), "s", {})
    (rec,) = _fill(ledger, _archs(1), finish=False)
    ledger.restart(rec)
    ledger.restart(rec)
    assert ledger.records()[0].restarts == 2 and not ledger.records()[0].finished


def test_in_memory_ledger():
    ledger = Ledger.create(None, "bench", {})
    _fill(ledger, _archs(3))
    assert len(ledger.records()) == 3 and ledger.url is None


@pytest.mark.parametrize("url, message", [
    ("sqlite:////nonexistent-dir/deeper/ledger.db", "cannot be created: its folder /nonexistent-dir/deeper does "
                                                    "not exist"),
    ("nosuchdb://host/db", "cannot be opened: "),
    ("mysql://flownas:secret@127.0.0.1:1/ledger", "No module named 'MySQLdb' (MySQL's default driver is "
                                                  "mysqlclient, which needs a compiler and libmysqlclient: "
                                                  "pip install pymysql and write mysql+pymysql://)"),
    ("mysql+pymysql://flownas:secret@127.0.0.1:1/ledger", "cannot be opened: "),
    ("mssql+pyodbc://flownas:secret@host/ledger", "(install the SQLAlchemy driver the URL names)"),
    ("postgresql://flownas:secret@127.0.0.1:1/ledger", "cannot be opened: "),
])
def test_unreachable_storage_is_one_clear_line(url, message):
    with pytest.raises(ConfigError) as info:
        Ledger.create(url, "s", {})
    text = str(info.value)
    assert message in text and "\n" not in text and "secret" not in text


def test_plain_paths_become_sqlite_urls(tmp_path):
    assert storage_url(tmp_path / "x.db") == f"sqlite:///{tmp_path / 'x.db'}"
    assert storage_url("postgresql://h/db") == "postgresql://h/db"
    assert storage_url(None) is None


def test_a_url_names_its_database_whatever_gives_the_credentials():
    """Resume may take the password from an option file where the search began with it in the URL."""
    from flownas.store import same_storage
    first = "mysql+pymysql://flownas:pw@localhost/flownas?unix_socket=/run/sock"
    assert same_storage(first, "mysql+pymysql://localhost/flownas?unix_socket=/run/sock&read_default_file=/h/.my.cnf")
    assert same_storage("postgresql://me:pw@db/flownas", "postgresql://me@db/flownas?passfile=/h/.pgpass")
    assert not same_storage(first, "mysql+pymysql://flownas@localhost/other?unix_socket=/run/sock")   # another database
    assert not same_storage(first, "mysql+pymysql://flownas@localhost/flownas?unix_socket=/run/other")
    assert not same_storage("postgresql://a@db/flownas", "postgresql://b@db/flownas")
