import math
import os
import pickle
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from flownas.errors import ConfigError, DataError
from flownas.evaluators.engine.data import random_crop_flip
from flownas.evaluators.engine.train import TrainingDiverged, amp_dtype, lr_at
from flownas.evaluators.training import TrainConfig, TrainingEvaluator
from flownas.registry import EVALUATORS
from flownas.spaces.nb201 import NB201Space

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|skip_connect~2|"
TINY = {"C": 4, "N": 1}
REPO = Path(__file__).resolve().parents[1]


def evaluator(dataset, **options):
    options = {"epochs": 2, "batch_size": 32, "model_options": TINY, "num_threads": 1, **options}
    return TrainingEvaluator(dataset, **options)


def without_time(metrics):
    return {k: v for k, v in metrics.items() if k != "train_time_s"}


@pytest.fixture(scope="module")
def arch():
    return NB201Space().from_string(ARCH)


@pytest.fixture(scope="module")
def reference(tiny_images, arch):
    """An uninterrupted 3-epoch run without checkpoints."""
    return evaluator(tiny_images, epochs=3).evaluate(arch)


def test_registered_and_reports_everything(tiny_images, arch, reference):
    assert EVALUATORS.get("training") is TrainingEvaluator
    m = reference.metrics
    assert 0 <= m["val_acc"] <= 100 and m["epochs"] == 3
    assert len(m["loss_curve"]) == len(m["val_acc_curve"]) == 3
    assert all(math.isfinite(v) for v in m["loss_curve"])
    model = NB201Space().to_model(arch, num_classes=10, **TINY)
    assert m["params"] == sum(p.numel() for p in model.parameters())
    assert m["flops"] > 0 and m["train_time_s"] > 0 and reference.cost_s == m["train_time_s"]
    assert reference.info["train_images"] == 96 and reference.info["val_images"] == 48


def test_same_seed_same_metrics(tiny_images, arch, reference):
    again = evaluator(tiny_images, epochs=3).evaluate(arch)
    assert without_time(again.metrics) == without_time(reference.metrics)
    other = evaluator(tiny_images, epochs=3, seed=1).evaluate(arch)
    assert other.metrics["loss_curve"] != reference.metrics["loss_curve"]


def test_learns_the_synthetic_classes(tiny_images, arch):
    r = evaluator(tiny_images, epochs=4, batch_size=16, model_options={"C": 8, "N": 1}).evaluate(arch)
    assert r.metrics["loss_curve"][-1] < r.metrics["loss_curve"][0]
    assert r.metrics["val_acc"] > 20       # chance is 10%


def test_fidelity_is_the_epoch_count(tiny_images, arch):
    r = evaluator(tiny_images, epochs=3).evaluate(arch, fidelity=1)
    assert r.metrics["epochs"] == 1 and len(r.metrics["loss_curve"]) == 1
    for bad in (0, 1.5, "2", True):
        with pytest.raises(ConfigError, match="whole number of epochs"):
            evaluator(tiny_images).evaluate(arch, fidelity=bad)


def test_adamw_step_schedule_and_no_augmentation(tiny_images, arch):
    r = evaluator(tiny_images, optimizer="adamw", schedule="step", step_size=1, augment=False,
                  label_smoothing=0.1, grad_clip=None, max_train_images=40).evaluate(arch)
    assert r.info["train_images"] == 40
    assert all(math.isfinite(v) for v in r.metrics["loss_curve"])


def test_a_diverged_training_is_an_error_not_a_chance_accuracy(tiny_images, arch):
    # a NaN network predicts one class for everything: ~10 % "accuracy" that must not rank as a result
    with pytest.raises(TrainingDiverged, match="epoch 1 is not finite"):
        evaluator(tiny_images, epochs=1, lr=1e30, grad_clip=None, max_train_images=64).evaluate(arch)


def test_mixed_precision_uses_bfloat16_where_there_is_one():
    # float16 overflows on NB201 cells like x + avg_pool(x) (seen on a GPU): bfloat16 has float32's range
    assert amp_dtype(torch.device("cpu")) == torch.bfloat16
    if torch.cuda.is_available():
        assert amp_dtype(torch.device("cuda")) == (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)


def test_learning_rate_schedules():
    cos = TrainConfig(schedule="cosine", lr=0.2)
    assert lr_at(cos, 0, 10) == pytest.approx(0.2)
    assert lr_at(cos, 5, 10) == pytest.approx(0.1)
    assert lr_at(cos, 10, 10) == pytest.approx(0.0)
    step = TrainConfig(schedule="step", step_size=2, gamma=0.5)     # lr defaults to 0.1 for sgd
    assert [lr_at(step, e, 6) for e in (0, 1.9, 2, 4.5)] == pytest.approx([0.1, 0.1, 0.05, 0.025])
    assert lr_at(TrainConfig(optimizer="adamw", schedule="constant"), 3, 6) == pytest.approx(1e-3)


