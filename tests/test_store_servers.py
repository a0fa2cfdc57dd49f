"""The ledger on real database servers, PostgreSQL (the README's cluster
set-up) and MariaDB (the ``server`` fixture of conftest.py runs each test on
both): it holds a search like SQLite does, and only one process drives a
search at a time, whichever machine it runs on."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from flownas.cli import main
from flownas.errors import ConfigError, FlownasError
from flownas.search.api import resume_run
from flownas.store import Ledger, Record, without_password
from test_store import _archs, _fill

ROOT = Path(__file__).resolve().parents[1]
HOLD = ("import sys, time; from flownas.store import Ledger; "
        "Ledger.open(sys.argv[1], sys.argv[2], drive=True); print('held', flush=True); time.sleep(600)")


def _name() -> str:
    return f"s-{uuid.uuid4().hex[:8]}"


def _hold(url: str, name: str) -> subprocess.Popen:
    """Another process (another machine, as far as the ledger can tell) driving ``name``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, url, name], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def _by(server, pid: int) -> str:
    """The refusal's words for a driver process ``pid`` (PostgreSQL names its
    pid and host; MySQL only its connection and client host, for KILL)."""
    if server.name == "postgresql":
        return re.escape(f"is being run by flownas pid {pid} on ")
    return r"is being run by connection (\d+) \(flownas@localhost; if that driver is gone, free its lock with KILL \1 "


def _open_when_released(url: str, name: str, seconds: float = 20.0) -> Ledger:
    deadline = time.monotonic() + seconds
    while True:
        try:
            return Ledger.open(url, name, drive=True)
        except FlownasError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_records_round_trip(server):
    name, archs = _name(), _archs(4)
    ledger = Ledger.create(server.url, name, {"config": {"seed": 3}}, drive=True)
    _fill(ledger, archs)
    ledger.close()
    records = Ledger.open(server.url, name).records()
    assert [r.arch for r in records] == archs
    assert [r.state for r in records] == ["complete", "failed", "complete", "complete"]
    assert records[3].value == 3.0 and records[3].metrics == {"val": 3.0}


def test_a_second_driver_is_refused_and_told_who_drives(server):
    name = _name()
    Ledger.create(server.url, name, {}).close()
    holder = _hold(server.url, name)
    try:
        with pytest.raises(FlownasError, match=_by(server, holder.pid)):
            Ledger.open(server.url, name, drive=True)
        with pytest.raises(FlownasError, match="being run by"):   # a new start must not replace it either
            Ledger.create(server.url, name, {}, replace_empty=True, drive=True)
        assert Ledger.open(server.url, name).meta["format"] == "flownas.ledger"   # readers are not refused
    finally:
        holder.kill()
        holder.wait()
    _open_when_released(server.url, name).close()   # the server let go of the killed driver's lock


def test_closing_the_ledger_releases_the_lock_in_the_same_process(server):
    name = _name()
    first = Ledger.create(server.url, name, {}, drive=True)
    with pytest.raises(FlownasError, match=_by(server, os.getpid())):
        Ledger.open(server.url, name, drive=True)
    first.close()
    Ledger.open(server.url, name, drive=True).close()


def test_a_refused_resume_lets_go_of_the_ledger(server, tmp_path):
    out = tmp_path / "run"
    assert main(["search", "--strategy", "random", "--seed", str(uuid.uuid4().int % 10**6), "--quiet",
                 "--budget", "3", "--out", str(out), "--storage", server.url]) == 0
    with pytest.raises(ConfigError, match="--seed"):
        resume_run(out, None, {"seed": -1, "storage": server.url})
    study = json.loads((out / "run.json").read_text())["study"]
    Ledger.open(server.url, study, drive=True).close()   # at once: not left to the garbage collector


def test_resume_from_a_copied_run_directory_waits_for_the_driver(server, tmp_path, capsys, monkeypatch):
    """The run directory copied to a second machine: its run.lock is not the
    first machine's, so only the ledger can refuse the second driver; the
    refusal leaves the ledger as the first driver wrote it."""
    for variable, value in server.password_env.items():   # where the second machine keeps the password
        monkeypatch.setenv(variable, value)
    again = [] if server.password_env else ["--storage", server.url]   # else --storage gives it
    search = ["search", "--strategy", "random", "--seed", str(uuid.uuid4().int % 10**6), "--quiet"]
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(search + ["--budget", "6", "--out", str(first), "--storage", server.url]) == 0
    second.mkdir()
    shutil.copy(first / "run.json", second / "run.json")
    study = json.loads((first / "run.json").read_text())["study"]
    before = Ledger.open(server.url, study)
    recorded = ([(r.seq, r.arch, r.value) for r in before.records()], before.meta["config"])
    before.close()

    holder = _hold(server.url, study)
    try:
        capsys.readouterr()
        assert main(["search", "--resume", "--out", str(second), "--budget", "12", "--quiet", *again]) != 0
        assert re.search(_by(server, holder.pid), capsys.readouterr().err)
        assert main(["search", "--resume", "--out", str(second), "--check", *again]) != 0   # --check finds it too
        assert re.search(_by(server, holder.pid), capsys.readouterr().err)
        after = Ledger.open(server.url, study)
        assert ([(r.seq, r.arch, r.value) for r in after.records()], after.meta["config"]) == recorded
        after.close()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    _open_when_released(server.url, study).close()
    assert main(["search", "--resume", "--out", str(second), "--check", *again]) == 0
    assert main(["search", "--resume", "--out", str(second), "--budget", "12", "--quiet", *again]) == 0
    resumed = Ledger.open(server.url, study).records()
    assert len(resumed) == 12 and [(r.seq, r.arch, r.value) for r in resumed[:6]] == recorded[0]


