"""Figures of the NB201, NB101 and DARTS cell spaces (BENCHMARKS.md, "Cell spaces").

    FLOWNAS_DATA=/path/to/data OMP_NUM_THREADS=1 python benchmarks/bench_cell_spaces.py [section ...]

Sections: nb201 (enumeration, table load + lookup of all 15,625, network
forward for 10/100/120 classes), enum (NB101 enumeration, all fingerprints), tables (load + look up
every record, NB101 and NB301), params (network parameters vs the tables),
forward (one 8x3x32x32 batch per network, CPU). Timings are wall clock and,
in brackets, this process's CPU time (what a shared machine distorts less).
"""
from __future__ import annotations

import contextlib
import statistics
import time

import numpy as np
import torch

from flownas.benchmarks.base import read_jsonl_gz, table_path
from flownas.spaces import nb101
from flownas.spaces.darts import DartsSpace
from flownas.spaces.nb101 import NB101Space, fingerprint, split_depends_on_order


class Timer:
    """Wall and CPU seconds of a block."""

    def __init__(self):
        self.wall = self.cpu = 0.0

    def __str__(self) -> str:
        return f"{self.wall:.2f} s [cpu {self.cpu:.2f} s]"


@contextlib.contextmanager
def timed():
    t = Timer()
    wall, cpu = time.perf_counter(), time.process_time()
    yield t
    t.wall, t.cpu = time.perf_counter() - wall, time.process_time() - cpu


def section_enum() -> None:
    space = NB101Space()
    nb101._classes.cache_clear()   # time the cold call even if sampling built the classes
    nb101._class_ends.cache_clear()
    with timed() as first:
        cells = list(space.enumerate())
    with timed() as hashing:
        hashes = {fingerprint(a) for a in cells}
    with timed() as cached:
        again = sum(1 for _ in space.enumerate())
    table = {r["hash"] for r in read_jsonl_gz(table_path("nasbench101/nb101_subset20k.jsonl.gz"))}
    print(f"nb101 enumerate: {len(cells)} cells in {first} (first call, incl. structure classes); "
          f"{again} in {cached} (cached classes)")
    print(f"nb101 fingerprints: {len(hashes)} distinct of {len(cells)}; {hashing.wall / len(cells) * 1e6:.0f} us "
          f"[cpu {hashing.cpu / len(cells) * 1e6:.0f} us] per cell; table hashes found: {len(table & hashes)}/{len(table)}")


def section_tables() -> None:
    from flownas.benchmarks.nb101 import NB101Table
    from flownas.benchmarks.nb301 import NB301Table
    for cls in (NB101Table, NB301Table):
        with timed() as load:
            table = cls()
        with timed() as lookup:
            archs = table.archs()
            for a in archs:
                table.query(a)
        print(f"{table.name}: load {load}; archs() + query all {len(archs)}: {lookup} "
              f"({lookup.wall / len(archs) * 1e6:.0f} us per record)")
    space = DartsSpace()
    rows = list(read_jsonl_gz(table_path("nasbench301_darts/nb301_zc_subset.jsonl.gz")))
    exact = sum([list(p) for p in space.to_genotype(space.from_genotype(r["genotype"])).normal]
                == r["genotype"]["normal"] for r in rows)
    print(f"darts genotype round trips: {exact}/{len(rows)} exact")


