"""Cost of NNI spaces through the adapter and of tracing networks into graphs.

For each NNI hub space (default and small configurations) and the ResNet
example: building the model space, then per sample the seconds to build the
network and trace it into an ``Architecture`` (``sample``), to hash it
(``key``), and the graph size. Prints one JSON object.

    PYTHONPATH=. python benchmarks/nni_graph.py --samples 5 --seed 0
"""
from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HUB = "nni.nas.hub.pytorch:"
SPACES = {
    "NasBench201 (C=16, N=5)": (HUB + "NasBench201", {}, (3, 32, 32)),
    "NasBench101 (C=128, 3x3 cells)": (HUB + "NasBench101", {}, (3, 32, 32)),
    "DARTS (C=16, 8 cells)": (HUB + "DARTS", {"width": 16, "num_cells": 8}, (3, 32, 32)),
    "ProxylessNAS (ImageNet)": (HUB + "ProxylessNAS", {}, (3, 224, 224)),
    "MobileNetV3Space (ImageNet)": (HUB + "MobileNetV3Space", {}, (3, 224, 224)),
    "ResNet example": ("resnet_nni:ResNetModelSpace", {}, (3, 32, 32)),
}


def measure(source, kwargs, input_shape, samples: int, seed: int) -> dict:
    from flownas.spaces.nni_adapter import NNISpace, network_of
    space = NNISpace(source, name="bench", input_shape=input_shape, **kwargs)
    t = time.perf_counter()
    space.param_space()                       # builds the model space
    build_s = time.perf_counter() - t
    rng = np.random.default_rng(seed)
    sample_s, key_s, nodes, edges = [], [], [], []
    for _ in range(samples):
        t = time.perf_counter()
        arch = space.sample(rng)
        sample_s.append(time.perf_counter() - t)
        net = network_of(arch)
        t = time.perf_counter()
        net.key
        key_s.append(time.perf_counter() - t)
        nodes.append(arch.num_nodes)
        edges.append(arch.num_edges)
    return {"model_space_s": round(build_s, 2), "decisions": len(space.param_space()),
            "sample_median_s": round(statistics.median(sample_s), 3),
            "key_median_ms": round(1000 * statistics.median(key_s), 1),
            "nodes": [min(nodes), max(nodes)], "edges": [min(edges), max(edges)]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "examples"))
    import torch
    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        from flownas.spaces import nni_adapter
        nni_adapter._nni()
        import_s = time.perf_counter() - t
        results = {name: measure(*spec, args.samples, args.seed) for name, spec in SPACES.items()}
    print(json.dumps({"date": datetime.date.today().isoformat(), "samples": args.samples, "seed": args.seed,
                      "nni_import_s": round(import_s, 1), "torch": torch.__version__, "spaces": results},
                     indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
