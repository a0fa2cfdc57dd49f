"""Latency prediction: the shared log-target option of the neural predictors,
and benchmarks/bench_latency_prediction.py on a few networks."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from flownas.registry import PREDICTORS
from flownas.spaces.nb201 import NB201Space

ROOT = Path(__file__).resolve().parents[1]


def _cells(n, seed=0):
    rng = np.random.default_rng(seed)
    return [NB201Space().sample(rng) for _ in range(n)]


@pytest.mark.parametrize("name", ["flowerformer", "narformer_v2"])
def test_log_transform_is_fitting_log_targets(name):
    cls = PREDICTORS.get(name)
    archs = _cells(24)
    y = np.exp(np.random.default_rng(1).normal(1.0, 0.5, len(archs)))
    params = {**cls.quick_params, "epochs": 3, "seed": 0}
    logged = cls(target_transform="log", **params).fit(archs, y)
    plain = cls(**params).fit(archs, np.log(y))
    test = _cells(10, seed=5)
    np.testing.assert_allclose(logged.predict(test), np.exp(plain.predict(test)), rtol=1e-12)
    mean, std = logged.predict(test, return_std=True)
    np.testing.assert_array_equal(mean, logged.predict(test))
    assert logged.get_params()["target_transform"] == "log"


@pytest.mark.parametrize("name", ["flowerformer", "mlp"])
def test_log_transform_needs_positive_targets_and_a_known_name(name):
    cls = PREDICTORS.get(name)
    with pytest.raises(ValueError, match="positive"):
        cls(target_transform="log", **cls.quick_params).fit(_cells(4), [1.0, 2.0, -1.0, 3.0])
    with pytest.raises(ValueError, match="target_transform 'sqrt'"):
        cls(target_transform="sqrt")


# -- the benchmark script ---------------------------------------------------------------
@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_latency_prediction
    yield bench_latency_prediction
    sys.path.remove(str(ROOT / "benchmarks"))


def test_measure_predict_and_summary_resume(bench, tmp_path, capsys):
    measured = tmp_path / "cpu.jsonl"
    argv = ["measure", "--n", "4", "--rounds", "2", "--warmup", "0", "--repeats", "2", "--out", str(measured)]
    bench.main(argv)
    records = [json.loads(line) for line in measured.read_text().splitlines()]
    assert len(records) == 8 and {r["round"] for r in records} == {0, 1}
    assert all(len(r["cpu_ms"]) == 2 and min(r["wall_ms"]) > 0 for r in records)
    bench.main(argv)                                   # everything done: nothing is measured again
    assert len(measured.read_text().splitlines()) == 8

    archs, y = bench.measured_latencies(measured, "cpu_ms")
    assert len(archs) == 4 and len(set(archs)) == 4
    first = sorted({r["arch"] for r in records})[0]      # networks come in the order of their strings
    passes = [v for r in records if r["arch"] == first for v in r["cpu_ms"]]
    assert y[0] == pytest.approx(np.median(passes))
    assert archs[0].attrs[0]["resolution"] in bench.MEASURE_RESOLUTIONS

    bench.main(["noise", str(measured)])
    assert "4 networks measured in rounds 0 and 1" in capsys.readouterr().out

    bench.main(["baseline", "--measured", str(measured), "--devices", "cpu_ms", "--train", "2", "--test", "2"])
    line = capsys.readouterr().out
    median = np.median(y[np.random.default_rng(0).permutation(4)[:2]])
    truth = y[np.random.default_rng(0).permutation(4)[2:]]
    assert f"MAPE {np.mean(np.abs(median - truth) / truth) * 100:.2f}%" in line

    results = tmp_path / "pred.jsonl"
    bench.main(["predict", "--measured", str(measured), "--predictors", "narformer_v2", "--seeds", "0",
                "--train", "2", "--test", "2", "--param", "epochs=1", "--out", str(results)])
    rec = json.loads(results.read_text())
    assert rec["predictor"] == "narformer_v2" and rec["device"] == "cpu_ms" and rec["n_test"] == 2
    assert rec["params"]["epochs"] == 1 and rec["params"]["target_transform"] == "log"
    assert rec["mape"] >= 0 and 0 <= rec["acc10"] <= 1
    bench.main(["summary", str(results)])
    out = capsys.readouterr().out
    assert "| measured:cpu.jsonl | cpu_ms | narformer_v2 | 0 | 2 / 2 |" in out
