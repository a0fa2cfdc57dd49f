"""``flownas`` command line.

Every command prints a one-line ``flownas: error: ...`` and exits non-zero on
bad input. Command groups that live elsewhere (search, bench, graph, ...)
add themselves through ``COMMAND_MODULES``: each module has
``register(subparsers)`` and sets ``func`` on its parsers.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from typing import Sequence

from .errors import FlownasError

# modules that add sub-commands: each has register(subparsers)
COMMAND_MODULES: list[str] = ["flownas.search.commands", "flownas.cli_graph", "flownas.latency_cli"]
# modules that add `flownas bench <what>` commands: each has register_bench(subparsers)
BENCH_MODULES: list[str] = ["flownas.predictors_cli", "flownas.search.commands"]


def _cmd_spaces(args) -> int:
    from .registry import SPACES
    if args.check:
        return _check_spaces(SPACES.names(args.pattern) or [args.pattern])
    for name in SPACES.names(args.pattern):
        cls = SPACES.get(name)
        try:   # a space of your own that cannot be built is named, and the listing goes on
            size = cls().size()
        except Exception as exc:   # noqa: BLE001 - whatever its constructor raises
            print(f"{name:<14} (cannot be built: {_one_line(exc)})")
            continue
        module = sys.modules.get(getattr(cls, "__module__", ""))
        doc = (cls.__doc__ or getattr(module, "__doc__", None) or "").strip()
        summary = " ".join(doc.split("\n\n")[0].split()).split(". ")[0]   # the first sentence, whole
        count = "" if size is None else f"{size:,}" if size < 10**9 else f"{size:.1e}"
        print(f"{name:<14} {count:>9} {summary}".rstrip())
    return 0


def _check_spaces(names: Sequence[str]) -> int:
    """Each rule of ``flownas.conformance`` for each space: ok, FAIL and why, or skip and why."""
    from .conformance import SPACE_RULES, space_outcomes
    from .registry import SPACES
    from .spaces.base import check_hint
    broken = {}
    unbuilt = []
    for name in names:
        cls = SPACES.get(name)   # an unknown name: the registry's one-line error
        try:
            space = cls()
        except Exception as exc:   # noqa: BLE001 - whatever its constructor raises
            print(f"{name}: cannot be built without arguments (as get_space({name!r}) does): {_one_line(exc)}")
            unbuilt.append(name)
            continue
        print(f"{name}: {len(SPACE_RULES)} rules")
        outcomes = space_outcomes(space)
        for o in outcomes:
            status = "FAIL" if not o.ok else "skip" if o.note else "ok  "
            why = (o.failure or o.note or "").replace(f" {check_hint(name)}", "")   # this is that check
            print(f"  {status}  {o.rule}" + (f": {why}" if why else ""))
        broken[name] = sum(not o.ok for o in outcomes)
    failing = [f"space {n!r} cannot be built" for n in unbuilt]
    failing += [f"space {n!r} breaks {k} of {len(SPACE_RULES)} rules" for n, k in broken.items() if k]
    if failing:
        raise FlownasError("; ".join(failing) + " (above)")
    return 0


def _one_line(exc: BaseException) -> str:
    """``Type: message`` of an exception, on one line."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _cmd_sample(args) -> int:
    from .registry import get_space
    from .seeding import as_rng
    space = get_space(args.space)
    rng = as_rng(args.seed)
    for _ in range(args.n):
        arch = space.sample(rng)
        record = arch.to_dict()
        record["string"] = space.to_string(arch)
        print(json.dumps(record, separators=(",", ":")))
    return 0


def _cmd_lookup(args) -> int:
    from .benchmarks.base import load_benchmark, tables_of
    from .registry import get_space
    space = get_space(args.space)
    arch = space.parse(args.arch)
    table = args.table
    if table is None:
        tables = tables_of(space.name)
        if not tables:
            raise FlownasError(f"no benchmark table for space {space.name!r}")
        table = tables[0]
    record = load_benchmark(table).query(arch)
    print(json.dumps(record, indent=None if args.compact else 2, sort_keys=True))
    return 0


def _cmd_data_list(args) -> int:
    from .data import status_lines
    from .benchmarks.base import DATA_ENV, data_root
    root = data_root(required=False)
    given = os.environ.get(DATA_ENV)
    print(f"{DATA_ENV}={root or (f'{given} (not a directory)' if given else '(not set)')}")
    for line in status_lines(root):   # each present table checked against its pinned sha256
        print(line)
    if root is None:   # nothing can be there: say how to get the tables, as every other command does
        data_root(required=True)
    return 0


def _cmd_data_fetch(args) -> int:
    from .data import fetch
    path = fetch(args.name, args.url, args.sha256)
    print(f"fetched {path}")
    return 0


