"""`flownas search --resume` after SIGKILL of the real search process at
random points: nothing recorded is lost, nothing finished is evaluated again,
and the deterministic search ends exactly as an uninterrupted one."""
import csv
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flownas.cli import main

ARGS = ["search", "--strategy", "evolution", "--budget", "50", "--seed", "3", "--quiet"]
SEARCH = [sys.executable, "-m", "flownas"] + ARGS


def finished_trials(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.1) as con:
            return con.execute("select count(*) from trials where state != 'RUNNING'").fetchone()[0]
    except sqlite3.Error:   # not created yet, or being written
        return 0


def history(run: Path):
    with open(run / "history.csv") as fh:
        return [(r["evaluation"], r["seq"], r["arch"], r["objective"], r["test"], r["restarts"])
                for r in csv.DictReader(fh)]


def kill_at(out: Path, finished: int, extra_s: float) -> list[tuple]:
    """Start (or resume) the search, SIGKILL it once ``finished`` candidates are
    recorded (plus ``extra_s``); the finished records seen just before."""
    resume = ["--resume"] if (out / "run.json").exists() else []
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(SEARCH + ["--out", str(out)] + resume, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while proc.poll() is None and finished_trials(out / "ledger.db") < finished and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(extra_s)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return snapshot(out)


def snapshot(out: Path) -> dict:
    if not (out / "ledger.db").exists():
        return {}
    with sqlite3.connect(f"file:{out / 'ledger.db'}?mode=ro", uri=True) as con:
        rows = con.execute("select t.number, a.value_json from trials t join trial_user_attributes a "
                           "on a.trial_id = t.trial_id where a.key = 'result'").fetchall()
    return {number: json.loads(value) for number, value in rows}


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume(tmp_path, data_root, capsys):
    reference = tmp_path / "reference"
    assert main(ARGS + ["--out", str(reference)]) == 0
    capsys.readouterr()

    out = tmp_path / "killed"
    rng = random.Random(20240607)
    recorded = {}
    for point in sorted(rng.sample(range(0, 50), 3)):
        seen = kill_at(out, point, rng.uniform(0, 0.05))
        for number, result in recorded.items():   # nothing recorded is ever lost or rewritten
            assert seen[number] == result
        recorded = seen
    assert main(ARGS + ["--out", str(out), "--resume"]) == 0
    final = snapshot(out)
    assert all(final[n] == r for n, r in recorded.items())

    got, want = history(out), history(reference)
    assert [row[:5] for row in got] == [row[:5] for row in want]
    assert json.loads((out / "best.json").read_text()) == json.loads((reference / "best.json").read_text())
    # a candidate runs again only if it was running when killed; the rest ran once
    assert sum(int(row[5]) for row in got) <= 3
