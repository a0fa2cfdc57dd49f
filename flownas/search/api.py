"""Running a search from a configuration: build the components, open the run
directory and its ledger (new, or resumed), run the loop, write the report.

A run directory holds ``run.json`` (where the ledger is), ``config.yaml``
(the configuration as run), the SQLite ledger ``ledger.db`` unless another
storage was given, ``run.lock`` (held while a process runs the search) and
the report files (``flownas.report``). The ledger's own driver lock (on
PostgreSQL and MySQL, ``flownas.store.DriverLock``) also refuses a second driver on
another machine, which ``run.lock`` cannot see.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from .. import __version__
from ..errors import ConfigError, FlownasError, construct
from ..evaluators.base import Evaluator
from ..runtime.base import Executor
from ..spaces.base import SearchSpace
from ..report import REPORT_FILES
from ..store import (Ledger, absolute_storage, holds_only_an_empty_search, same_storage, shown_url, sqlite_file,
                     storage_url, without_password)
from .base import Strategy
from .config import EXECUTOR_FLAGS, SearchConfig, parse_constraint_flag
from .loop import Callback, SearchLoop, SearchResult, known_metrics

RUN_FILE = "run.json"
LEDGER_FILE = "ledger.db"
CONFIG_FILE = "config.yaml"
LOCK_FILE = "run.lock"     # held by the process running the search (``driving``)
# what a search writes into its directory beside run.json, the ledger and run.lock: a directory that
# holds any of them but no search is not written into (they would be overwritten)
SEARCH_FILES = (CONFIG_FILE, *REPORT_FILES)


@dataclass
class Components:
    space: SearchSpace
    evaluator: Evaluator
    strategy: Strategy
    executor: Executor


def build(config: SearchConfig) -> Components:
    """The space, evaluator, strategy and executor a configuration names.

    A tabular evaluator whose table covers only part of the space restricts
    the search to the tabulated members (``TableSubspace``); constraints
    restrict it to the members that satisfy them (``ConstrainedSpace``).
    """
    from ..registry import EVALUATORS, EXECUTORS, SPACES, STRATEGIES
    space = construct("space", SPACES.get(config.space.name), **config.space.params)
    evaluator = construct("evaluator", EVALUATORS.get(config.evaluator.name), **config.evaluator_params())
    evaluator.check(space)   # a table of another space, a missing predictor file: before --check says yes, or a run starts
    space_key = json.dumps(config.space.to_config(), sort_keys=True)   # with the evaluator: what ``space`` is
    if hasattr(evaluator, "members"):
        space = _restricted(space, evaluator, space_key)
    if config.constraints:
        space = _constrained(space, evaluator, space_key, config.constraints)
    strategy = construct("strategy", STRATEGIES.get(config.strategy.name), space, seed=config.seed,
                          **config.strategy_params())
    known_metrics(space, strategy, evaluator)   # Optuna objectives the evaluator does not give
    executor = construct("executor", EXECUTORS.get(config.executor.name), **config.executor.params)
    if executor.on_this_machine:
        evaluator.check_here()   # a dataset typo: before --check says yes, not at the first candidate
    executor.check_sendable(evaluator)   # an evaluator of a notebook cannot reach spawned workers
    return Components(space, evaluator, strategy, executor)


_SUBSPACES: dict[tuple[str, ...], SearchSpace] = {}


def _restricted(space: SearchSpace, evaluator, space_config: str) -> SearchSpace:
    """``space``, or its members in the evaluator's table when the table covers
    only part of it (built once per process: it indexes every member)."""
    key = (space_config, repr(evaluator))
    if key not in _SUBSPACES:
        archs = evaluator.members()
        size = space.size()
        if size is None or len(archs) < size:
            from .subspace import TableSubspace
            space = TableSubspace(space, archs)
        _SUBSPACES[key] = space
    return _SUBSPACES[key]


def _constrained(space: SearchSpace, evaluator: Evaluator, space_config: str, specs) -> SearchSpace:
    """``space`` restricted to the members that satisfy the constraints
    (built once per process: a finite space is filtered member by member)."""
    from ..registry import EVALUATORS
    from .constraints import ConstrainedSpace, Constraint
    key = (space_config, repr(evaluator), json.dumps([c.to_config() for c in specs], sort_keys=True))
    if key not in _SUBSPACES:
        constraints = [Constraint(c.metric, construct(f"constraints[{i}].evaluator", EVALUATORS.get(c.evaluator.name),
                                                      **c.evaluator.params), c.max, c.min)
                       for i, c in enumerate(specs)]
        _SUBSPACES[key] = ConstrainedSpace(space, constraints)
    return _SUBSPACES[key]


def describe_objective(evaluator: Evaluator) -> dict[str, Any]:
    return {"objective": evaluator.objective, "test_metric": getattr(evaluator, "test_metric", None)}


# -- run directories ---------------------------------------------------------
@dataclass
class Run:
    """A run directory and the ledger it points to."""

    dir: Path
    storage: str | None    # None: the SQLite file in the directory
    study: str

    @property
    def storage_url(self) -> str:
        return self.storage or storage_url(self.dir / LEDGER_FILE)

    def open_ledger(self, drive: bool = False) -> Ledger:
        return Ledger.open(self.storage_url, self.study, drive=drive)

    @classmethod
    def load(cls, run_dir: str | Path, storage: str | None = None) -> "Run":
        """The run recorded in ``run_dir``; ``storage``, when given, is its
        ledger's URL with the password the run directory does not keep."""
        run_dir = Path(run_dir)
        path = run_dir / RUN_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            if not run_dir.is_dir():
                raise FlownasError(f"no run directory {run_dir} (from {Path.cwd()})") from None
            raise FlownasError(f"{run_dir} holds no search (no {RUN_FILE}: a search killed before it started "
                               f"left nothing to resume or report; run it again)") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise FlownasError(f"{path} is unreadable: {exc}") from None
        _check_run_record(path, data)
        recorded = data.get("storage")
        if storage is not None and not same_storage(storage, recorded or run_dir / LEDGER_FILE):
            shown = recorded or f"{LEDGER_FILE} in the run directory"
            raise ConfigError(f"--storage {shown_url(storage_url(storage))} is not the ledger of the search in "
                              f"{run_dir} ({shown}): on resume, --storage only adds the password")
        return cls(run_dir, storage if storage is not None else recorded, data["study"])

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / RUN_FILE).write_text(json.dumps({"study": self.study, "storage": without_password(self.storage)},
                                                    indent=2) + "\n")


