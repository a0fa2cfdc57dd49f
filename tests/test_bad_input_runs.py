"""Bad input around run directories and ledgers (the bad-input sweep's
findings on `flownas search` and `flownas report`): each gives one clear
line, and no recorded result is lost, overwritten or written into."""
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flownas.errors import FlownasError
from cli_run import one_line_error, run

SEARCH = ["search", "--strategy", "evolution", "--budget", "5", "--quiet"]
STUDY = "nb201-cifar10-evolution-seed0"   # the name SEARCH's search gets


def search(capsys, out, *more):
    code, stdout, err = run(capsys, *SEARCH, "--out", out, *more)
    assert code == 0, err
    return stdout


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files_of(directory: Path) -> dict[str, str]:
    return {p.name: digest(p) for p in sorted(directory.iterdir()) if p.is_file()}


@pytest.fixture
def finished(tmp_path, capsys, data_root) -> Path:
    out = tmp_path / "run"
    search(capsys, out)
    return out


# -- F1: --out on a directory that holds no search but files a search writes ----------------------
def test_out_with_files_a_search_would_overwrite_is_refused(tmp_path, capsys, data_root):
    mine = tmp_path / "mydir"
    mine.mkdir()
    (mine / "config.yaml").write_text("# my precious comments\nspace: nb201\nstrategy: {name: evolution}\nbudget: 3\n")
    (mine / "history.csv").write_text("my own data\n")
    (mine / "best_so_far.png").write_bytes(b"my plot")
    before = files_of(mine)
    err = one_line_error(capsys, "search", mine / "config.yaml", "--out", mine, "--quiet")
    assert f"{mine} holds no search" in err and "(config.yaml, history.csv, best_so_far.png)" in err
    assert "choose another --out" in err
    assert one_line_error(capsys, "search", mine / "config.yaml", "--out", mine, "--check") == err
    assert files_of(mine) == before and sorted(p.name for p in mine.iterdir()) == sorted(before)


def test_out_with_a_foreign_ledger_db_is_refused(tmp_path, capsys, data_root):
    from flownas.store import Ledger
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    with sqlite3.connect(foreign / "ledger.db") as con:   # someone's own SQLite file
        con.execute("create table mine (x)")
    con.close()
    before = files_of(foreign)
    assert "(ledger.db)" in one_line_error(capsys, *SEARCH, "--out", foreign)
    assert files_of(foreign) == before

    other = tmp_path / "other"   # a ledger holding another search, with its trials
    search(capsys, other, "--seed", "4")
    (other / "run.json").unlink()
    for name in ("config.yaml", "history.csv", "best.json", "best_so_far.png"):
        (other / name).unlink()
    before = files_of(other)
    assert "(ledger.db)" in one_line_error(capsys, *SEARCH, "--out", other)
    assert files_of(other) == before
    ledger = Ledger.open(other / "ledger.db", "nb201-cifar10-evolution-seed4")
    try:
        assert len(ledger.records()) == 5
    finally:
        ledger.close()


def test_an_empty_or_unrelated_directory_and_a_start_killed_early_still_start(tmp_path, capsys, data_root):
    from flownas.store import Ledger
    empty = tmp_path / "empty"
    empty.mkdir()
    search(capsys, empty)
    unrelated = tmp_path / "unrelated"
    unrelated.mkdir()
    (unrelated / "notes.txt").write_text("mine")
    search(capsys, unrelated)
    assert (unrelated / "notes.txt").read_text() == "mine" and (unrelated / "best.json").exists()

    # killed before it started: run.lock and a ledger holding the search's study, no trial, no run.json
    killed = tmp_path / "killed"
    killed.mkdir()
    Ledger.create(killed / "ledger.db", STUDY, {}).close()
    (killed / "run.lock").write_text("pid 1 on gone\n")
    assert "holds no search (no run.json" in one_line_error(capsys, "search", "--resume", "--out", killed)
    stdout = search(capsys, killed)
    assert "5 finished" in stdout and (killed / "run.json").exists()

    killed_at_once = tmp_path / "killed_at_once"   # the ledger file made, nothing in it yet
    killed_at_once.mkdir()
    (killed_at_once / "ledger.db").touch()
    assert "5 finished" in search(capsys, killed_at_once)