@pytest.mark.parametrize("options, message", [
    ({"optimizer": "rmsprop"}, "optimizer='rmsprop': must be one of sgd, adamw"),
    ({"schedule": "linear"}, "schedule='linear'"),
    ({"epochs": 0}, "epochs=0: must be a positive integer"),
    ({"batch_size": 1}, "batch_size=1"),
    ({"device": "tpu"}, "device='tpu'"),
    ({"warmup": 3}, "unknown training options warmup"),
])
def test_bad_options_are_named(options, message):
    with pytest.raises(ConfigError, match=message):
        TrainingEvaluator("cifar10-mini", **options)


def test_missing_dataset_is_a_clear_error(tmp_path, arch):
    with pytest.raises(DataError, match=r"no_such\.npz does not exist"):
        evaluator(tmp_path / "no_such.npz").evaluate(arch)


def test_pickles_as_configuration_only(tiny_images, arch, reference):
    ev = evaluator(tiny_images, epochs=3)
    ev.evaluate(arch)                                   # loads and caches the data in this process
    blob = pickle.dumps(ev)
    assert len(blob) < 2000                             # no images inside
    assert without_time(pickle.loads(blob).evaluate(arch).metrics) == without_time(reference.metrics)


def test_random_crop_flip():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 5)
    out = random_crop_flip(x, torch.Generator().manual_seed(0), padding=0)
    for i in range(2):                                  # no padding: identity or a horizontal flip
        assert torch.equal(out[i], x[i]) or torch.equal(out[i], x[i].flip(-1))
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a, b = random_crop_flip(x, g1), random_crop_flip(x, g2)
    assert a.shape == x.shape and torch.equal(a, b)
    # every crop is a window of the zero-padded image
    padded = torch.nn.functional.pad(x, (4,) * 4)
    windows = [padded[0, :, dy:dy + 4, dx:dx + 5] for dy in range(9) for dx in range(9)]
    assert any(torch.equal(a[0], w) or torch.equal(a[0], w.flip(-1)) for w in windows)


def test_interrupted_training_resumes_from_its_checkpoint(tiny_images, arch, reference, tmp_path):
    ev = evaluator(tiny_images, epochs=3, checkpoint_dir=tmp_path)

    def crash(epoch):
        if epoch == 1:
            raise KeyboardInterrupt("simulated kill after epoch 1")
    with pytest.raises(KeyboardInterrupt):
        ev.evaluate(arch, on_epoch_end=crash)
    ckpt = ev.checkpoint_path(arch)
    assert ckpt.is_file() and not list(tmp_path.glob(".*.tmp"))
    resumed = ev.evaluate(arch)
    assert resumed.info["resumed_from_epoch"] == 1
    assert without_time(resumed.metrics) == without_time(reference.metrics)
    # a finished run is answered from its checkpoint
    again = ev.evaluate(arch)
    assert again.info["resumed_from_epoch"] == 3
    assert without_time(again.metrics) == without_time(reference.metrics)


def test_killed_process_resumes_from_its_checkpoint(tiny_images, arch, reference, tmp_path):
    ev = evaluator(tiny_images, epochs=3, checkpoint_dir=tmp_path)
    script = textwrap.dedent(f"""
        import pickle, sys, time
        ev = pickle.loads({pickle.dumps(ev)!r})
        from flownas.spaces.nb201 import NB201Space
        arch = NB201Space().from_string({ARCH!r})
        def slow(epoch):
            time.sleep(30)       # after the first checkpoint: wait here to be killed
        ev.evaluate(arch, on_epoch_end=slow)
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", script], env=env)
    ckpt = ev.checkpoint_path(arch)
    try:
        deadline = time.monotonic() + 120
        while not ckpt.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ckpt.exists(), "the child wrote no checkpoint"
    finally:
        child.kill()
        child.wait()
    assert child.returncode != 0                       # killed, not finished
    resumed = ev.evaluate(arch)
    assert resumed.info["resumed_from_epoch"] == 1
    assert without_time(resumed.metrics) == without_time(reference.metrics)


def test_unreadable_checkpoint_restarts_training(tiny_images, arch, reference, tmp_path):
    ev = evaluator(tiny_images, epochs=3, checkpoint_dir=tmp_path)
    ev.checkpoint_path(arch).write_bytes(b"half a checkpoint")
    with pytest.warns(UserWarning, match="ignoring unreadable checkpoint"):
        r = ev.evaluate(arch)
    assert r.info["resumed_from_epoch"] == 0
    assert without_time(r.metrics) == without_time(reference.metrics)


def test_trains_an_nb101_cell(tiny_images):
    from flownas.registry import get_space
    arch = get_space("nb101").sample(np.random.default_rng(0))
    r = evaluator(tiny_images, epochs=1, model_options={"stem_channels": 8, "num_stacks": 1,
                                                        "modules_per_stack": 1}).evaluate(arch)
    assert math.isfinite(r.metrics["train_loss"]) and r.metrics["params"] > 0