def _check_run_record(path: Path, data: Any) -> None:
    """run.json is an object with the study's name and the storage (a URL, a path or null)."""
    expected = "a JSON object with 'study' (the search's name) and 'storage' (a URL, a path or null)"
    if not isinstance(data, dict):
        raise FlownasError(f"{path} is not a run record: expected {expected}, got a JSON {_json_type(data)}")
    if not isinstance(data.get("study"), str) or not data["study"]:
        raise FlownasError(f"{path} is not a run record: 'study' must be the search's name, "
                           f"got {_json_type(data.get('study'))} {data.get('study')!r}")
    if not isinstance(data.get("storage"), (str, type(None))):
        raise FlownasError(f"{path} is not a run record: 'storage' must be a URL, a path or null, "
                           f"got {_json_type(data['storage'])} {data['storage']!r}")


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "list", str: "string", bool: "boolean", int: "number", float: "number",
             type(None): "null"}
    return names.get(type(value), type(value).__name__)


def new_run(config: SearchConfig) -> tuple[SearchConfig, Run]:
    """``config`` as a new search records it, and the run it makes: a relative
    SQLite storage is made absolute (so a resume or report from elsewhere finds it)."""
    config = replace(config, storage=absolute_storage(config.storage))
    return config, Run(config.run_dir, config.storage, config.run_name)


def start_run(config: SearchConfig, held: contextlib.ExitStack) -> tuple[SearchConfig, Run, Ledger]:
    """A new run directory and ledger (and ``config`` as recorded); an existing
    search there is an error.

    The run directory's lock is taken (and kept in ``held``) before the ledger
    is created, so of two searches started at once into one directory the
    second is refused by the lock. A directory that holds no search but files
    a search would overwrite is refused; so is an ``--out`` that is a file or
    cannot be created. A start that fails leaves no directory or lock it made."""
    config, run = new_run(config)
    _refuse_a_second_start(run)
    _check_out_path(run.dir)
    made = _make_dir(run.dir)
    lock_was_there = (run.dir / LOCK_FILE).exists()
    held.enter_context(driving(run.dir, starting=True))
    try:
        _refuse_a_second_start(run)   # one started at the same time got the lock first, and is done
        _refuse_foreign_files(run)    # under the lock: no search is writing here now
        ledger = Ledger.create(run.storage_url, run.study, {"config": config.to_dict(), "flownas": __version__},
                               replace_empty=True,   # a start killed before run.json was written
                               drive=True)
        try:
            run.save()
        except BaseException:
            ledger.close()
            raise
    except BaseException:
        _undo_start(run.dir, made, lock_was_there)
        raise
    return config, run, ledger


