"""GPU check of the training path: NB201 candidates trained with
``TrainingEvaluator`` on cifar10-mini through Ray on a GPU, time per epoch
against the CPU (BENCHMARKS.md, "Training on a GPU through Ray").

Protocol: ``--candidates`` NB201 cells drawn with ``default_rng(--seed)``, the
real NB201 network (C=16, N=5, 10 classes), ``--epochs`` epochs of SGD (the
``TrainConfig`` defaults: batch 128, lr 0.1 cosine, crop + flip, seed 0) on
the cifar10-mini training images, validation on its held-out images.

1. ``ray``: every candidate is a Ray task of ``RayExecutor(workers=W,
   num_gpus=1/W)`` on a local instance that detects the GPU (fractions put W
   candidates on one GPU at once); each task reports the device it trained
   on, Ray's GPU ids and ``CUDA_VISIBLE_DEVICES``.
2. ``search``: the same through ``flownas search``'s code (``run_search``,
   random strategy, SQLite ledger, Ray executor), end to end.
3. ``cpu``: the first candidate trained in-process on the CPU with
   ``--cpu-threads`` torch threads for one epoch on ``--cpu-images`` images;
   compared with the GPU by training images per second.

Prints one JSON document (``--json`` writes it too).

    RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 FLOWNAS_DATA=... python benchmarks/bench_gpu.py --json gpu.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np


def placement(evaluator, arch):
    """Run on a Ray worker: train, and say where."""
    import ray

    from flownas.runtime.base import evaluate
    evaluation = evaluate(evaluator, arch)
    return {"metrics": evaluation.result.metrics, "info": evaluation.result.info, "wall_s": evaluation.wall_s,
            "ray_gpu_ids": [str(g) for g in ray.get_gpu_ids()],
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}


def summary(metrics, info) -> dict:
    epochs = metrics["epochs"]
    return {"val_acc": round(metrics["val_acc"], 2), "val_acc_curve": [round(a, 2) for a in metrics["val_acc_curve"]],
            "params": metrics["params"], "s_per_epoch": round(metrics["train_time_s"] / epochs, 3),
            "train_images_per_s": round(info["train_images_per_s"], 1), "device": info["device"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--candidates", type=int, default=4)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--workers", type=int, default=4, help="candidates in flight, sharing one GPU")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cpu-threads", type=int, default=4)
    p.add_argument("--cpu-images", type=int, default=1024)
    p.add_argument("--skip-search", action="store_true")
    p.add_argument("--local-gpus", type=int, help="GPUs the local Ray instance declares (default: detected; "
                   "a number lets a machine without one try the script)")
    p.add_argument("--max-train-images", type=int, help="train on this many images only (a quick try)")
    p.add_argument("--json")
    args = p.parse_args(argv)

    import ray
    import torch

    from flownas.evaluators.training import TrainingEvaluator
    from flownas.runtime.ray import RayExecutor
    from flownas.search.api import run_search
    from flownas.search.config import SearchConfig
    from flownas.spaces.nb201 import NB201Space

    report = {"protocol": __doc__.split("\n\n")[1], "seed": args.seed, "torch": torch.__version__,
              "cuda": torch.cuda.is_available(),
              "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
              "ray_version": ray.__version__, "epochs": args.epochs, "workers": args.workers}
    space = NB201Space()
    rng = np.random.default_rng(args.seed)
    archs = []
    while len(archs) < args.candidates:
        arch = space.sample(rng)
        if arch not in archs:
            archs.append(arch)

    # 1. Ray tasks, W candidates sharing the GPU
    evaluator = TrainingEvaluator("cifar10-mini", epochs=args.epochs, seed=0, max_train_images=args.max_train_images)
    executor = RayExecutor(workers=args.workers, num_gpus=1 / args.workers, num_cpus=1, local_gpus=args.local_gpus)
    start = time.perf_counter()
    futures = [executor.submit(placement, evaluator, arch) for arch in archs]
    pending = set(futures)
    while pending:   # the executor resolves its futures as it waits on them
        _, pending = executor.wait(pending)
    done = [f.result() for f in futures]
    report["ray_wall_s"] = round(time.perf_counter() - start, 2)
    report["ray_cluster"] = {k: v for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")}
    report["ray"] = [{"arch": space.to_string(a), **summary(d["metrics"], d["info"]),
                      "ray_gpu_ids": d["ray_gpu_ids"], "cuda_visible_devices": d["cuda_visible_devices"]}
                     for a, d in zip(archs, done)]
    executor.shutdown()
    print(json.dumps(report["ray"], indent=1), flush=True)

    # 2. the same through flownas search's code
    if not args.skip_search:
        with tempfile.TemporaryDirectory() as tmp:
            config = SearchConfig.from_dict({
                "space": "nb201", "strategy": "random", "budget": args.candidates, "seed": args.seed,
                "executor": {"name": "ray", "workers": args.workers, "num_gpus": 1 / args.workers,
                             "local_gpus": args.local_gpus},
                "evaluator": {"name": "training", "dataset": "cifar10-mini", "epochs": args.epochs, "seed": 0,
                              "max_train_images": args.max_train_images},
                "out": os.path.join(tmp, "run")})
            start = time.perf_counter()
            result, run, files = run_search(config)
            report["search_wall_s"] = round(time.perf_counter() - start, 2)
            report["search"] = [{"arch": space.to_string(r.arch), "state": r.state, "val_acc": r.value,
                                 "s_per_epoch": round(r.metrics.get("train_time_s", float("nan")) / args.epochs, 3)}
                                for r in result.records]
            report["search_files"] = sorted(p.name for p in files.values())
        print(json.dumps(report["search"], indent=1), flush=True)

    # 3. the first candidate on the CPU
    torch.set_num_threads(args.cpu_threads)
    cpu = TrainingEvaluator("cifar10-mini", epochs=1, seed=0, device="cpu", max_train_images=args.cpu_images,
                            num_threads=args.cpu_threads)
    result = cpu.evaluate(archs[0])
    cpu_summary = summary(result.metrics, result.info)
    full = report["ray"][0]
    images = result.info["train_images"]
    report["cpu"] = {"arch": space.to_string(archs[0]), "threads": args.cpu_threads, "train_images": images,
                     "train_images_per_s": cpu_summary["train_images_per_s"], "device": cpu_summary["device"]}
    report["gpu_over_cpu_images_per_s"] = round(full["train_images_per_s"] / cpu_summary["train_images_per_s"], 1)
    print(json.dumps({k: report[k] for k in ("cpu", "gpu_over_cpu_images_per_s")}, indent=1), flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