class OneLineErrors(argparse.ArgumentParser):
    """argparse with the one-line refusal every other error has: no usage
    block, the command's --help named instead, and a near miss suggested for
    a mistyped command (its sub-parsers are of this class too)."""

    def error(self, message: str):
        import difflib
        import re
        typo = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if typo:
            choices = re.findall(r"'([^']*)'", typo.group(2)) or [c.strip() for c in typo.group(2).split(",")]
            close = difflib.get_close_matches(typo.group(1), choices, n=1)
            message = f"{message.split(':')[0]}: unknown {typo.group(1)!r}" + (
                f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(choices)}")
        self.exit(2, f"flownas: error: {message} (see {self.prog} --help)\n")

    def parse_known_args(self, args=None, namespace=None):
        """A command refuses the flags it does not know itself, so that the
        error names its own --help and the flag it was probably meant to be."""
        parsed, extras = super().parse_known_args(args, namespace)
        if extras and self.prog != "flownas" and not self._subparsers:   # a command, not a group
            import difflib
            close = [m for e in extras if e.startswith("-")
                     for m in difflib.get_close_matches(e.split("=")[0], self._option_string_actions, n=1)]
            self.error(f"unrecognized arguments: {' '.join(extras)}"
                       + (f"; did you mean {close[0]}?" if close else ""))
        return parsed, extras


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrors(prog="flownas", description="Predictor-guided neural architecture search.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("spaces", help="list the registered search spaces")
    p.add_argument("pattern", nargs="?", default="*", help="glob filter, e.g. 'nb*'")
    p.add_argument("--check", action="store_true",
                   help="check each space against the rules every space must follow (flownas.conformance)")
    p.set_defaults(func=_cmd_spaces)

    p = sub.add_parser("sample", help="random architectures of a space, as JSON lines")
    p.add_argument("space")
    p.add_argument("-n", type=positive_int, default=1, help="how many (default 1)")
    p.add_argument("--seed", type=seed, default=0)
    p.set_defaults(func=_cmd_sample)

    p = sub.add_parser("lookup", help="benchmark-table metrics of one architecture, as JSON")
    p.add_argument("space")
    p.add_argument("arch", help="flownas JSON or the space's native string (e.g. an NB201 string)")
    p.add_argument("--table", help="benchmark table (default: the space's)")
    p.add_argument("--compact", action="store_true", help="one line")
    p.set_defaults(func=_cmd_lookup)

    data = sub.add_parser("data", help="benchmark tables: list, fetch")
    dsub = data.add_subparsers(dest="data_command", metavar="ACTION")
    dsub.required = True
    p = dsub.add_parser("list", help="which tables FLOWNAS_DATA holds")
    p.set_defaults(func=_cmd_data_list)
    p = dsub.add_parser("fetch", help="download a table into FLOWNAS_DATA, checksum verified")
    p.add_argument("name", help="FOLDER/FILE, e.g. nasbench201/nb201_all.jsonl.gz")
    p.add_argument("--url", required=True)
    p.add_argument("--sha256", help="expected sha256 (default: the pinned one)")
    p.set_defaults(func=_cmd_data_fetch)

    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    if BENCH_MODULES:
        bench = sub.add_parser("bench", help="benchmarks that measure figures (see BENCHMARKS.md)")
        bsub = bench.add_subparsers(dest="bench_command", metavar="WHAT")
        bsub.required = True
        for module in BENCH_MODULES:
            importlib.import_module(module).register_bench(bsub)
    return parser


# -- argument types, shared by every command ---------------------------------------------
def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def seed(text: str) -> int:
    """A random seed: numpy, torch and Optuna take integers >= 0."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"a seed is an integer >= 0, got {value}")
    return value


def resource(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {text}")
    return value


def _version() -> str:
    from . import __version__
    return f"flownas {__version__}"


class Terminated(KeyboardInterrupt):
    """SIGTERM (a batch scheduler's kill, ``kill PID``), raised where the
    process is, so the command stops as it does on Ctrl-C: a search's ledger
    keeps every finished candidate, and ``--resume`` continues it."""


def _terminate(signum, frame):
    raise Terminated()


def _one_line_warnings(show):
    """``warnings.showwarning`` that prints flownas' own warnings (a table that
    differs from its pin, a search that warm-starts) as one line, like its
    errors, and hands the others to ``show``."""
    package = os.path.dirname(os.path.abspath(__file__))

    def show_warning(message, category, filename, lineno, file=None, line=None):
        if category.__module__.startswith("flownas") or os.path.abspath(filename).startswith(package):
            print(f"flownas: warning: {message}", file=file or sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)
    return show_warning


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import signal
    import threading
    import warnings
    python_show, warnings.showwarning = warnings.showwarning, _one_line_warnings(warnings.showwarning)
    installed = threading.current_thread() is threading.main_thread()   # signal handlers live there
    if installed:
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return int(args.func(args) or 0)
    except FlownasError as exc:
        print(f"flownas: error: {exc}", file=sys.stderr)
        return 1
    except Terminated:
        print("flownas: terminated" + _resume_hint(args), file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("flownas: interrupted" + _resume_hint(args), file=sys.stderr)
        return 130
    except BrokenPipeError:   # `flownas ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    finally:
        warnings.showwarning = python_show
        if installed:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def command(argv: Sequence[str] | None = None) -> int:
    """The ``flownas`` program: :func:`main`, then Ctrl-C ignored while the
    interpreter shuts down. The work is done and recorded by then; a SIGINT
    landing in the finalizers printed "Exception ignored in ... KeyboardInterrupt"
    after the summary. (Not in :func:`main`, which tests call in-process.)"""
    code = main(argv)
    import signal
    import threading
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    return code


def _resume_hint(args) -> str:
    return " (continue it with --resume)" if getattr(args, "command", None) == "search" else ""


if __name__ == "__main__":
    sys.exit(command())
