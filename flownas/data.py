"""``flownas data``: list the benchmark tables and fetch one, verified.

A fetch streams to a temporary file beside the target, checks the sha256
(given, or pinned in ``TABLES``), then renames atomically: a failed or
mismatched download never leaves a partial table behind. The table is written
as any new file is (``0666`` less the umask), so the other users of a shared
data folder can read it.

``check_output`` and ``save_output`` are the output-file checks that the
commands writing a result (``bench predictors --json``, ``bench search
--json``, ``fit-latency --out``, ``graph --png``) share: the path is checked
before the work starts, and a write that still fails keeps the result in a
temporary file instead of throwing it away.
"""
from __future__ import annotations

import hashlib
import os
import re
import secrets
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable

from .benchmarks.base import DATA_ENV, TABLES, data_root
from .errors import DataError, FlownasError

_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _fetch_root() -> Path:
    """``$FLOWNAS_DATA`` for a fetch: created when it does not exist yet."""
    value = os.environ.get(DATA_ENV)
    if not value:
        raise DataError(f"{DATA_ENV} is not set: set it to the folder to fetch the tables into")
    root = Path(value).expanduser()
    if root.exists() and not root.is_dir():
        raise DataError(f"{DATA_ENV}={value} is not a directory")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the data folder {DATA_ENV}={value} ({exc.strerror or exc})") from None
    return root


def _open_new(folder: Path, prefix: str) -> tuple[int, str]:
    """A new temporary file in ``folder``, mode 0666 less the umask (mkstemp's is 0600)."""
    for _ in range(100):
        path = folder / f"{prefix}{secrets.token_hex(6)}"
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), str(path)
        except FileExistsError:
            continue
    raise DataError(f"cannot create a temporary file in {folder}")


def fetch(name: str, url: str, sha256: str | None = None, root: Path | None = None,
          timeout: float = 60.0) -> Path:
    """Download ``url`` to ``$FLOWNAS_DATA/name`` if its sha256 matches."""
    if sha256 is not None and not _SHA256.fullmatch(sha256):
        raise DataError(f"--sha256 {sha256!r} is not a sha256 (64 hexadecimal digits)")
    expected = (sha256 or TABLES.get(name) or "").lower()
    if not expected:
        raise DataError(f"no sha256 known for {name!r}: pass --sha256 "
                        f"(known tables: {', '.join(sorted(TABLES))})")
    if not urllib.parse.urlsplit(url).scheme:
        raise DataError(f"--url {url!r} is not a URL (unknown URL type): give it with its scheme, "
                        f"e.g. https://HOST/PATH or file:///PATH")
    if root is None:
        root = _fetch_root()
    target = (root / name).resolve()
    if root.resolve() not in target.parents:
        raise DataError(f"table name {name!r} leaves the data directory")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create {target.parent} ({exc.strerror or exc})") from None
    fd, tmp = _open_new(target.parent, f".{target.name}.")
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as resp:
                    for block in iter(lambda: resp.read(1 << 20), b""):
                        h.update(block)
                        out.write(block)
            except (OSError, ValueError) as exc:  # URLError, HTTPError, timeouts; ValueError: a malformed URL
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


def status(root: Path | None = None, verify: bool = False) -> list[dict]:
    """Each known table: present or not, and its size. With ``verify``, each
    present table is hashed, and ``state`` says ``ok``, ``MISSING``, ``DIFFERS``
    (its sha256 is not the pinned one: ``actual_sha256``) or ``ERROR`` (it
    cannot be read: ``problem``). Without it a present table's ``state`` is
    ``present``: there, not verified."""
    root = root or data_root(required=False)
    rows = []
    for name, sha in sorted(TABLES.items()):
        path = root / name if root else None
        present = bool(path and path.is_file())
        row = {"table": name, "present": present,
               "bytes": path.stat().st_size if present else None, "sha256": sha,
               "state": "present" if present else "MISSING"}
        if present and verify:
            try:
                row["actual_sha256"] = sha256_of(path)
            except OSError as exc:
                row["state"], row["problem"] = "ERROR", f"cannot be read ({exc.strerror or exc})"
            else:
                row["state"] = "ok" if row["actual_sha256"] == sha else "DIFFERS"
        rows.append(row)
    return rows


def status_lines(root: Path | None = None) -> list[str]:
    """What ``flownas data list`` prints: a line per table, every present one verified
    (``ok``, ``MISSING``, ``DIFFERS`` from the pinned sha256, ``ERROR`` unreadable)."""
    lines = []
    for row in status(root, verify=True):
        line = f"{row['state']:<7} {row['table']:<50} {row['sha256'][:16]}…"
        if row["state"] == "DIFFERS":
            line += (f" differs from the pinned sha256: it is {row['actual_sha256'][:16]}… "
                     f"({row['bytes']:,} bytes); fetch it again")
        elif row["state"] == "ERROR":
            line += f" {row['problem']}"
        lines.append(line)
    return lines


# -- output files of the commands that compute a result ----------------------------------
def check_output(path: str | Path, flag: str) -> Path:
    """``path`` as a ``Path`` if a file can be written there; else a ``FlownasError``
    that names ``flag`` and the reason. Run it before the work, so that a typo
    costs nothing. Creates nothing: a missing folder is checked through the
    nearest one that exists (a probe file is created and removed there)."""
    path = Path(path).expanduser()
    what = f"cannot write {flag} {path}"
    if path.is_dir():
        raise FlownasError(f"{what}: it is a directory (give a file name inside it)")
    if path.exists() and not os.access(path, os.W_OK):
        raise FlownasError(f"{what}: the file is not writable")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        if folder.is_symlink():
            raise FlownasError(f"{what}: {folder} is a broken link")
        folder = folder.parent
    if not folder.is_dir():
        raise FlownasError(f"{what}: {folder} is not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".flownas-probe-", dir=folder)
    except OSError as exc:
        raise FlownasError(f"{what}: cannot create files in {folder} ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)
    return path


def save_output(path: str | Path, flag: str, write: Callable[[Path], None]) -> Path:
    """``write(path)`` after creating its folder. If that fails (the disk filled,
    the folder went away), the result is written to a temporary file instead and
    the error names it: computed results are never thrown away."""
    path = Path(path).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path)
        return path
    except OSError as exc:
        reason = exc.strerror or str(exc)
    except RuntimeError as exc:   # torch.save reports a failed open as RuntimeError
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    fd, rescue = tempfile.mkstemp(prefix="flownas-", suffix=path.suffix or ".out")
    os.close(fd)
    try:
        write(Path(rescue))
    except (OSError, RuntimeError) as exc:
        raise FlownasError(f"cannot write {flag} {path} ({reason}), nor a copy in {rescue} "
                           f"({exc}): the result is lost") from None
    raise FlownasError(f"cannot write {flag} {path} ({reason}); the result is saved in {rescue} instead")