# -- F3, F22: a damaged, missing or empty ledger --------------------------------------------------
@pytest.mark.parametrize("offset", [8192, 16384, 40960])
def test_a_damaged_ledger_is_one_line_and_never_written(finished, capsys, offset):
    import random
    ledger = finished / "ledger.db"
    rng = random.Random(offset)
    with open(ledger, "r+b") as fh:
        fh.seek(offset)
        fh.write(bytes(rng.getrandbits(8) for _ in range(3000)))
    before = digest(ledger)
    err = one_line_error(capsys, "search", "--resume", "--out", finished, "--budget", "25", "--quiet")
    assert f"the ledger {ledger} is damaged (" in err and "restore it from a copy" in err
    assert one_line_error(capsys, "report", finished) == err
    assert one_line_error(capsys, "search", "--resume", "--out", finished, "--check") == err
    assert digest(ledger) == before


@pytest.mark.parametrize("damage, problem", [
    ("DELETE FROM trial_user_attributes WHERE trial_id = 4 AND key = 'seq'", "trial_id 4: 'seq' is missing"),
    ("UPDATE trial_user_attributes SET value_json = '\"abc\"' WHERE trial_id = 4 AND key = 'seq'",
     "trial_id 4: ValueError: its dispatch number (seq) is 'abc'"),
    ("UPDATE trial_user_attributes SET value_json = '1' WHERE trial_id = 4 AND key = 'seq'",
     "trial_ids 2 and 4 share the dispatch number 1, and the later one is no retry of the earlier"),
    ("DELETE FROM trial_user_attributes WHERE trial_id = 4 AND key = 'result'", "trial_id 4: 'result' is missing"),
    ("UPDATE trial_user_attributes SET value_json = '{\"done' WHERE trial_id = 4 AND key = 'result'",
     "an attribute of a trial is not JSON"),
])
def test_a_damaged_trial_is_named_not_left_out(finished, capsys, damage, problem):
    """Before: a trial without its seq (or sharing one) vanished from the report and the resume
    without a word; other damage gave tracebacks (JSONDecodeError, UpdateFinishedTrialError)."""
    ledger = finished / "ledger.db"
    with sqlite3.connect(ledger) as db:
        assert db.execute("SELECT value_json FROM trial_user_attributes WHERE trial_id = 2 AND key = 'seq'"
                          ).fetchone() == ("1",)
        assert db.execute(damage).rowcount == 1
    db.close()
    err = one_line_error(capsys, "report", finished)
    assert f"the ledger {ledger} is damaged (search " in err and problem in err and "restore it from a copy" in err
    assert one_line_error(capsys, "search", "--resume", "--out", finished, "--quiet") == err


def test_a_file_that_is_not_a_database_is_damaged(finished, capsys):
    (finished / "ledger.db").write_bytes(b"garbage" * 1000)
    assert "is damaged (file is not a database)" in one_line_error(capsys, "report", finished)


def test_a_missing_or_empty_ledger_is_said_so_and_not_created(finished, capsys):
    from flownas.search.api import Run
    from flownas.store import Ledger
    ledger = finished / "ledger.db"
    ledger.unlink()
    err = one_line_error(capsys, "search", "--resume", "--out", finished, "--quiet")
    assert err == f"flownas: error: the ledger {ledger} is missing: restore it from a copy\n"
    assert one_line_error(capsys, "report", finished) == err
    assert not ledger.exists()
    with pytest.raises(FlownasError, match="is missing"):
        Run.load(finished).open_ledger()
    with pytest.raises(FlownasError, match="is missing"):
        Ledger.open(ledger, STUDY)
    assert not ledger.exists()
    ledger.touch()
    assert "is empty (it holds no search)" in one_line_error(capsys, "report", finished)
    assert ledger.stat().st_size == 0


# -- F8, F29: a relative SQLite --storage ----------------------------------------------------------
def test_a_relative_storage_is_recorded_absolute(tmp_path, capsys, monkeypatch, data_root):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    search(capsys, "S1", "--storage", "s1.db")
    recorded = json.loads((tmp_path / "a" / "S1" / "run.json").read_text())
    assert recorded["storage"] == str(tmp_path / "a" / "s1.db")
    (tmp_path / "a" / "db").mkdir()
    search(capsys, "S2", "--storage", "sqlite:///db/s2.db")
    assert json.loads((tmp_path / "a" / "S2" / "run.json").read_text())["storage"] == \
        f"sqlite:///{tmp_path / 'a' / 'db' / 's2.db'}"

    monkeypatch.chdir(tmp_path / "b")   # resume and report from elsewhere: the same ledgers
    code, out, err = run(capsys, "search", "--resume", "--out", tmp_path / "a" / "S1", "--budget", "8", "--quiet")
    assert code == 0 and "8 finished" in out and "5 replayed" in out, err
    code, out, err = run(capsys, "report", tmp_path / "a" / "S2")
    assert code == 0 and "5 finished" in out, err
    assert list((tmp_path / "b").iterdir()) == []   # no junk ledger made here


