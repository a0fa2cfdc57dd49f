"""Measure the whole-network spaces and their tables (results: BENCHMARKS.md,
"Whole-network spaces: mobilenet, fbnet, transnas").

    FLOWNAS_DATA=/path/to/data PYTHONPATH=. python benchmarks/spaces_networks.py [--batch 8] [--repeats 3] [--threads 1]

For each table (ofa, fbnet, transnas): the time to load it, to build every
architecture it holds (``archs()``) and to look each of them up. For each
space: the parameters of its smallest and largest network and the CPU time of
one forward pass of a batch at the benchmark resolution (median of
``--repeats`` after one warm-up, eval mode, no grad, ``--threads`` torch threads:
one by default, which is steadier than two on a shared 2-core machine).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from flownas.benchmarks.fbnet import FBNetTable
from flownas.benchmarks.ofa import OFATable
from flownas.benchmarks.transnas import TransNASTable
from flownas.spaces.fbnet import BLOCKS, FBNetSpace
from flownas.spaces.mobilenet import MobileNetSpace
from flownas.spaces.transnas import TransNASMacroSpace, TransNASMicroSpace


def seconds(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def table_timings(cls) -> dict:
    load, table = seconds(cls)
    build, archs = seconds(table.archs)
    lookup, _ = seconds(lambda: [table.query(a) for a in archs])
    return {"records": len(archs), "load_s": round(load, 3), "archs_s": round(build, 3),
            "lookup_all_s": round(lookup, 3), "lookup_us_per_arch": round(1e6 * lookup / len(archs), 1)}


def n_params(space, arch, **options) -> int:
    with torch.device("meta"):      # count without allocating
        return sum(p.numel() for p in space.to_model(arch, **options).parameters())


def forward_ms(model, shape, batch, repeats) -> float:
    model.eval()
    x = torch.randn(batch, *shape)
    times = []
    with torch.no_grad():
        model(x)
        for _ in range(repeats):
            times.append(seconds(lambda: model(x))[0])
    return round(1e3 * statistics.median(times), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)

    mb, fb, micro, macro = MobileNetSpace(), FBNetSpace(), TransNASMicroSpace(), TransNASMacroSpace()
    macro_params = {macro.to_string(a): n_params(macro, a) for a in macro.enumerate()}
    extremes = {
        "mobilenet": [(mb.from_record({"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 128}), 128),
                      (mb.from_record({"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5, "r": 224}), 224)],
        "fbnet": [(fb.from_blocks(["skip"] * 22), 32), (fb.from_blocks(["k5_e6"] * 22), 32)],
        "transnas_micro": [(micro.from_string("64-41414-0_00_000"), 256),
                           (micro.from_string("64-41414-3_33_333"), 256)],
        "transnas_macro": [(macro.from_string(min(macro_params, key=macro_params.get)), 256),
                           (macro.from_string(max(macro_params, key=macro_params.get)), 256)],
    }
    spaces = {"mobilenet": mb, "fbnet": fb, "transnas_micro": micro, "transnas_macro": macro}
    networks = {}
    for name, pair in extremes.items():
        space = spaces[name]
        networks[name] = [{"arch": space.to_string(arch), "params": n_params(space, arch),
                           f"forward_ms_batch{args.batch}@{res}": forward_ms(space.to_model(arch), (3, res, res),
                                                                             args.batch, args.repeats)}
                          for arch, res in pair]
    fbnet_blocks = {b: n_params(fb, fb.from_blocks([b] * 22)) for b in BLOCKS}
    report = {
        "date": time.strftime("%Y-%m-%d"), "python": platform.python_version(), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "batch": args.batch, "repeats": args.repeats,
        "tables": {cls.name: table_timings(cls) for cls in (OFATable, FBNetTable, TransNASTable)},
        "networks (smallest, largest)": networks,
        "fbnet params with one block everywhere": fbnet_blocks,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