def _count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def section_params(sample: int = 1000, seed: int = 0) -> None:
    space = NB101Space()
    rows = list(read_jsonl_gz(table_path("nasbench101/nb101_subset20k.jsonl.gz")))
    rng = np.random.default_rng(seed)
    sensitive, others = [], []
    for r in rows:
        a = space.from_spec(r["matrix"], r["ops"])
        if split_depends_on_order(a, r["matrix"]):
            sensitive.append((a, r))
        else:
            others.append((a, r))
    picked = sensitive + [others[i] for i in rng.choice(len(others), sample, replace=False)]
    bad = []
    for a, r in picked:
        with torch.device("meta"):
            if _count(space.to_model(a)) != r["params"]:
                bad.append(r["hash"])
    print(f"nb101 params: {len(picked) - len(bad)}/{len(picked)} equal to the table "
          f"({len(sensitive)} cells whose channel split depends on the vertex order + {sample} random, seed {seed})"
          + (f"; differ: {bad[:5]}" if bad else ""))
    darts = DartsSpace()
    rows = list(read_jsonl_gz(table_path("nasbench301_darts/nb301_zc_subset.jsonl.gz")))
    bad = []
    for r in rows:
        with torch.device("meta"):
            model = darts.to_model(darts.from_genotype(r["genotype"]), C=32, layers=8, affine=False)
        if _count(model) != round(r["params_m"] * 1e6):
            bad.append(r["genotype"])
    print(f"darts params (C=32, layers=8, affine=False): {len(rows) - len(bad)}/{len(rows)} equal to the table")


def _forward_s(model, repeats: int = 3) -> str:
    """Median wall [CPU] seconds of one forward pass of a 8x3x32x32 batch."""
    model.eval()
    x = torch.randn(8, 3, 32, 32)
    times = []
    with torch.no_grad():
        model(x)
        for _ in range(repeats):
            with timed() as t:
                model(x)
            times.append(t)
    return f"{statistics.median(t.wall for t in times):.3f} [{statistics.median(t.cpu for t in times):.3f}]"


def section_forward() -> None:
    nb101 = NB101Space()
    rng = np.random.default_rng(0)
    seven = [a for a in (nb101.sample(rng) for _ in range(50)) if a.num_nodes == 7][:3]
    t = [_forward_s(nb101.to_model(a)) for a in seven]
    print(f"nb101 network (128 channels, 3x3 cells), 3 random 7-vertex cells: forward of 8x3x32x32 "
          f"{', '.join(t)} s (torch threads {torch.get_num_threads()})")
    darts = DartsSpace()
    archs = [darts.sample(rng) for _ in range(3)]
    for options in ({}, {"C": 36, "layers": 20, "auxiliary": True}):
        t = [_forward_s(darts.to_model(a, **options)) for a in archs]
        print(f"darts network {options or '(defaults C=16, layers=8)'}, 3 random genotypes: forward of "
              f"8x3x32x32 {', '.join(t)} s")


def section_nb201() -> None:
    from flownas.benchmarks.nb201 import NB201Table
    from flownas.spaces.nb201 import NB201Space
    space = NB201Space()
    with timed() as enum:
        cells = list(space.enumerate())
    with timed() as load:
        table = NB201Table()
    with timed() as lookup:
        found = sum(1 for a in cells if table.query(a))
    print(f"nb201 enumerate: {len(cells)} cells ({len(set(cells))} distinct) in {enum}")
    print(f"nb201 table: load {load}; query all {found}/{len(cells)} enumerated cells: {lookup} "
          f"({lookup.wall / len(cells) * 1e6:.0f} us per cell); load + lookup: "
          f"{load.wall + lookup.wall:.2f} s [cpu {load.cpu + lookup.cpu:.2f} s]")
    arch = space.from_string("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")  # the heaviest
    for classes in (10, 100, 120):
        print(f"nb201 network ({classes} classes, C=16, N=5, all nor_conv_3x3): forward of 8x3x32x32 "
              f"{_forward_s(space.to_model(arch, num_classes=classes))} s")


SECTIONS = {"nb201": section_nb201, "enum": section_enum, "tables": section_tables, "params": section_params, "forward": section_forward}

def parse_args(argv=None):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sections", nargs="*", metavar="SECTION",
                    help=f"which figures ({', '.join(SECTIONS)}; default all, in this order)")
    args = ap.parse_args(argv)
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        ap.error(f"unknown section {', '.join(unknown)} (known: {', '.join(SECTIONS)})")
    return args


if __name__ == "__main__":
    for name in parse_args().sections or list(SECTIONS):
        SECTIONS[name]()