def test_resume_takes_the_runs_own_ledger_as_a_relative_url(tmp_path, capsys, monkeypatch, data_root):
    monkeypatch.chdir(tmp_path)
    search(capsys, "G0")
    for storage in ("G0/ledger.db", "sqlite:///G0/ledger.db", f"sqlite:///{tmp_path}/G0/ledger.db"):
        code, out, err = run(capsys, "search", "--resume", "--out", "G0", "--storage", storage, "--quiet")
        assert code == 0 and "5 replayed" in out, (storage, err)
    err = one_line_error(capsys, "search", "--resume", "--out", "G0", "--storage", "sqlite:///G0/other.db")
    assert "is not the ledger of the search in G0" in err


# -- F12: --out that is a file, under a file, or cannot be made -----------------------------------
def test_out_that_cannot_be_a_directory_is_one_line(tmp_path, capsys, data_root):
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert one_line_error(capsys, *SEARCH, "--out", afile) == f"flownas: error: --out {afile}: not a directory\n"
    err = one_line_error(capsys, *SEARCH, "--out", afile / "sub")
    assert err == f"flownas: error: --out {afile / 'sub'}: {afile} is not a directory\n"
    assert one_line_error(capsys, *SEARCH, "--out", afile, "--check") == \
        f"flownas: error: --out {afile}: not a directory\n"
    err = one_line_error(capsys, *SEARCH, "--out", "/proc/flownas-no-such/run")
    assert "--out /proc/flownas-no-such/run cannot be made: " in err
    assert afile.read_text() == "x"


def test_a_start_that_fails_leaves_no_directory_or_lock(tmp_path, capsys, data_root):
    existing = tmp_path / "existing"
    existing.mkdir()
    for out in (tmp_path / "new" / "deeper", existing):
        one_line_error(capsys, *SEARCH, "--out", out, "--storage", "postgresql://flownas:pw@127.0.0.1:1/ledger")
    assert not (tmp_path / "new").exists() and list(existing.iterdir()) == []


# -- F13: run.json of the wrong shape --------------------------------------------------------------
@pytest.mark.parametrize("text, message", [
    ("[]", "expected a JSON object with 'study' (the search's name) and 'storage' (a URL, a path or null), "
           "got a JSON list"),
    ('"x"', "got a JSON string"),
    ('{"storage": null}', "'study' must be the search's name, got null None"),
    ('{"study": 5, "storage": 7}', "'study' must be the search's name, got number 5"),
    ('{"study": "s", "storage": 7}', "'storage' must be a URL, a path or null, got number 7"),
])
def test_a_run_json_of_the_wrong_shape_is_one_line(finished, capsys, text, message, monkeypatch, tmp_path):
    from flownas.search.api import Run
    (finished / "run.json").write_text(text)
    monkeypatch.chdir(tmp_path)
    err = one_line_error(capsys, "search", "--resume", "--out", finished, "--quiet")
    assert err.startswith(f"flownas: error: {finished / 'run.json'} is not a run record: ")
    assert err.endswith(f"{message}\n")
    assert one_line_error(capsys, "report", finished) == err
    with pytest.raises(FlownasError, match="is not a run record"):
        Run.load(finished)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]   # no junk ledger (e.g. a file "7")


# -- F14: run.lock that is a directory --------------------------------------------------------------
def test_a_run_lock_that_is_a_directory_is_one_line(finished, capsys):
    (finished / "run.lock").unlink()
    (finished / "run.lock").mkdir()
    before = digest(finished / "ledger.db")
    err = one_line_error(capsys, "search", "--resume", "--out", finished, "--quiet")
    assert f"{finished / 'run.lock'} cannot be used as the run's lock file (Is a directory)" in err
    assert one_line_error(capsys, "search", "--resume", "--out", finished, "--check") == err
    assert digest(finished / "ledger.db") == before


# -- F23: two fresh searches at once into one --out -------------------------------------------------
def test_a_start_into_a_directory_another_start_holds_is_refused_by_the_lock(tmp_path, capsys, data_root):
    from flownas.search.api import driving
    out = tmp_path / "race"
    out.mkdir()
    with driving(out):   # as the search started a moment earlier holds it, before its ledger exists
        err = one_line_error(capsys, *SEARCH, "--out", out)
    assert f"{out} is being searched by pid {os.getpid()} on " in err and "choose another --out" in err
    assert sorted(p.name for p in out.iterdir()) == ["run.lock"]   # no ledger, no run.json


