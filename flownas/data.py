"""``flownas data``: list the benchmark tables and fetch one, verified.

A fetch streams to a temporary file beside the target, checks the sha256
(given, or pinned in ``TABLES``), then renames atomically: a failed or
mismatched download never leaves a partial table behind.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path

from .benchmarks.base import DATA_ENV, TABLES, data_root
from .errors import DataError


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def fetch(name: str, url: str, sha256: str | None = None, root: Path | None = None,
          timeout: float = 60.0) -> Path:
    """Download ``url`` to ``$FLOWNAS_DATA/name`` if its sha256 matches."""
    expected = (sha256 or TABLES.get(name) or "").lower()
    if not expected:
        raise DataError(f"no sha256 known for {name!r}: pass --sha256 "
                        f"(known tables: {', '.join(sorted(TABLES))})")
    if root is None:
        root = data_root(required=False)
        if root is None:
            raise DataError(f"{DATA_ENV} must name the data directory to fetch into")
    target = (root / name).resolve()
    if root.resolve() not in target.parents:
        raise DataError(f"table name {name!r} leaves the data directory")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as resp:
                    for block in iter(lambda: resp.read(1 << 20), b""):
                        h.update(block)
                        out.write(block)
            except OSError as exc:  # URLError, HTTPError, timeouts
                raise DataError(f"download of {url} failed: {exc}") from None
            out.flush()
            os.fsync(out.fileno())
        got = h.hexdigest()
        if got != expected:
            raise DataError(f"sha256 mismatch for {url}: expected {expected}, got {got}; nothing written")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def status(root: Path | None = None) -> list[dict]:
    """Each known table: present or not (size only; ``verify`` hashes)."""
    root = root or data_root(required=False)
    rows = []
    for name, sha in sorted(TABLES.items()):
        path = root / name if root else None
        rows.append({"table": name, "present": bool(path and path.is_file()),
                     "bytes": path.stat().st_size if path and path.is_file() else None, "sha256": sha})
    return rows
