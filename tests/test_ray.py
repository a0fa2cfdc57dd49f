"""The Ray executor on a real cluster started here with ``ray start --head``
on 127.0.0.1 (2 CPUs, 2 fake GPUs), once for the module: placement by
num_gpus, a worker killed mid-evaluation, Ctrl-C, the same results as the
local executor, and a driver killed and resumed."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from flownas.cli import main
from flownas.errors import ConfigError
from flownas.registry import STRATEGIES
from flownas.runtime.base import evaluate
from flownas.search.config import SearchConfig
from flownas.search.loop import Budget, SearchLoop
from flownas.store import Ledger, storage_url, without_password
from flownas.toys import ToyEvaluator, ToySpace, score
from test_search_resume import finished_trials, history as run_history

pytestmark = pytest.mark.xdist_group("ray")
ray = pytest.importorskip("ray")

from flownas.runtime.ray import RayExecutor  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Cluster:
    address: str
    env: dict


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _processes_under(temp_dir: str) -> list[int]:
    """Ray processes of the cluster started here (their command lines name its temp dir)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if temp_dir.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


@pytest.fixture(scope="module")
def cluster():
    """``ray start --head --block`` in the background; this process connects to it by address."""
    temp = tempfile.mkdtemp(prefix="flray", dir="/tmp")   # short: Ray's socket paths must fit 107 bytes
    port = _free_port()
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}   # workers import flownas and the tests' modules
    ray_cli = Path(sys.executable).with_name("ray")
    with open(Path(temp) / "start.log", "w") as log:
        head = subprocess.Popen([str(ray_cli), "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
                                 "--num-cpus=2", "--num-gpus=2", "--include-dashboard=false",
                                 "--disable-usage-stats", f"--temp-dir={temp}", "--block"],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
    address = f"127.0.0.1:{port}"
    auth_mode = os.environ.get("RAY_AUTH_MODE")   # connecting sets it (token authentication)
    try:
        deadline = time.monotonic() + 120
        while True:   # the GCS port answers once the head is up
            assert head.poll() is None, (Path(temp) / "start.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the Ray head did not start in 120 s"
                time.sleep(0.2)
        RayExecutor(address=address)._connect()   # reached by address (with the cluster's token)
        yield Cluster(address, env)
    finally:
        ray.shutdown()
        head.send_signal(signal.SIGTERM)   # --block: ends the processes it started
        try:
            head.wait(60)
        except subprocess.TimeoutExpired:
            head.kill()
        for pid in _processes_under(temp):   # whatever outlived it
            os.kill(pid, signal.SIGKILL)
        if auth_mode is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        shutil.rmtree(temp, ignore_errors=True)


def wait_all(executor, futures):
    pending = set(futures)
    while pending:
        _, pending = executor.wait(pending)
    return [f.result() for f in futures]


def probe(seconds: float) -> dict:
    """Runs on a worker: what Ray gave it, and when it ran."""
    start = time.time()
    time.sleep(seconds)
    return {"gpus": [str(g) for g in ray.get_gpu_ids()], "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "start": start, "end": time.time()}


def most_at_once(runs) -> int:
    return max(sum(r["start"] <= s["start"] < r["end"] for r in runs) for s in runs)


def test_placement_honours_num_gpus(cluster):
    whole = RayExecutor(workers=4, address=cluster.address, num_cpus=0, num_gpus=1)
    runs = wait_all(whole, [whole.submit(probe, 0.5) for _ in range(4)])
    assert all(len(r["gpus"]) == 1 and r["cuda"] == r["gpus"][0] for r in runs)
    assert most_at_once(runs) <= 2            # two GPUs: two at a time, though no CPU is asked for
    overlapping = [(r, s) for i, r in enumerate(runs) for s in runs[i + 1:]
                   if s["start"] < r["end"] and r["start"] < s["end"]]
    assert all(r["gpus"] != s["gpus"] for r, s in overlapping)   # each on its own GPU
    half = RayExecutor(workers=2, address=cluster.address, num_cpus=0, num_gpus=0.5)
    runs = wait_all(half, [half.submit(probe, 0.1) for _ in range(2)])
    assert all(len(r["gpus"]) == 1 and r["cuda"] == r["gpus"][0] for r in runs)
    with pytest.raises(ConfigError, match="executor.num_gpus: each evaluation asks for 3 GPUs, but the Ray "
                                          "cluster has 2"):
        RayExecutor(address=cluster.address, num_gpus=3).submit(probe, 0)


class KilledOnce(ToyEvaluator):
    """The first candidate to start writes its worker's pid and waits to be killed."""

    def __init__(self, folder: str):
        super().__init__()
        self.folder = folder

    def evaluate(self, arch, fidelity=None):
        try:
            os.close(os.open(os.path.join(self.folder, "victim"), os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return super().evaluate(arch, fidelity)
        with open(os.path.join(self.folder, "victim"), "w") as fh:
            fh.write(ToySpace().to_string(arch))
        with open(os.path.join(self.folder, "pid.tmp"), "w") as fh:
            fh.write(str(os.getpid()))
        os.replace(os.path.join(self.folder, "pid.tmp"), os.path.join(self.folder, "pid"))   # whole, at once
        time.sleep(60)
        raise AssertionError("the worker was not killed")


def kill_the_reported_worker(folder: Path) -> threading.Thread:
    def run():
        deadline = time.monotonic() + 60
        while not (folder / "pid").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(int((folder / "pid").read_text()), signal.SIGKILL)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def toy_strategy(seed=0):
    return STRATEGIES.get("evolution")(ToySpace(), seed=seed)


@pytest.mark.parametrize("max_retries", [1, 0])
def test_a_worker_killed_mid_evaluation(cluster, tmp_path, max_retries):
    killer = kill_the_reported_worker(tmp_path)
    ledger = Ledger.create(storage_url(tmp_path / "l.db"), "t", {})
    executor = RayExecutor(workers=2, address=cluster.address, max_retries=max_retries)
    result = SearchLoop(ToySpace(), toy_strategy(), KilledOnce(str(tmp_path)), ledger, executor=executor,
                        budget=Budget(12)).run()
    killer.join()
    records = Ledger.open(storage_url(tmp_path / "l.db"), "t").records()
    victim = [r for r in records if ToySpace().to_string(r.arch) == (tmp_path / "victim").read_text()]
    assert len(records) == 12 and len(victim) == 1 and all(r.finished for r in records)
    reference = SearchLoop(ToySpace(), toy_strategy(), ToyEvaluator(), Ledger.create(None, "t", {}),
                           budget=Budget(12)).run()
    assert {r.arch.key for r in records} == {r.arch.key for r in reference.records}   # nothing lost
    (victim,) = victim
    others = [r for r in records if r is not victim]
    assert all(r.state == "complete" and r.value == score(ToySpace().chain(r.arch)) and not r.failures
               for r in others)
    if max_retries:   # it ran again and completed; the death is in the ledger
        assert victim.state == "complete" and victim.value == score(ToySpace().chain(victim.arch))
        assert [f.split(":")[0] for f in victim.failures] == ["WorkerCrashedError"]
        assert result.failures == 0
    else:             # no retry: the candidate failed, the search went on
        assert victim.state == "failed" and victim.failures == []
        assert victim.error.startswith("WorkerLost: the worker died in each of 1 attempts; the last: "
                                       "WorkerCrashedError")
        assert result.failures == 1


class FirstIsQuick(ToyEvaluator):
    """The first candidate takes 0.2 s, the others 2 s; each logs when it ends."""

    def __init__(self, folder: str):
        super().__init__(log=os.path.join(folder, "ended"))
        self.folder = folder

    def evaluate(self, arch, fidelity=None):
        try:
            os.close(os.open(os.path.join(self.folder, "first"), os.O_CREAT | os.O_EXCL))
            time.sleep(0.2)
        except FileExistsError:
            time.sleep(2.0)
        return super().evaluate(arch, fidelity)


def test_ctrl_c_cancels_the_evaluations_in_flight(cluster, tmp_path):
    def interrupt(record, loop):
        raise KeyboardInterrupt
    url = storage_url(tmp_path / "l.db")
    executor = RayExecutor(workers=2, address=cluster.address)
    with pytest.raises(KeyboardInterrupt):
        SearchLoop(ToySpace(), toy_strategy(), FirstIsQuick(str(tmp_path)), Ledger.create(url, "t", {}),
                   executor=executor, budget=Budget(6), callbacks=[interrupt]).run()
    time.sleep(2.5)   # the cancelled evaluation would have ended by now
    assert len((tmp_path / "ended").read_text().split()) == 1
    assert sorted(r.finished for r in Ledger.open(url, "t").records()) == [False, True]   # runs again on resume
    assert not executor._tasks


class Unpicklable(ToyEvaluator):
    def __init__(self):
        super().__init__()
        self.lock = threading.Lock()


def test_an_evaluator_that_cannot_be_shipped_is_a_config_error(cluster):
    with pytest.raises(ConfigError, match="cannot be sent to Ray workers"):
        RayExecutor(address=cluster.address).submit(evaluate, Unpicklable(), ToySpace().make("abab"))


def history(run: Path):
    """Each row's evaluation, seq, arch, objective, test."""
    return [row[:5] for row in run_history(run)]


ARGS = ["search", "--strategy", "evolution", "--budget", "30", "--seed", "3", "--quiet"]


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, data_root) -> Path:
    """The search of ARGS on the local (in-process) executor."""
    out = tmp_path_factory.mktemp("local") / "run"
    assert main(ARGS + ["--out", str(out)]) == 0
    return out


def test_local_and_ray_give_identical_results(cluster, local_run, tmp_path, capsys):
    assert main(ARGS + ["--out", str(tmp_path / "ray"), "--executor", "ray", "--ray-address", cluster.address]) == 0
    assert "1 (ray), busy evaluating" in capsys.readouterr().out
    assert history(tmp_path / "ray") == history(local_run)
    assert json.loads((tmp_path / "ray" / "best.json").read_text()) == json.loads((local_run / "best.json").read_text())


def test_the_readme_cluster_command_with_a_postgresql_ledger(cluster, postgres, local_run, tmp_path, capsys):
    """README, "Running on a cluster": Ray workers, the ledger on PostgreSQL."""
    out = tmp_path / "pg"
    assert main(ARGS + ["--out", str(out), "--executor", "ray", "--ray-address", cluster.address,
                        "--storage", postgres.url]) == 0
    assert not (out / "ledger.db").exists()
    assert json.loads((out / "run.json").read_text())["storage"] == without_password(postgres.url)
    assert history(out) == history(local_run)


def test_a_killed_driver_resumes_from_the_ledger(cluster, local_run, tmp_path, capsys):
    out = tmp_path / "killed"
    ray_args = ["--executor", "ray", "--ray-address", cluster.address]
    driver = subprocess.Popen([sys.executable, "-m", "flownas"] + ARGS + ["--out", str(out)] + ray_args,
                              env=cluster.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while driver.poll() is None and finished_trials(out / "ledger.db") < 4 and time.monotonic() < deadline:
        time.sleep(0.005)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    killed_at = finished_trials(out / "ledger.db")
    assert 4 <= killed_at < 30, driver.stderr.read().decode()[-2000:]

    # the recorded ray executor; its flags apply to it (they were refused as flags of a default local one)
    assert main(["search", "--out", str(out), "--resume", "--num-cpus", "1", "--quiet"]) == 0
    assert f"; {killed_at} replayed from the ledger" in capsys.readouterr().out
    assert history(out) == history(local_run)


def test_sigterm_ends_a_ray_search_with_the_flownas_line(cluster, tmp_path):
    """ray.init installs a driver SIGTERM handler that exits 1 at once; the command's own is kept."""
    out = tmp_path / "term"
    driver = subprocess.Popen([sys.executable, "-m", "flownas", "search", "--strategy", "random", "--budget", "5000",
                               "--quiet", "--out", str(out), "--executor", "ray", "--ray-address", cluster.address],
                              env=cluster.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while driver.poll() is None and finished_trials(out / "ledger.db") < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    # a SIGTERM before the search runs would test Python's default handler, not the command's
    assert driver.poll() is None and finished_trials(out / "ledger.db") >= 3, "the search did not get going"
    driver.send_signal(signal.SIGTERM)
    code, err = driver.wait(60), driver.stderr.read()
    assert code == 143 and err.strip().splitlines()[-1] == "flownas: terminated (continue it with --resume)", err


def test_check_asks_the_cluster_for_the_resources(cluster, capsys, tmp_path):
    """--check ("worth it before a cluster job") connects and compares: the cluster has 2 GPUs."""
    from cli_run import one_line_error, run
    check = ["search", "--strategy", "evolution", "--budget", "3", "--executor", "ray", "--ray-address",
             cluster.address, "--out", tmp_path / "run", "--check"]
    err = one_line_error(capsys, *check, "--num-gpus", "3")
    assert "executor.num_gpus: each evaluation asks for 3 GPUs, but the Ray cluster has 2" in err
    code, out, _ = run(capsys, *check, "--num-gpus", "1")
    assert code == 0 and "ray, 1 worker(s)" in out and not (tmp_path / "run").exists()
    assert ray.is_initialized()   # this process's own connection (the fixture's) is left open


def test_check_without_an_address_compares_with_the_instance_it_would_start(capsys, tmp_path, data_root):
    """Before: --check said yes, and the run waited at its first dispatch for a GPU this machine lacks."""
    from cli_run import one_line_error
    was_running = ray.is_initialized()
    with pytest.raises(ConfigError, match=r"^executor.num_gpus: each evaluation asks for 3 GPUs, but Ray's "
                                          r"instance on this machine would have 2 \(local_gpus\)$"):
        RayExecutor(num_gpus=3, local_gpus=2).check()
    RayExecutor(num_gpus=2, local_gpus=2, num_cpus=1, local_cpus=1).check()
    assert ray.is_initialized() == was_running   # nothing started
    import torch
    if not torch.cuda.is_available():
        err = one_line_error(capsys, "search", "--strategy", "evolution", "--budget", "3", "--executor", "ray",
                             "--num-gpus", "1", "--out", tmp_path / "run", "--check")
        assert "but Ray's instance on this machine would have 0 (the GPUs torch sees)" in err


def test_an_address_where_nothing_answers_is_refused_at_once(tmp_path, capsys):
    """Ray retries a wrong HOST:PORT for minutes; the executor asks first, before a run directory exists."""
    with pytest.raises(ConfigError, match=r"^executor.address: no Ray cluster at '127.0.0.1:1': nothing answers"):
        RayExecutor(address="127.0.0.1:1")
    for address in ("127.0.0.1:1", "ray://127.0.0.1:1"):
        code = main(["search", "--strategy", "evolution", "--budget", "3", "--executor", "ray", "--ray-address",
                     address, "--out", str(tmp_path / "run"), "--quiet"])
        assert code == 1 and not (tmp_path / "run").exists()
        assert capsys.readouterr().err.startswith(f"flownas: error: executor.address: no Ray cluster at {address!r}")
    for address in ("garbage:::", "localhost", "http://h:6379", "ray://h"):   # was a ValueError traceback
        with pytest.raises(ConfigError, match=rf"^executor.address: {re.escape(repr(address))} is not auto, "
                                              r"HOST:PORT or ray://HOST:PORT$"):
            RayExecutor(address=address)


def test_executor_flags_and_configuration():
    config = SearchConfig.from_dict({}).with_flags(executor="ray", workers=4, ray_address="auto", num_gpus=0.5,
                                                   num_cpus=2.0)
    assert config.executor.to_config() == {"name": "ray", "workers": 4, "address": "auto", "num_gpus": 0.5,
                                           "num_cpus": 2.0}
    with pytest.raises(ConfigError, match="executor.address: executor 'local' takes no parameter 'address'"):
        SearchConfig.from_dict({}).with_flags(ray_address="auto")
    with pytest.raises(ConfigError, match="executor.num_gpus: expected float"):
        SearchConfig.from_dict({"executor": {"name": "ray", "num_gpus": "one"}})


def test_ray_is_imported_only_by_the_executor():
    code = ("import sys; from flownas.cli import main; from flownas.registry import EXECUTORS; "
            "main(['spaces']); EXECUTORS.get('ray')(workers=2); assert 'ray' not in sys.modules, 'ray imported'")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_missing_data_on_a_worker_says_it_is_the_workers():
    """The driver's shell may have FLOWNAS_DATA while the node's `ray start` did not."""
    import socket
    from flownas.errors import DataError
    from flownas.runtime.ray import _call

    def lookup():
        raise DataError("FLOWNAS_DATA is not set. The tables are not shipped with flownas")
    with pytest.raises(DataError, match=f"^on the Ray worker on {socket.gethostname()}: FLOWNAS_DATA is not set"):
        _call(lookup, (), {})
