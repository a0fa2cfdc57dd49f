"""The ledger: the durable record of a search, on Optuna's storage.

A search is an Optuna study; each candidate is a trial. The trial is created
(state RUNNING) when the candidate is dispatched, holding the architecture
(JSON), its dispatch number ``seq`` and what the strategy knew about it
(``info``: predicted score, ...), and is finished when the outcome arrives:
COMPLETE with the objective as its value, or FAIL; the ``result`` attribute
holds every metric, the cost, the wall time and the completion number
``done``; ``failures`` lists the worker deaths after which it was retried. A search killed at any point is rebuilt from these records (see
``flownas.search.loop``), and ``optuna.load_study`` or optuna-dashboard open
the same storage.

Storage: a SQLite file by default, any SQLAlchemy URL (PostgreSQL on a
cluster), or ``None`` for an in-memory ledger (benchmarks, tests).

One process drives a search at a time. On PostgreSQL, MySQL and MariaDB the
ledger itself says which (``DriverLock``), so a second driver is refused
from any machine; the run directory's ``run.lock`` does the same on one
machine (``flownas.search.api``).
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import socket
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .arch import Architecture
from .errors import ArchitectureError, ConfigError, FlownasError

FORMAT = "flownas.ledger"
FORMAT_VERSION = 1
META_KEY = "flownas"


@dataclass
class Record:
    """One candidate of a search, as the ledger holds it."""

    seq: int                         # dispatch order, from 0
    trial_id: int
    arch: Architecture
    info: dict[str, Any] = field(default_factory=dict)
    state: str = "running"           # running | complete | failed
    value: float | None = None       # the objective, when complete
    metrics: dict[str, Any] = field(default_factory=dict)
    cost_s: float | None = None
    wall_s: float | None = None
    done: int | None = None          # completion order, from 0
    error: str | None = None
    restarts: int = 0
    failures: list[str] = field(default_factory=list)   # worker deaths before the outcome (retried)
    retried: list[str] = field(default_factory=list)    # errors of earlier attempts that failed (--retry-failed)
    evaluation_info: dict[str, Any] = field(default_factory=dict)   # the evaluator's Result.info
    trial_state: str = "RUNNING"     # the Optuna trial's state as stored

    @property
    def finished(self) -> bool:
        return self.state != "running"


def storage_url(storage: str | Path | None) -> str | None:
    """A SQLAlchemy URL from a URL or a plain file path (SQLite); None stays None.
    A relative SQLite file, as a path or in a ``sqlite:///`` URL, becomes
    absolute (from the current directory, where SQLite would open it)."""
    if storage is None:
        return None
    text = str(storage)
    if "://" in text:
        return _absolute_sqlite_url(text)
    return f"sqlite:///{Path(text).expanduser().resolve()}"


def _absolute_sqlite_url(url: str) -> str:
    """A ``sqlite:///`` URL whose file is relative, with the file made
    absolute; any other URL as it was."""
    if not url.startswith("sqlite"):
        return url
    try:
        from sqlalchemy.engine import make_url
        parsed = make_url(url)
    except Exception:
        return url
    database = parsed.database
    if (not parsed.drivername.startswith("sqlite") or not database or database == ":memory:"
            or database.startswith("file:") or Path(database).is_absolute()):
        return url
    return parsed.set(database=str(Path(database).expanduser().resolve())).render_as_string(hide_password=False)


def absolute_storage(storage: str | None) -> str | None:
    """``storage`` as a run directory records it: a relative SQLite file (a
    plain path or a ``sqlite:///`` URL) made absolute, so a resume or a
    report from another directory opens the same ledger; anything else as given."""
    if storage is None:
        return None
    if "://" in storage:
        return _absolute_sqlite_url(storage)
    return str(Path(storage).expanduser().resolve())


def sqlite_file(storage: str | Path | None) -> Path | None:
    """The file of a SQLite storage (a path or a ``sqlite:///`` URL); None for
    an in-memory one, another database or a URL it cannot read."""
    url = storage_url(storage)
    if url is None or not url.startswith("sqlite"):
        return None
    try:
        from sqlalchemy.engine import make_url
        database = make_url(url).database
    except Exception:
        return None
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def in_memory_sqlite(storage: str | None) -> bool:
    """A SQLite URL of a database in memory (``sqlite://``, ``:memory:``), gone with the process."""
    if storage is None or not str(storage).startswith("sqlite") or "://" not in str(storage):
        return False
    try:
        from sqlalchemy.engine import make_url
        database = make_url(str(storage)).database
    except Exception:
        return False
    return not database or database == ":memory:" or "mode=memory" in str(storage)


def _read_only(path: Path):
    """A read-only connection that leaves no file behind: without a write-ahead
    log (none in use: every commit is in the file) the file is read as
    immutable, since a read-only connection to a WAL database would leave an
    empty -wal and a -shm beside it."""
    import sqlite3
    path = path.resolve()
    in_use = Path(f"{path}-wal").exists()
    return sqlite3.connect(path.as_uri() + ("?mode=ro" if in_use else "?immutable=1"), uri=True, timeout=10)


def _sqlite_header(path: Path) -> bool:
    """The file starts as every SQLite database does (a damaged ledger too, mostly)."""
    with open(path, "rb") as fh:
        return fh.read(16) == b"SQLite format 3\x00"


def check_sqlite_ledger(path: Path, must_exist: bool) -> None:
    """An existing SQLite ledger is read before Optuna opens it (which would
    create a missing file, or write its tables into any SQLite file): a
    missing file (``must_exist``), an empty one, one that is not a ledger or
    one that fails ``PRAGMA quick_check`` raises a one-line FlownasError,
    and nothing is written to it."""
    import sqlite3
    if not path.exists():
        if must_exist:
            raise FlownasError(f"the ledger {path} is missing: restore it from a copy")
        if not path.parent.is_dir():   # SQLite says only "unable to open database file"
            raise ConfigError(f"the ledger {path} cannot be created: its folder {path.parent} does not exist")
        return
    if not path.is_file():
        raise FlownasError(f"the ledger {path} is not a file")
    if path.stat().st_size == 0:
        if must_exist:
            raise FlownasError(f"the ledger {path} is empty (it holds no search): restore it from a copy")
        return
    try:
        connection = _read_only(path)
    except sqlite3.Error as exc:
        raise FlownasError(f"the ledger {path} cannot be opened: {exc}") from None
    try:
        rows = connection.execute("PRAGMA quick_check").fetchall()
        problem = _quick_check_problem(rows)
        tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.OperationalError as exc:   # locked, unreadable: not (known to be) damaged
        if "malformed" not in str(exc) and "not a database" not in str(exc):
            raise FlownasError(f"the ledger {path} cannot be read: {exc}") from None
        problem = str(exc)
    except sqlite3.DatabaseError as exc:   # "database disk image is malformed", "file is not a database"
        problem = str(exc)
    finally:
        connection.close()
    if problem is not None and not must_exist and not _sqlite_header(path):   # a new search's --storage
        raise FlownasError(f"{path} is not a ledger (not a SQLite file): choose another file, or leave it out")
    if problem is not None:
        raise FlownasError(f"the ledger {path} is damaged ({problem}): restore it from a copy")
    if "studies" not in tables and (must_exist or tables):   # a new search may start in a file without tables
        raise FlownasError(f"{path} is not a ledger (a SQLite file without Optuna's tables)"
                           + ("" if must_exist else ": choose another file, or leave it out"))


def _quick_check_problem(rows) -> str | None:
    """The first problem ``PRAGMA quick_check`` reports, on one line; None when it says ok."""
    if [tuple(r) for r in rows] == [("ok",)]:
        return None
    lines = [line.strip() for row in rows for line in str(row[0]).splitlines()]
    lines = [line for line in lines if line and not line.startswith("***")]
    return (lines[0] if lines else "quick_check failed") + (f", and {len(lines) - 1} more" if len(lines) > 1 else "")


def holds_only_an_empty_search(path: Path, study_name: str) -> bool:
    """Whether the SQLite file ``path`` is what a start killed before it
    recorded anything leaves: empty, without tables yet, or an Optuna
    storage whose only study is ``study_name``, without trials. Read only."""
    import sqlite3
    try:
        if path.stat().st_size == 0:
            return True
        connection = _read_only(path)
    except (OSError, sqlite3.Error):
        return False
    try:
        tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            return True
        if not {"studies", "trials"} <= tables:
            return False
        studies = connection.execute("SELECT study_id, study_name FROM studies").fetchall()
        if any(name != study_name for _, name in studies):
            return False
        return all(connection.execute("SELECT count(*) FROM trials WHERE study_id = ?", (sid,)).fetchone()[0] == 0
                   for sid, _ in studies)
    except sqlite3.Error:
        return False
    finally:
        connection.close()


def shown_url(url: str) -> str:
    """The URL with its password as ***, for messages and summaries."""
    try:
        from sqlalchemy.engine import make_url
        return make_url(url).render_as_string(hide_password=True)
    except Exception:   # not even a URL: show it as given
        return url


def without_password(storage: str | None) -> str | None:
    """``storage`` as files keep it (run.json, config.yaml, the ledger's own
    record): without a password. The driver then finds it where it finds
    secrets (PostgreSQL: PGPASSWORD or ~/.pgpass), or ``--storage`` gives
    the whole URL again; a URL with no password is kept as it was written."""
    if storage is None or "://" not in storage:
        return storage
    try:
        from sqlalchemy.engine import URL, make_url
        url = make_url(storage)
    except Exception:
        return storage
    if url.password is None:
        return storage
    return URL.create(url.drivername, url.username, None, url.host, url.port, url.database,
                      url.query).render_as_string(hide_password=False)   # URL.set(password=None) keeps it


# URL query options that say where credentials come from, not which database it is
_CREDENTIAL_OPTIONS = {"read_default_file", "read_default_group", "passfile", "password"}


def same_storage(a: str | Path | None, b: str | Path | None) -> bool:
    """Whether two storages name the same database, credentials aside: the
    password, an option or password file that gives it (MySQL's
    ``read_default_file``, PostgreSQL's ``passfile``), and a user name one of
    them leaves to such a file."""
    def key(storage):   # (which database, user name or None)
        url = storage_url(storage)
        try:
            from sqlalchemy.engine import make_url
            u = make_url(url)
            query = sorted((k, v) for k, v in u.query.items() if k not in _CREDENTIAL_OPTIONS)
            return (u.drivername, u.host, u.port, u.database, query), u.username
        except Exception:   # None, or not a URL: as written
            return url, None
    (where_a, user_a), (where_b, user_b) = key(a), key(b)
    return where_a == where_b and (user_a is None or user_b is None or user_a == user_b)


# what to install when the driver an URL names is missing (SQLAlchemy's default drivers for these schemes)
_DRIVER_HINTS = {
    "postgresql": "PostgreSQL's driver: pip install 'psycopg[binary]'",
    "postgresql+psycopg": "PostgreSQL's driver: pip install 'psycopg[binary]'",
    "mysql": "MySQL's default driver is mysqlclient, which needs a compiler and libmysqlclient: "
             "pip install pymysql and write mysql+pymysql://",
    "mariadb": "pip install pymysql and write mariadb+pymysql://",
    "mysql+pymysql": "MySQL's driver: pip install pymysql",
    "mariadb+pymysql": "MariaDB's driver: pip install pymysql",
}


@contextlib.contextmanager
def quiet_optuna():
    """Optuna's INFO lines (a study created, each trial finished) held back while
    flownas calls it; the caller's verbosity comes back afterwards (a host
    program's own studies keep logging as it set them)."""
    import optuna
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(max(before, optuna.logging.WARNING))
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)


def open_storage(storage: str | Path | None):
    """An Optuna storage; an unreachable or malformed URL raises a one-line ConfigError."""
    import optuna
    url = storage_url(storage)
    if url is None:
        return optuna.storages.InMemoryStorage()
    try:
        # server databases: a pooled connection is checked before use, so a restarted server costs no write
        storage = optuna.storages.RDBStorage(url, engine_kwargs=None if url.startswith("sqlite")
                                             else {"pool_pre_ping": True})
    except Exception as exc:   # driver missing, host down, bad URL, unwritable file, ...
        raise _cannot_open(url, exc) from None
    if url.startswith("sqlite"):
        _fast_sqlite(storage.engine)
    return storage


def _cannot_open(url: str, exc: BaseException) -> ConfigError:
    """One line on why the ledger at ``url`` cannot be opened, with what to do."""
    cause = exc.__cause__ or exc
    reason = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    if "password" in reason and without_password(url) == url:
        reason += " (the URL has no password: give the whole URL with --storage" + \
                  (", or the password in PGPASSWORD or ~/.pgpass" if url.startswith("postgresql") else "") + \
                  "; run directories keep none)"
    if isinstance(cause, ImportError):
        reason += " (" + _DRIVER_HINTS.get(url.split("://", 1)[0], "install the SQLAlchemy driver the URL names") + ")"
    return ConfigError(f"storage {shown_url(url)!r} cannot be opened: {reason}")


def _already_there(url: str | None, study_name: str) -> FlownasError:
    return FlownasError(f"the ledger {shown_url(url or 'in memory')} already holds a search named {study_name!r}: "
                        f"continue it with --resume, or give the new one another --name (the study is the "
                        f"search's name)")


def _fast_sqlite(engine) -> None:
    """Write-ahead log with ``synchronous=NORMAL``: a commit survives the death of
    the process (what resume is about) at a third of the cost of a full sync;
    an OS crash may roll back the last commits, never corrupt the file."""
    import sqlalchemy

    def pragmas(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    sqlalchemy.event.listen(engine, "connect", pragmas)
    engine.dispose()   # connections opened before the listener reconnect with it


class DriverLock:
    """The right to drive one search, held in its server ledger, on a
    connection kept open while the search runs: on PostgreSQL a
    session-level advisory lock on the study's name, on MySQL and MariaDB a
    named lock (``GET_LOCK``) on the database and study. The server
    releases it when that connection ends, so a driver killed on any machine
    never blocks the resume; a second driver, from any machine, is refused
    and told who holds it (PostgreSQL: the holder's ``application_name``,
    its pid and host; MySQL: its connection id and client host, for
    ``KILL``). A server restart ends the connection too: ``ensure`` takes
    the lock again, or stops this driver if another process took it
    meanwhile."""

    NAMESPACE = 0x666C6F77   # 'flow': the first key of flownas' advisory locks, apart from other applications'
    DIALECTS = ("postgresql", "mysql", "mariadb")   # SQLAlchemy's names of the servers it works on

    def __init__(self, storage, url: str, study_name: str):
        self._engine = storage.engine
        self._url = url
        self._study_name = study_name
        self._key = zlib.crc32(study_name.encode()) & 0x7FFFFFFF
        # MySQL's named locks are server-wide (PostgreSQL's advisory locks are per database): the name
        # says which database, within the 64 characters MySQL allows
        database = self._engine.url.database or ""
        self._name = "flownas:" + hashlib.sha1(f"{database}/{study_name}".encode()).hexdigest()
        self._postgresql = self._engine.dialect.name == "postgresql"
        self._connection = None

    @classmethod
    def acquire(cls, storage, url: str, study_name: str) -> "DriverLock":
        lock = cls(storage, url, study_name)
        lock._take()
        return lock

    def _take(self) -> None:
        connection = self._engine.connect()
        try:
            held, holder = (self._take_postgresql if self._postgresql else self._take_mysql)(connection)
            connection.commit()   # the lock outlives the transaction; an open one would hold back the server
        except Exception:
            connection.close()
            raise
        if not held:
            connection.close()
            raise FlownasError(f"the search {self._study_name!r} in {shown_url(self._url)} is being run by "
                               f"{holder or 'another process'}: let it finish or stop it (--resume then continues "
                               f"it); a new search needs another --name")
        self._connection = connection

    def _take_postgresql(self, connection) -> tuple[bool, str | None]:
        import sqlalchemy as sa
        keys = {"ns": self.NAMESPACE, "key": self._key}
        me = f"flownas pid {os.getpid()} on {socket.gethostname()}"[:63]   # PostgreSQL keeps 63 bytes
        # a driver that vanishes without closing its connection (a node lost) is noticed in about a minute
        connection.execute(sa.text("SELECT set_config('application_name', :me, false), "
                                   "set_config('tcp_keepalives_idle', '30', false), "
                                   "set_config('tcp_keepalives_interval', '10', false), "
                                   "set_config('tcp_keepalives_count', '3', false)"), {"me": me})
        if connection.execute(sa.text("SELECT pg_try_advisory_lock(:ns, :key)"), keys).scalar():
            return True, None
        return False, connection.execute(sa.text(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = :ns AND l.objid = :key "
            "AND l.objsubid = 2"), keys).scalar()

    def _take_mysql(self, connection) -> tuple[bool, str | None]:
        import sqlalchemy as sa
        if connection.execute(sa.text("SELECT GET_LOCK(:name, 0)"), {"name": self._name}).scalar() == 1:
            return True, None
        # MySQL sets no keep-alive of its own per connection: a driver that vanished holds the lock
        # until the server drops its connection (wait_timeout, 8 hours by default), or KILL
        row = connection.execute(sa.text(
            "SELECT ID, USER, HOST FROM information_schema.PROCESSLIST WHERE ID = IS_USED_LOCK(:name)"),
            {"name": self._name}).first()
        if row is None:   # it let go meanwhile, or this user may not see other users' connections
            return False, None
        return False, (f"connection {row[0]} ({row[1]}@{row[2]}; if that driver is gone, "
                       f"free its lock with KILL {row[0]} on the server)")

    def ensure(self) -> None:
        """Check that the lock is still held (one round trip); when its
        connection was lost, take it again."""
        import sqlalchemy as sa
        if self._connection is not None:   # None: lost, and another process held it at the last try
            try:
                self._connection.execute(sa.text("SELECT 1"))
                self._connection.commit()
                return
            except sa.exc.DBAPIError:   # the server restarted, or the connection broke: the lock went with it
                self._close_connection()
        self._take()

    def release(self) -> None:
        import sqlalchemy as sa
        if self._connection is None:
            return
        try:
            if self._postgresql:
                self._connection.execute(sa.text("SELECT pg_advisory_unlock(:ns, :key)"),
                                         {"ns": self.NAMESPACE, "key": self._key})
            else:
                self._connection.execute(sa.text("SELECT RELEASE_LOCK(:name)"), {"name": self._name})
            self._connection.commit()
        except sa.exc.DBAPIError:
            pass   # a lost connection holds no lock
        finally:
            self._close_connection()

    def _close_connection(self) -> None:
        import sqlalchemy as sa
        connection, self._connection = self._connection, None
        try:
            connection.close()
        except sa.exc.DBAPIError:
            pass


def _driver_lock(storage, url: str | None, study_name: str) -> DriverLock | None:
    """The driver lock where the storage can hold one (PostgreSQL, MySQL,
    MariaDB); elsewhere None: a SQLite ledger is guarded by its run
    directory's ``run.lock``."""
    engine = getattr(storage, "engine", None)
    if url is None or engine is None or engine.dialect.name not in DriverLock.DIALECTS:
        return None
    return DriverLock.acquire(storage, url, study_name)


def _shown_ledger(url: str | None) -> str:
    """Where a ledger is, for a message: its SQLite file, else its URL (password hidden)."""
    return str(sqlite_file(url) or shown_url(url or "in memory"))


def _writes(method):
    """A ledger write that fails (a full disk, a lost server) stops the search
    in one line that says what was kept and how to go on."""
    @functools.wraps(method)
    def write(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except FlownasError:
            raise
        except Exception as exc:
            raise _not_written(self.url, exc) or exc
    return write


def _not_written(url: str | None, exc: BaseException, creating: bool = False) -> FlownasError | None:
    """The one-line error of a failed ledger write, or None if ``exc`` is not the storage's;
    ``creating``: the search was being started (nothing is recorded, nothing resumes)."""
    import optuna
    import sqlalchemy
    if not isinstance(exc, (optuna.exceptions.StorageInternalError, sqlalchemy.exc.SQLAlchemyError)):
        return None
    cause: BaseException = exc
    while cause.__cause__ is not None or getattr(cause, "orig", None) is not None:
        cause = getattr(cause, "orig", None) or cause.__cause__
    where = _shown_ledger(url)
    why = (str(cause).splitlines() or [type(cause).__name__])[0]   # some drivers' errors have no text
    if creating:
        error = FlownasError(f"the ledger {where} could not be created ({why}): once that is fixed, "
                             f"start the search again")
    else:
        error = FlownasError(f"the ledger {where} could not be written ({why}): what it recorded is kept; "
                             f"once that is fixed, continue with --resume")
    error.__cause__ = exc
    return error


class Ledger:
    """Records of one search (one study) in an Optuna storage."""

    def __init__(self, storage, study_id: int, study_name: str, url: str | None,
                 driver_lock: DriverLock | None = None):
        self.storage = storage
        self.study_id = study_id
        self.study_name = study_name
        self.url = url
        self.driver_lock = driver_lock

    # -- opening ---------------------------------------------------------
    @classmethod
    def create(cls, storage: str | Path | None, study_name: str, meta: Mapping[str, Any],
               replace_empty: bool = False, drive: bool = False) -> "Ledger":
        """A new, empty search; an existing study of that name is an error, unless
        it holds no trial and ``replace_empty`` is set (a start killed half-way).
        ``drive``: hold its ``DriverLock`` until ``close`` (taken first, so a
        search another process is starting is never replaced)."""
        import optuna
        path = sqlite_file(storage)
        if path is not None:
            check_sqlite_ledger(path, must_exist=False)   # an existing file: a ledger, and not damaged
        backend = open_storage(storage)
        url = storage_url(storage)
        lock = _driver_lock(backend, url, study_name) if drive else None
        try:
            try:
                study_id = backend.get_study_id_from_name(study_name)
            except KeyError:
                pass
            else:
                if not (replace_empty and not backend.get_all_trials(study_id, deepcopy=False)):
                    raise _already_there(url, study_name)
                backend.delete_study(study_id)
            with quiet_optuna():
                study_id = backend.create_new_study([optuna.study.StudyDirection.MAXIMIZE], study_name)
            backend.set_study_user_attr(study_id, META_KEY, {"format": FORMAT, "version": FORMAT_VERSION,
                                                              **dict(meta)})
        except BaseException as exc:
            if lock is not None:
                lock.release()
            raise (None if isinstance(exc, FlownasError) else _not_written(url, exc, creating=True)) or exc
        return cls(backend, study_id, study_name, url, lock)

    @staticmethod
    def check_new(storage: str | Path | None, study_name: str, made: Path | None = None) -> None:
        """What ``create`` would refuse (a server unreachable, a SQLite file that
        is no ledger or whose folder is missing, a search of that name there),
        found without writing: ``--check``. ``made``: a folder the search makes
        before it creates the ledger (its run directory, with its parents)."""
        import sqlite3

        import sqlalchemy
        url = storage_url(storage)
        path = sqlite_file(url)
        if path is not None:
            made = Path(made).resolve() if made is not None else None
            if made is not None and not path.parent.exists() and (path.parent == made or path.parent in made.parents):
                return   # in a folder the search makes (the run directory, or one of its parents): a new file
            check_sqlite_ledger(path, must_exist=False)   # a folder, a file that is no ledger, a missing folder
            if path.is_file() and path.stat().st_size:
                connection = _read_only(path)
                try:
                    there = connection.execute("SELECT 1 FROM studies WHERE study_name = ?", (study_name,)).fetchone()
                except sqlite3.Error:   # no tables yet: a file a new search may start in
                    there = None
                finally:
                    connection.close()
                if there:
                    raise _already_there(url, study_name)
            return
        if url is None or url.startswith("sqlite"):
            return
        engine = None
        try:
            engine = sqlalchemy.create_engine(url)
            with engine.connect() as connection:
                there = sqlalchemy.inspect(connection).has_table("studies") and connection.execute(
                    sqlalchemy.text("SELECT 1 FROM studies WHERE study_name = :name"), {"name": study_name}).first()
        except Exception as exc:   # driver missing, host down, a wrong password, ...
            raise _cannot_open(url, exc) from None
        finally:
            if engine is not None:
                engine.dispose()
        if there:
            raise _already_there(url, study_name)

    @classmethod
    def open(cls, storage: str | Path | None, study_name: str, drive: bool = False) -> "Ledger":
        """An existing search; ``drive``: hold its ``DriverLock`` until ``close``.
        A SQLite ledger must exist (it is never created here) and pass
        ``PRAGMA quick_check`` before anything reads or writes it."""
        path = sqlite_file(storage)
        if path is not None:
            check_sqlite_ledger(path, must_exist=True)
        backend = open_storage(storage)
        url = storage_url(storage)
        try:
            study_id = backend.get_study_id_from_name(study_name)
        except KeyError:
            raise FlownasError(f"the ledger {shown_url(url or 'in memory')} holds no search named "
                               f"{study_name!r}") from None
        meta = backend.get_study_user_attrs(study_id).get(META_KEY)
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise FlownasError(f"study {study_name!r} in {shown_url(url)} was not written by flownas")
        if meta.get("version") != FORMAT_VERSION:
            raise FlownasError(f"ledger format version {meta.get('version')} is not supported "
                               f"(this flownas reads {FORMAT_VERSION})")
        return cls(backend, study_id, study_name, url, _driver_lock(backend, url, study_name) if drive else None)

    @property
    def meta(self) -> dict[str, Any]:
        return dict(self.storage.get_study_user_attrs(self.study_id)[META_KEY])

    @_writes
    def update_meta(self, **values: Any) -> None:
        self.storage.set_study_user_attr(self.study_id, META_KEY, {**self.meta, **values})

    # -- writing ---------------------------------------------------------
    @_writes
    def start(self, seq: int, arch: Architecture, info: Mapping[str, Any] | None = None) -> int:
        """Record a dispatched candidate (RUNNING), in one transaction; its trial id."""
        return self._new_trial(seq, arch, info or {})

    def _still_driving(self) -> None:
        """Before a candidate is dispatched (started or retried) or finished:
        the driver lock is still ours (taken again after a server restart), or
        this driver stops (FlownasError) rather than write beside another one."""
        if self.driver_lock is not None:
            self.driver_lock.ensure()

    def _new_trial(self, seq: int, arch: Architecture, info: Mapping[str, Any], **attrs: Any) -> int:
        import optuna
        self._still_driving()
        template = optuna.trial.create_trial(
            state=optuna.trial.TrialState.RUNNING,
            user_attrs={"seq": seq, "arch": arch.to_dict(), "arch_key": arch.key, "info": _jsonable(info), **attrs})
        return self.storage.create_new_trial(self.study_id, template_trial=template)

    @_writes
    def restart(self, record: Record) -> None:
        """Note that a candidate left running by a killed search runs again."""
        record.restarts += 1
        self.storage.set_trial_user_attr(record.trial_id, "restarts", record.restarts)

    @_writes
    def retry(self, record: Record) -> Record:
        """Run a failed candidate again: a new RUNNING trial with the same
        dispatch number, which supersedes the failed one (that trial stays in
        the study as it was); its ``retried`` attribute lists the errors of
        the earlier attempts."""
        retried = [*record.retried, record.error or "failed"]
        trial_id = self._new_trial(record.seq, record.arch, record.info, restarts=record.restarts, retried=retried,
                                   retry_of=record.trial_id)
        return Record(record.seq, trial_id, record.arch, dict(record.info), restarts=record.restarts,
                      retried=retried)

    @_writes
    def note_failure(self, record: Record, error: str) -> None:
        """Note that the worker running a candidate died (the candidate runs again):
        the trial's ``failures`` attribute lists every such death."""
        record.failures.append(error)
        self.storage.set_trial_user_attr(record.trial_id, "failures", list(record.failures))

    @_writes
    def finish(self, record: Record) -> None:
        """Write ``record``'s outcome: the ``result`` attribute, then the trial state."""
        self._still_driving()
        result = {"done": record.done, "value": record.value, "metrics": _jsonable(record.metrics), "cost_s": record.cost_s,
                  "wall_s": record.wall_s, "error": record.error}
        if record.evaluation_info:   # an evaluator's own: arrays as lists, what JSON cannot hold as its text
            result["info"] = json.loads(json.dumps(record.evaluation_info, default=_json_value))
        self.storage.set_trial_user_attr(record.trial_id, "result", result)
        self._close(record)
        record.trial_state = "COMPLETE" if record.state == "complete" else "FAIL"

    def _close(self, record: Record) -> None:
        from optuna.trial import TrialState
        if record.state == "complete":
            self.storage.set_trial_state_values(record.trial_id, TrialState.COMPLETE, [record.value])
        else:
            self.storage.set_trial_state_values(record.trial_id, TrialState.FAIL)

    @_writes
    def repair(self, records: list[Record]) -> None:
        """Close trials whose result was written just before a kill left them RUNNING."""
        for r in records:
            if r.finished and r.trial_state == "RUNNING":
                self._close(r)
                r.trial_state = "COMPLETE" if r.state == "complete" else "FAIL"

    # -- reading ---------------------------------------------------------
    def records(self) -> list[Record]:
        """Every candidate, in dispatch order (of a retried one, its latest attempt).
        A trial whose attributes are damaged stops the reading, named: leaving it
        out would show (and resume) a search with a finished evaluation missing."""
        out: dict[int, Record] = {}
        try:
            trials = self.storage.get_all_trials(self.study_id, deepcopy=False)
        except ValueError as exc:   # json.JSONDecodeError of an attribute: Optuna decodes them all at once
            raise self._damaged(f"an attribute of a trial is not JSON: {exc}") from None
        for t in trials:
            attrs = t.user_attrs
            if "seq" not in attrs and "arch" not in attrs:
                continue   # a trial someone added by hand
            try:
                rec = self._record(t, attrs)
            except (KeyError, TypeError, ValueError, ArchitectureError) as exc:
                what = f"'{exc.args[0]}' is missing" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
                raise self._damaged(f"trial_id {t._trial_id}: {what}") from None
            other = out.get(rec.seq)
            if other is not None:   # a retry supersedes the failed attempt; nothing else shares a number
                older, newer = sorted((other, rec), key=lambda r: r.trial_id)
                if not newer.retried or older.state == "complete":
                    raise self._damaged(f"trial_ids {older.trial_id} and {newer.trial_id} share the dispatch "
                                        f"number {rec.seq}, and the later one is no retry of the earlier")
                rec = newer
            out[rec.seq] = rec
        return sorted(out.values(), key=lambda r: r.seq)

    @staticmethod
    def _record(t, attrs: Mapping[str, Any]) -> Record:
        seq = attrs["seq"]
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise ValueError(f"its dispatch number (seq) is {seq!r}")
        rec = Record(seq=seq, trial_id=t._trial_id, arch=Architecture.from_dict(attrs["arch"]),
                     info=dict(attrs.get("info") or {}), restarts=int(attrs.get("restarts", 0)),
                     failures=list(attrs.get("failures") or []), retried=list(attrs.get("retried") or []),
                     trial_state=t.state.name)
        result = attrs.get("result")
        if result is None:
            if t.state.name in ("COMPLETE", "FAIL"):   # the result is written before the state, never after
                raise KeyError("result")
            return rec
        rec.done = int(result["done"])
        rec.metrics = dict(result.get("metrics") or {})
        rec.cost_s = result.get("cost_s")
        rec.wall_s = result.get("wall_s")
        rec.error = result.get("error")
        rec.state = "failed" if rec.error is not None else "complete"
        rec.value = None if result.get("value") is None else float(result["value"])
        rec.evaluation_info = dict(result.get("info") or {})
        return rec

    def _damaged(self, problem: str) -> FlownasError:
        return FlownasError(f"the ledger {_shown_ledger(self.url)} is damaged (search {self.study_name!r}, "
                            f"{problem}): restore it from a copy")

    def release_driver(self) -> None:
        """Let another process drive this search (``close`` does it too)."""
        if self.driver_lock is not None:
            self.driver_lock.release()
            self.driver_lock = None

    def close(self) -> None:
        self.release_driver()
        remove = getattr(self.storage, "remove_session", None)
        if remove is not None:
            remove()
        engine = getattr(self.storage, "engine", None)
        if engine is not None:
            engine.dispose()


def _json_value(value: Any) -> Any:
    """``json.dumps``'s fallback: numpy scalars and arrays as numbers and lists, anything else as text."""
    tolist = getattr(value, "tolist", None)
    return tolist() if callable(tolist) else str(value)


def _jsonable(d: Mapping[str, Any]) -> dict[str, Any]:
    """Plain JSON types (numpy scalars become Python numbers)."""
    out = {}
    for k, v in d.items():
        if hasattr(v, "item") and callable(v.item):
            v = v.item()
        if isinstance(v, Mapping):
            v = _jsonable(v)
        out[str(k)] = v
    return out
