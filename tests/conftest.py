"""Shared fixtures. Tests that need the benchmark tables use ``data_root``:
they skip when FLOWNAS_DATA is missing, and fail instead under CI
(FLOWNAS_REQUIRE_DATA=1), so a missing table can never pass silently."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
_SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if not os.environ.get("FLOWNAS_DATA") and _SHARED.is_dir():
    os.environ["FLOWNAS_DATA"] = str(_SHARED)   # as the Makefile does


def require_data(*files: str) -> Path:
    root = os.environ.get("FLOWNAS_DATA")
    missing = [f for f in files if not root or not (Path(root) / f).is_file()]
    if not root or not Path(root).is_dir() or missing:
        msg = f"benchmark data missing (FLOWNAS_DATA={root!r}; {', '.join(missing) or 'directory'})"
        if os.environ.get("FLOWNAS_REQUIRE_DATA"):
            pytest.fail(msg)
        pytest.skip(msg)
    return Path(root)


@pytest.fixture(scope="session")
def data_root() -> Path:
    return require_data()


@pytest.fixture(scope="session")
def nb201_table():
    require_data("nasbench201/nb201_all.jsonl.gz")
    from flownas.benchmarks import load_benchmark
    return load_benchmark("nb201")