def _env():
    return {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}


def test_two_searches_started_at_once_the_second_is_told_plainly(tmp_path, data_root):
    out = tmp_path / "race"
    command = [sys.executable, "-m", "flownas", *SEARCH[:-3], "--budget", "30", "--quiet", "--out", str(out)]
    procs = [subprocess.Popen(command, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(120), p.stderr.read()) for p in procs]
    assert sorted(code for code, _ in results) == [0, 1], results
    err = next(err for code, err in results if code == 1)
    assert err.count("\n") == 1 and ("is being searched by" in err or "already holds a search" in err), err
    with open(out / "history.csv") as fh:
        assert len(fh.readlines()) == 31


# -- F30: SIGTERM -------------------------------------------------------------------------------------
def _finished_trials(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.1) as con:
            return con.execute("select count(*) from trials where state = 'COMPLETE'").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.parametrize("sig, code_, line", [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")])
def test_sigterm_ends_a_search_with_one_line_and_the_ledger_intact(tmp_path, capsys, data_root, sig, code_, line):
    """SIGTERM (a batch scheduler's stop) and SIGINT (Ctrl-C) alike."""
    out = tmp_path / "term"
    command = [sys.executable, "-m", "flownas", "search", "--strategy", "random", "--budget", "5000", "--quiet",
               "--out", str(out)]
    proc = subprocess.Popen(command, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            # a job started in the background inherits SIGINT ignored; a terminal's does not
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while proc.poll() is None and _finished_trials(out / "ledger.db") < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(sig)
    code, err = proc.wait(60), proc.stderr.read()
    assert code == code_ and err == f"flownas: {line} (continue it with --resume)\n", (code, err)
    with sqlite3.connect(out / "ledger.db") as con:
        assert con.execute("pragma quick_check").fetchall() == [("ok",)]
    con.close()
    done = _finished_trials(out / "ledger.db")
    code, stdout, err = run(capsys, "search", "--resume", "--out", out, "--budget", str(done + 3), "--quiet")
    assert code == 0 and f"{done + 3} finished" in stdout, err


def test_a_full_disk_stops_the_search_in_one_line_and_it_resumes(tmp_path, capsys, data_root, monkeypatch):
    """Before: Optuna's StorageInternalError traceback ('... e.g. exceeding max length')."""
    import sqlite3 as sqlite

    import optuna
    import sqlalchemy
    real = optuna.storages.RDBStorage.set_trial_user_attr
    writes = []

    def fills_up(self, trial_id, key, value):
        if key == "result":
            writes.append(trial_id)
            if len(writes) > 3:
                try:
                    raise sqlalchemy.exc.OperationalError("UPDATE", {}, sqlite.OperationalError("database or disk is full"))
                except sqlalchemy.exc.OperationalError as exc:
                    raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.") from exc
        return real(self, trial_id, key, value)
    monkeypatch.setattr(optuna.storages.RDBStorage, "set_trial_user_attr", fills_up)
    out = tmp_path / "full"
    err = one_line_error(capsys, "search", "--strategy", "evolution", "--budget", "8", "--out", out, "--quiet")
    assert err == (f"flownas: error: the ledger {out / 'ledger.db'} could not be written (database or disk is full): "
                   f"what it recorded is kept; once that is fixed, continue with --resume\n")
    monkeypatch.setattr(optuna.storages.RDBStorage, "set_trial_user_attr", real)
    code, report, _ = run(capsys, "report", out)
    assert code == 0 and ("3 finished (0 failed) of a budget of 8 evaluations; 1 in flight when it stopped: "
                          "continue it with --resume") in " ".join(report.replace("│", " ").split())
    code, summary, _ = run(capsys, "search", "--resume", "--out", out)
    assert code == 0 and "8 finished (0 failed; 3 replayed from the ledger" in summary


def test_an_in_memory_sqlite_ledger_or_a_nan_cost_budget_is_refused(tmp_path, capsys, data_root):
    """Before: an in-memory ledger passed --check and failed with a traceback; a NaN cost budget ran nothing."""
    for storage in ("sqlite://", "sqlite:///", "sqlite:///:memory:"):
        err = one_line_error(capsys, "search", "--budget", "3", "--storage", storage, "--out", tmp_path / "r", "--check")
        assert f"storage: {storage!r} is an in-memory SQLite ledger, gone with the process" in err
    config = tmp_path / "nan.yaml"
    config.write_text("strategy: random\nbudget: {evaluations: 10, cost_s: .nan}\n")
    err = one_line_error(capsys, "search", config, "--check")
    assert "budget.cost_s must be a positive, finite number of seconds, got nan" in err


def test_check_finds_what_a_new_searchs_sqlite_storage_would_refuse(tmp_path, capsys, data_root):
    """Before: --check said yes to a folder, a missing folder, a file that is no ledger and a name
    taken in the file; the run then refused (or said only 'unable to open database file')."""
    taken = tmp_path / "shared.db"
    assert run(capsys, "search", "--strategy", "random", "--budget", "2", "--storage", taken, "--out",
               tmp_path / "first", "--quiet")[0] == 0
    text = tmp_path / "notes.txt"
    text.write_text("my notes\n" * 100)
    cases = ((tmp_path, f"the ledger {tmp_path} is not a file"),
             (tmp_path / "no" / "l.db", f"the ledger {tmp_path / 'no' / 'l.db'} cannot be created: its folder "
                                        f"{tmp_path / 'no'} does not exist"),
             (text, f"{text} is not a ledger (not a SQLite file): choose another file, or leave it out"),
             (taken, "already holds a search named 'nb201-cifar10-random-seed0'"))
    for storage, message in cases:
        for flags in (["--check"], ["--quiet"]):
            err = one_line_error(capsys, "search", "--strategy", "random", "--budget", "2", "--storage", storage,
                                 "--out", tmp_path / "second", *flags)
            assert message in err
    assert text.read_text() == "my notes\n" * 100
    inside = tmp_path / "new" / "run"   # a --storage in the run directory the search makes: fine
    assert run(capsys, "search", "--strategy", "random", "--budget", "2", "--storage", inside / "l.db",
               "--out", inside, "--check")[0] == 0 and not inside.exists()


def test_check_refuses_retry_failed_without_resume_and_resume_refuses_another_name(finished, capsys):
    """Before: --check said yes to --retry-failed without --resume (the run refused it), and
    --resume --name OTHER resumed the recorded search under its own name without a word."""
    err = one_line_error(capsys, "search", "--retry-failed", "--check", "--out", finished.parent / "new")
    assert "--retry-failed goes with --resume" in err
    for flags in (["--check"], ["--quiet"]):
        err = one_line_error(capsys, "search", "--resume", "--out", finished, "--name", "another", *flags)
        assert "--name: 'another' differs from the search recorded in " in err and "'nb201-cifar10-evolution-seed0'" in err
    assert run(capsys, "search", "--resume", "--out", finished, "--name", "nb201-cifar10-evolution-seed0",
               "--quiet")[0] == 0


def test_a_ledger_that_cannot_be_created_says_start_again_and_an_empty_driver_message_is_named(tmp_path, monkeypatch):
    """Review: 'continue with --resume' where nothing was recorded; an error without text was an IndexError."""
    import optuna
    import sqlalchemy

    from flownas.store import Ledger

    def fails(message):
        def set_attr(self, *args, **kwargs):
            try:
                raise sqlalchemy.exc.OperationalError("UPDATE", {}, Exception(message))
            except sqlalchemy.exc.OperationalError as exc:
                raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.") from exc
        return set_attr
    for message, why in (("database or disk is full", "database or disk is full"), ("", "Exception")):
        monkeypatch.setattr(optuna.storages.RDBStorage, "set_study_user_attr", fails(message))
        path = tmp_path / f"l{len(message)}.db"
        with pytest.raises(FlownasError, match=rf"^the ledger {path} could not be created \({why}\): once that "
                                               r"is fixed, start the search again$"):
            Ledger.create(path, "s", {})


def test_a_shared_ledger_with_a_damaged_page_is_damaged_not_another_file(tmp_path, capsys, data_root):
    """Review: SQLite says 'file is not a database' for a damaged header too; only a file that does not start
    as SQLite is 'not a ledger'."""
    shared = tmp_path / "shared.db"
    assert run(capsys, "search", "--strategy", "random", "--budget", "2", "--storage", shared, "--out",
               tmp_path / "first", "--quiet")[0] == 0
    data = bytearray(shared.read_bytes())
    data[16:100] = bytes(84)   # the header after its magic string
    shared.write_bytes(bytes(data))
    err = one_line_error(capsys, "search", "--strategy", "random", "--budget", "2", "--seed", "1", "--storage",
                         shared, "--out", tmp_path / "second", "--check")
    assert f"the ledger {shared} is damaged (" in err and "restore it from a copy" in err
