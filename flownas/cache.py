"""An on-disk cache for results that are expensive and deterministic (DELE's
pre-training: about 110 s of the 210 s main job), so that later processes
reuse them.

An entry is keyed by what decides the result *and* by the code that computes
it (``code_fingerprint``: the source of the modules involved and the torch
version), so a change of either is a miss, never a stale hit. Where:
``FLOWNAS_CACHE`` (a folder; ``off`` turns the cache off), else
``$XDG_CACHE_HOME/flownas``, else ``~/.cache/flownas``. Entries hold plain
data and tensors only (read with ``torch.load(weights_only=True)``); writes
are atomic; an unreadable entry is recomputed and an unwritable cache only
warns: the cache can make a run faster, never make it fail.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import warnings
from pathlib import Path
from typing import Any

CACHE_ENV = "FLOWNAS_CACHE"
OFF = ("off", "0", "none", "false")


def cache_dir() -> Path | None:
    """The cache folder, or None when ``FLOWNAS_CACHE=off``."""
    value = os.environ.get(CACHE_ENV)
    if value is not None and value.strip().lower() in OFF:
        return None
    if value:
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "flownas"


@functools.lru_cache(maxsize=None)
def code_fingerprint(*packages: str) -> str:
    """sha256 of the source of every module of ``packages`` and of the torch version."""
    import importlib

    import torch
    h = hashlib.sha256(torch.__version__.encode())
    for name in packages:
        module = importlib.import_module(name)
        root = Path(module.__file__).parent if module.__file__.endswith("__init__.py") else Path(module.__file__)
        for path in sorted(root.rglob("*.py")) if root.is_dir() else [root]:
            h.update(str(path.relative_to(root.parent)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def off_unless_set() -> None:
    """Turn the cache off in this process unless ``FLOWNAS_CACHE`` names one:
    for benchmarks, whose timings include what the cache would skip."""
    os.environ.setdefault(CACHE_ENV, "off")


def _path(kind: str, key: str) -> Path | None:
    root = cache_dir()
    return None if root is None else root / kind / f"{key}.pt"


def load(kind: str, key: str) -> Any | None:
    """The entry ``kind/key``, or None (absent, cache off, or unreadable)."""
    import torch
    path = _path(kind, key)
    if path is None or not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:   # truncated or foreign file: recompute (and overwrite it)
        warnings.warn(f"ignoring the unreadable cache entry {path} ({type(exc).__name__}: {exc})",
                      RuntimeWarning, stacklevel=2)
        return None


def store(kind: str, key: str, value: Any) -> Path | None:
    """Write ``value`` as ``kind/key`` atomically; None when the cache is off or unwritable."""
    import torch
    path = _path(kind, key)
    if path is None:
        return None
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(value, tmp)
        os.replace(tmp, path)   # readers see the old entry or the whole new one
    except (OSError, RuntimeError) as exc:   # torch.save reports some write errors as RuntimeError
        warnings.warn(f"could not write the cache entry {path} ({exc}); set {CACHE_ENV} to a writable "
                      f"folder, or {CACHE_ENV}=off", RuntimeWarning, stacklevel=2)
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        return None
    return path