def _check_out_dir(run: Run) -> None:
    """--out is a directory, or a path one can be made at; a directory that
    exists holds nothing a search would overwrite. Writes nothing."""
    _check_out_path(run.dir)
    if run.dir.is_dir():
        _refuse_foreign_files(run)


def _check_out_path(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise FlownasError(f"--out {out}: not a directory")
    for parent in out.parents:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise FlownasError(f"--out {out}: {parent} is not a directory")
            break


def _refuse_foreign_files(run: Run) -> None:
    out = run.dir
    found = [name for name in SEARCH_FILES if os.path.lexists(out / name)]
    ledger = out / LEDGER_FILE
    if sqlite_file(run.storage_url) == ledger.resolve():   # the search writes its ledger here
        if ledger.exists():
            if not holds_only_an_empty_search(ledger, run.study):   # what a start killed at once leaves is fine
                found.append(LEDGER_FILE)
        else:
            found += [name for name in (f"{LEDGER_FILE}-wal", f"{LEDGER_FILE}-shm") if os.path.lexists(out / name)]
    if found:
        raise FlownasError(f"{out} holds no search (no {RUN_FILE}) but files a search would overwrite "
                           f"({', '.join(found)}): choose another --out")


def _make_dir(out: Path) -> list[Path]:
    """Make ``out`` and its missing parents; the directories made, deepest first."""
    missing = [d for d in (out, *out.parents) if not d.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FlownasError(f"--out {out} cannot be made: {exc.strerror or exc}") from None
    return missing


def _undo_start(out: Path, made: list[Path], lock_was_there: bool) -> None:
    """After a start that failed: remove the lock file and the directories it
    made, where they hold nothing else."""
    with contextlib.suppress(OSError):
        if not lock_was_there:
            (out / LOCK_FILE).unlink()
        for directory in made:
            directory.rmdir()   # fails (and stops) where something is left: a ledger, a file of another process


def _resume_dir(run_dir: str | Path | None) -> Path:
    if run_dir is None:
        raise ConfigError("--resume needs the run directory (--out) or the configuration it was run with")
    return Path(run_dir)


def _refuse_a_second_start(run: Run) -> None:
    if (run.dir / RUN_FILE).exists():
        raise FlownasError(f"{run.dir} already holds a search: continue it with --resume, "
                           f"or choose another --out")


RESUMABLE = ("budget", "executor", "out", "storage")   # may differ when resuming


def resume_run(run_dir: Path, given: SearchConfig | None, flags: dict[str, Any],
               record: bool = True) -> tuple[Run, Ledger, SearchConfig]:
    """The run in ``run_dir`` with its recorded configuration; ``given`` (a
    config file) and ``flags`` may only change the budget and the executor
    (recorded in the ledger unless ``record`` is False). The ledger holds its
    driver lock until it is closed: a search another process runs is refused."""
    run = Run.load(run_dir, flags.get("storage") or (given.storage if given is not None else None))
    if flags.get("name") is not None and flags["name"] != run.study:
        raise ConfigError(_changed("--name", flags["name"], run.study, run.dir))
    ledger = run.open_ledger(drive=True)
    try:   # a refused resume closes the ledger at once: its driver lock is not left to the garbage collector
        config = _resumed_config(run.dir, ledger.meta["config"], given, flags)
        if record:
            ledger.update_meta(config=config.to_dict())
    except BaseException:
        ledger.close()
        raise
    return run, ledger, config


def _resumed_config(run_dir: Path, recorded: dict[str, Any], given: SearchConfig | None,
                    flags: dict[str, Any]) -> SearchConfig:
    """The recorded configuration with the budget and executor of ``given`` and
    ``flags``; any other difference is an error."""
    recorded = SearchConfig.from_dict(recorded, where=f"{run_dir} (recorded)")
    recorded_d = recorded.to_dict()
    if given is not None:
        given_d = given.to_dict()
        for key in dict.fromkeys([*given_d, *recorded_d]):   # a key only one side has (constraints) differs too
            if key not in RESUMABLE and key != "name" and given_d.get(key) != recorded_d.get(key):
                raise ConfigError(_changed(key, given_d.get(key), recorded_d.get(key), run_dir))
    for key in ("space", "dataset", "strategy", "predictor", "seed", "threads"):
        value = flags.get(key)
        if value is not None:
            old = recorded_d[key]
            old_name = old.get("name") if isinstance(old, dict) else old
            if value != old_name:
                raise ConfigError(_changed(f"--{key}", value, old_name, run_dir))
    if flags.get("constraints") is not None:
        wanted = [parse_constraint_flag(text) for text in flags["constraints"]]
        if [c.to_config() for c in wanted] != recorded_d.get("constraints", []):
            raise ConfigError(_changed("--constraint", "; ".join(map(str, wanted)),
                                       "; ".join(map(str, recorded.constraints)) or "none", run_dir))
    config = recorded
    if given is not None:
        config = replace(config, budget=given.budget, executor=given.executor)
    config = config.with_flags(budget=flags.get("budget"), executor=flags.get("executor"),
                               **{flag: flags.get(flag) for flag in EXECUTOR_FLAGS})
    if config.budget != recorded.budget:   # allowed (to extend a search), but never silently
        source = "--budget" if flags.get("budget") is not None else "the configuration file"
        warnings.warn(ResumeWarning(f"the resumed search's budget is {budget_text(config.budget)} "
                                    f"({source}); it was recorded with {budget_text(recorded.budget)}"))
    return config


class ResumeWarning(UserWarning):
    """A resume that continues a search with another budget than it was recorded with."""


def budget_text(budget) -> str:
    parts = [f"{budget.evaluations} evaluations" if budget.evaluations else None,
             f"{budget.cost_s:g} s of cost" if budget.cost_s else None]
    return " and ".join(p for p in parts if p) or "no limit"


def _changed(key: str, value: Any, old: Any, run_dir: Path) -> str:
    return (f"{key}: {value!r} differs from the search recorded in {run_dir} ({old!r}); --resume continues "
            f"a search as it was configured (only the budget and the executor may change)")


def as_config(config: SearchConfig | Mapping[str, Any] | str | Path | None, resume: bool,
              caller: str) -> SearchConfig | None:
    """A configuration given as a ``SearchConfig``, a mapping (the YAML's keys)
    or the path of a YAML file; None only on a resume (the recorded one)."""
    if config is None and not resume:
        raise ConfigError(f"{caller}: give a configuration (or resume=True with run_dir)")
    if config is None or isinstance(config, SearchConfig):
        return config
    if isinstance(config, Mapping):
        return SearchConfig.from_dict(config)
    if isinstance(config, (str, Path)):
        return SearchConfig.load(config)
    raise ConfigError(f"a search configuration is a SearchConfig, a mapping or a YAML file's path, "
                      f"got {type(config).__name__}")


def check_search(config: SearchConfig | Mapping[str, Any] | str | Path | None, *, resume: bool = False,
                 run_dir: str | Path | None = None, flags: dict[str, Any] | None = None) -> dict[str, Any]:
    """What ``run_search`` would run, found the same way (every component
    built, tables and constraints included), without running or writing anything."""
    config = as_config(config, resume, "check_search")
    records = None
    if resume:
        run_dir = _resume_dir(run_dir)
        if (run_dir / RUN_FILE).is_file():
            with driving(run_dir):   # refused, as the resume would be, while another process runs it
                pass
        run, ledger, config = resume_run(run_dir, config, flags or {}, record=False)
        try:
            ledger.release_driver()   # a probe: never hold off the search's own driver
            records = ledger.records()
        finally:
            ledger.close()
    else:
        config, run = new_run(config)
        _refuse_a_second_start(run)
        _check_out_dir(run)
        Ledger.check_new(run.storage, run.study, made=run.dir)   # reachable or creatable, the name free there
    parts = build(config)
    parts.executor.check()   # a Ray cluster: reachable, with the resources each evaluation asks for
    return {"config": config, "run": run, "records": records, "space": describe_space(parts.space),
            "objective": parts.evaluator.objective, "test_metric": getattr(parts.evaluator, "test_metric", None),
            "workers": parts.executor.workers}


def describe_space(space: SearchSpace) -> str:
    """How many members a search draws from, and why not all of the space's."""
    from .constraints import ConstrainedSpace
    from .subspace import TableSubspace
    size, why, whole = space.size(), [], space
    while isinstance(whole, (ConstrainedSpace, TableSubspace)):
        why.append("within the constraints" if isinstance(whole, ConstrainedSpace) else "in the table")
        whole = whole.base
    total = whole.size()
    if size is None:
        return f"{space.name}: too many members to count" + (f" ({', '.join(reversed(why))})" if why else "")
    if size == total:
        return f"{space.name}: {size:,} members"
    if total is None:   # DARTS: about 10^18 genotypes
        return f"{space.name}: {size:,} members" + (f", those {' and '.join(reversed(why))}" if why else "")
    return f"{space.name}: {size:,} of {total:,} members" + (f", those {' and '.join(reversed(why))}" if why else "")


def check_retry_failed(retry_failed: bool, resume: bool) -> None:
    if retry_failed and not resume:
        raise ConfigError("--retry-failed goes with --resume: it runs a recorded search's failed candidates again")


def run_search(config: SearchConfig | Mapping[str, Any] | str | Path | None, *, resume: bool = False,
               run_dir: str | Path | None = None, flags: dict[str, Any] | None = None,
               callbacks: Sequence[Callback] = (), report: bool = True,
               retry_failed: bool = False) -> tuple[SearchResult, Run, dict[str, Path]]:
    """Run a new search (``config``: a ``SearchConfig``, a mapping of the YAML's
    keys, or a YAML file's path), or resume the one in ``run_dir`` (then
    ``config`` and ``flags`` may only change its budget and executor;
    ``retry_failed`` runs its failed candidates again). ``callbacks`` are
    called as ``callback(record, loop)`` after each finished candidate."""
    check_retry_failed(retry_failed, resume)
    config = as_config(config, resume, "run_search")
    with contextlib.ExitStack() as held:
        if resume:
            run_dir = _resume_dir(run_dir)
            if (run_dir / RUN_FILE).is_file():
                held.enter_context(driving(run_dir))
            run, ledger, config = resume_run(run_dir, config, flags or {})
            held.callback(ledger.close)
            parts = build(config)
        else:
            parts = build(config)   # an unknown component or a missing table: no run directory is left behind
            config, run, ledger = start_run(config, held)   # config as run.json records it
            held.callback(ledger.close)
        held.enter_context(_torch_threads(config.threads, parts.strategy))
        ledger.update_meta(**describe_objective(parts.evaluator))
        _write_config(run.dir, config)
        loop = SearchLoop(parts.space, parts.strategy, parts.evaluator, ledger, executor=parts.executor,
                          budget=config.budget, callbacks=callbacks, retry_failed=retry_failed)
        result = loop.run()
        files = write_run_report(run, ledger) if report else {}
    return result, run, files


@contextlib.contextmanager
def driving(run_dir: Path, starting: bool = False):
    """Hold the run directory's lock while this process runs its search, so a
    second driver (a --resume started while the first still runs, or a search
    started into the same directory) is refused instead of evaluating and
    recording the same candidates again. The lock is flock(2): the kernel
    releases it when the process dies, even by SIGKILL, so a dead search
    never blocks its resume."""
    import fcntl
    import socket
    path = run_dir / LOCK_FILE
    try:
        fh = open(path, "a+", errors="replace")
    except OSError as exc:
        raise FlownasError(f"{path} cannot be used as the run's lock file ({exc.strerror or exc}): "
                           f"it must be a file; move it away") from None
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            then = "choose another --out" if starting else "let it finish, or stop it, before resuming"
            raise FlownasError(f"{run_dir} is being searched by {holder}: {then}") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        fh.flush()
        yield


@contextlib.contextmanager
def _torch_threads(threads: int | None, strategy):
    """torch's intra-op threads in this process while the search runs, where torch
    runs here (a predictor-guided strategy, or torch already imported: an
    evaluator); the caller's count comes back after (a host program keeps its own)."""
    if threads is None or not (hasattr(strategy, "surrogate") or "torch" in sys.modules):
        yield
        return
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _write_config(run_dir: Path, config: SearchConfig) -> None:
    import yaml
    (run_dir / CONFIG_FILE).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))


def write_run_report(run: Run, ledger: Ledger) -> dict[str, Path]:
    from ..registry import get_space
    from ..report import write_report
    meta = ledger.meta
    config = SearchConfig.from_dict(meta["config"], where=f"{run.dir} (recorded)")
    space = get_space(config.space.name, **config.space.params)
    title = " ".join(str(p) for p in (space.name, config.dataset, config.strategy.name, f"seed {config.seed}") if p)
    return write_report(run.dir, ledger.records(), to_string=space.to_string, objective=meta["objective"],
                        test_metric=meta.get("test_metric"), title=title,
                        constraints=[c.to_config() for c in config.constraints],
                        objectives=config.strategy.params.get("objectives") or ())