def test_the_password_is_neither_written_nor_shown(server, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PGPASSWORD", raising=False)
    out = tmp_path / "run"
    search = ["search", "--strategy", "random", "--seed", str(uuid.uuid4().int % 10**6), "--out", str(out)]
    assert main(search + ["--budget", "3", "--storage", server.url]) == 0
    assert main(search + ["--budget", "3", "--storage", server.url, "--resume", "--check"]) == 0
    printed = capsys.readouterr()
    assert server.password not in printed.out + printed.err and "flownas:***@" in printed.out
    assert not [f for f in out.iterdir() if server.password.encode() in f.read_bytes()]
    run = json.loads((out / "run.json").read_text())
    assert run["storage"] == without_password(server.url)
    assert server.password not in json.dumps(Ledger.open(server.url, run["study"]).meta)

    # resume: the password comes with --storage (or PGPASSWORD, ~/.pgpass, a MySQL option file), else a one-line error
    assert main(["search", "--resume", "--out", str(out), "--budget", "5", "--quiet"]) != 0
    err = capsys.readouterr().err.strip()
    assert "give the whole URL with --storage" in err and "\n" not in err
    assert len(Ledger.open(server.url, run["study"]).records()) == 3
    assert main(["search", "--resume", "--out", str(out), "--budget", "5", "--storage", server.other_url]) != 0
    assert "is not the ledger of the search" in capsys.readouterr().err
    assert main(["search", "--resume", "--out", str(out), "--budget", "5", "--quiet", "--storage", server.url]) == 0
    # server.url is as a user types it (the socket's path unencoded), run.json as SQLAlchemy writes it
    assert main(["search", "--resume", "--out", str(out), "--budget", "5", "--storage", server.url, "--check"]) == 0
    assert main(["report", str(out), "--storage", server.url]) == 0
    assert len(Ledger.open(server.url, run["study"]).records()) == 5


def test_a_server_restart_costs_the_driver_neither_a_write_nor_its_lock(server):
    """As when the database restarts while candidates train: their outcomes,
    the first writes after it, go through fresh connections."""
    url, name, archs = server.url, _name(), _archs(4)
    ledger = Ledger.create(url, name, {}, drive=True)
    unlocked = Ledger.create(url, name + "-u", {})   # no lock to take again: pooled connections are pinged
    running = []
    for led in (ledger, unlocked):
        _fill(led, archs[:2])
        running.append(Record(2, led.start(2, archs[2], {}), archs[2], {}))
    server.restart()   # ends the lock's connection and the pooled ones
    for led, rec in zip((ledger, unlocked), running):
        _finish(led, rec)
        _finish(led, Record(3, led.start(3, archs[3], {}), archs[3], {}))
    with pytest.raises(FlownasError, match=_by(server, os.getpid())):   # taken again
        Ledger.open(url, name, drive=True)
    ledger.close()
    unlocked.close()
    for study in (name, name + "-u"):
        records = Ledger.open(url, study).records()
        assert [r.arch for r in records] == archs and [r.value for r in records[2:]] == [2.0, 3.0]


def test_a_driver_whose_lock_was_taken_meanwhile_stops_without_writing(server):
    url, name, archs = server.url, _name(), _archs(3)
    ledger = Ledger.create(url, name, {}, drive=True)
    _fill(ledger, archs[:2])
    server.restart()
    holder = _hold(url, name)   # another driver took over while the lock was down
    try:
        with pytest.raises(FlownasError, match=_by(server, holder.pid)):
            ledger.start(2, archs[2], {})
        failed = ledger.records()[1]   # _fill's failed candidate: a retry is a dispatch too
        with pytest.raises(FlownasError, match=_by(server, holder.pid)):
            ledger.retry(failed)
    finally:
        holder.kill()
        holder.wait()
    ledger.close()
    assert [r.arch for r in Ledger.open(url, name).records()] == archs[:2]


def _finish(ledger, rec):
    rec.state, rec.value, rec.done, rec.cost_s, rec.wall_s = "complete", float(rec.seq), rec.seq, 1.0, 0.01
    ledger.finish(rec)


def test_check_probes_a_server_ledger_without_writing(server, tmp_path, capsys):
    """--check of a new search opens the server ledger (it said "new search", exit 0, where the run
    failed) and finds a search of that name there; it writes nothing, not even Optuna's tables."""
    from cli_run import one_line_error, run
    name = _name()
    check = ["search", "--strategy", "evolution", "--budget", "3", "--name", name, "--check"]
    code, out, _ = run(capsys, *check, "--storage", server.url)
    assert code == 0 and "new search" in out
    wrong = server.url.replace(server.password, "wrong")
    assert "cannot be opened" in one_line_error(capsys, *check, "--storage", wrong)
    assert main(["search", "--strategy", "evolution", "--budget", "3", "--name", name, "--out", str(tmp_path / "a"),
                 "--storage", server.url, "--quiet"]) == 0
    err = one_line_error(capsys, *check, "--out", tmp_path / "b", "--storage", server.url)
    assert f"already holds a search named {name!r}" in err and "another --name" in err
    capsys.readouterr()
