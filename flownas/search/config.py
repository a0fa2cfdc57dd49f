"""Search configurations: YAML files, command-line flags, validation.

A configuration names registered components (space, evaluator, strategy,
predictor, executor), each either as a plain name or as a mapping with a
``name`` and the component's own parameters::

    name: nb201-cifar10-predictor
    space: nb201
    dataset: cifar10
    strategy: {name: predictor, acquisition: ucb, refit_every: 10}
    predictor: {name: flowerformer}
    budget: 150               # or {evaluations: 150, cost_s: 4.0e6}
    seed: 0
    executor: {name: local, workers: 1}   # or {name: ray, workers: 8, address: auto, num_gpus: 0.5}
    storage: null             # default: SQLite file ledger.db in the run directory
    out: runs/nb201-cifar10-predictor
    threads: 1                # torch threads of the search process (null: torch's default)
    constraints:              # optional: search only the members within these bounds
      - {metric: latency_ms, max: 5.0, evaluator: {name: latency_table, device: pixel3}}

On the command line a constraint is written as the summary prints it
(``parse_constraint_flag``): ``--constraint "latency_ms <= 5 latency_table device=pixel3"``.

Every error names the bad key: unknown keys, wrong types, unknown names and
parameters the component does not take. A file is read as YAML 1.1 with two
changes (``load_yaml``): ``1e-3`` and ``3.6e6`` are numbers, as in YAML 1.2
(YAML 1.1 wants ``1.0e-3``), and a key given twice in one mapping is an error.
A parameter is checked against its annotation, or else the type of its
default; a number must be finite, and must not be negative where its default
is positive (sizes, rates, counts).
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import inspect
import math
import re
import typing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from ..errors import ConfigError, UnknownNameError
from ..store import in_memory_sqlite, without_password
from .loop import Budget

KEYS = ("name", "space", "dataset", "evaluator", "strategy", "predictor", "budget", "seed", "executor",
        "storage", "out", "threads", "constraints")
# threads: the predictor's graphs are tiny; one torch thread runs the NB201
# main job 2.6x faster than two on a 2-core machine (BENCHMARKS.md, "Search")
DEFAULTS = {"space": "nb201", "strategy": "predictor", "budget": 100, "seed": 0, "executor": "local",
            "threads": 1}
DEFAULT_DATASET = "cifar10"   # of the default (tabular) evaluator
# command-line flags that set a parameter of the executor
EXECUTOR_FLAGS = {"workers": "workers", "ray_address": "address", "num_gpus": "num_gpus", "num_cpus": "num_cpus"}
# what ``with_flags`` takes (the command line's flags, as Python names)
FLAGS = ("space", "dataset", "strategy", "predictor", "evaluator", "budget", "seed", "storage", "out", "name",
         "executor", *EXECUTOR_FLAGS, "threads", "constraints")
# keys the loop fills itself, never taken from a configuration
_INJECTED = {"space": ("self",), "strategy": ("self", "space", "seed"), "predictor": ("self", "seed"),
             "evaluator": ("self",), "executor": ("self",)}
# the neural predictors' shared hyper-parameters (``predictors/neural.py``
# COMMON_DEFAULTS) whose type is not their default's
_NEURAL_HINTS = {"epochs": typing.Union[int, typing.Literal["auto"]], "grad_clip": typing.Optional[float],
                 "patience": typing.Optional[int], "prune_ops": typing.Union[str, typing.Sequence[str]],
                 "contract_ops": typing.Union[str, typing.Sequence[str]]}
# floats YAML 1.1 reads as strings: an exponent without a dot or without a sign
# (1e-3, 3.6e6, 1E6, 1.5e3, .5e-2); YAML 1.2 and Python read them as numbers
_FLOAT_EXPONENT = re.compile(r"^(?:[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?|[-+]?\.[0-9_]+)[eE][-+]?[0-9]+$")


class DuplicateKeyError(ConfigError):
    """A key given twice in one YAML mapping (YAML 1.1 keeps the last silently)."""


@functools.lru_cache(maxsize=None)
def _loader():
    import yaml

    class ConfigLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                seen: dict[Any, int] = {}
                merge_line = None
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        # the mapping's own keys override what a merge (<<) brings, as YAML says;
                        # a second << would be dropped without a word
                        line = key_node.start_mark.line + 1
                        if merge_line is not None:
                            raise DuplicateKeyError(f"duplicate key '<<' at line {line} (first at line "
                                                    f"{merge_line}); merge several with one list: <<: [*a, *b]")
                        merge_line = line
                        continue
                    if not isinstance(key_node, yaml.ScalarNode):
                        continue   # keys that are collections are not checked
                    key, line = self.construct_object(key_node), key_node.start_mark.line + 1
                    try:
                        first = seen.get(key)
                    except TypeError:   # unhashable: construct_mapping says so
                        continue
                    if first is not None:
                        where = f" (first at line {first})" if first != line else ""
                        raise DuplicateKeyError(f"duplicate key {key!r} at line {line}{where}")
                    seen[key] = line
            return super().construct_mapping(node, deep=deep)

    ConfigLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_EXPONENT, list("-+0123456789."))
    return ConfigLoader


def load_yaml(text: str) -> Any:
    """YAML as configurations read it: safe, ``1e-3`` a float, no key twice
    in a mapping (``DuplicateKeyError``)."""
    import yaml
    return yaml.load(text, Loader=_loader())


@dataclass(frozen=True)
class Component:
    """A registered component by name, with its parameters."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_config(self) -> str | dict[str, Any]:
        return self.name if not self.params else {"name": self.name, **copy.deepcopy(self.params)}


@dataclass(frozen=True)
class ConstraintSpec:
    """A bound on one metric of an evaluator (``flownas.search.constraints``)."""

    metric: str
    evaluator: Component
    max: float | None = None
    min: float | None = None

    def __post_init__(self):
        from .constraints import check_bounds
        check_bounds(self.metric, self.max, self.min)

    def __str__(self) -> str:
        from .constraints import bounds_text
        params = " ".join(f"{k}={v}" for k, v in self.evaluator.params.items())
        return f"{bounds_text(self.metric, self.max, self.min)} ({' '.join(p for p in (self.evaluator.name, params) if p)})"

    def to_config(self) -> dict[str, Any]:
        d = {"metric": self.metric, "max": self.max, "min": self.min, "evaluator": self.evaluator.to_config()}
        return {k: v for k, v in d.items() if v is not None}


@dataclass(frozen=True)
class SearchConfig:
    space: Component
    strategy: Component
    evaluator: Component
    executor: Component
    budget: Budget
    seed: int = 0
    dataset: str | None = None
    predictor: Component | None = None
    name: str | None = None
    storage: str | None = None
    out: str | None = None
    threads: int | None = 1
    constraints: tuple[ConstraintSpec, ...] = ()

    # -- reading -----------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> "SearchConfig":
        """A YAML file (``load_yaml``); YAML syntax errors name the file and line,
        a duplicate key its line; an empty file is an error."""
        import yaml
        path = Path(path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not a UTF-8 text file") from None
        try:
            data = load_yaml(text)
        except DuplicateKeyError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
        if data is None:   # nothing, comments or a bare '---': a truncated file or the wrong one
            raise ConfigError(f"{path} is empty (no configuration keys; '{{}}' runs the defaults)")
        return cls.from_dict(data, where=str(path))

    @classmethod
    def from_dict(cls, data: Any, where: str = "config") -> "SearchConfig":
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: a configuration is a mapping of keys (got {type(data).__name__})")
        unknown = [k for k in data if k not in KEYS]
        if unknown:
            close = difflib.get_close_matches(str(unknown[0]), KEYS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"{where}: unknown key {unknown[0]!r} ({hint}known: {', '.join(KEYS)})")
        d = {**DEFAULTS, **{k: v for k, v in data.items() if v is not None or k in ("storage", "out", "threads")}}
        space = _component(d["space"], "space")
        dataset = _typed(d.get("dataset"), "dataset", (str, type(None)))
        if "evaluator" in d:
            evaluator = _component(d["evaluator"], "evaluator")
        else:
            evaluator, dataset = _default_evaluator(space), dataset or DEFAULT_DATASET
        predictor = _component(d["predictor"], "predictor") if d.get("predictor") is not None else None
        config = cls(space=space, strategy=_component(d["strategy"], "strategy"), evaluator=evaluator,
                     executor=_component(d["executor"], "executor"), budget=_budget(d["budget"]),
                     seed=_typed(d["seed"], "seed", int), dataset=dataset, predictor=predictor,
                     name=_typed(d.get("name"), "name", (str, type(None))),
                     storage=_typed(d.get("storage"), "storage", (str, type(None))),
                     out=_typed(d.get("out"), "out", (str, type(None))),
                     threads=_typed(d.get("threads"), "threads", (int, type(None))),
                     constraints=parse_constraints(d.get("constraints")))
        config.validate()
        return config

    def with_flags(self, **flags: Any) -> "SearchConfig":
        """This configuration with command-line flags applied (None = not given)."""
        unknown = sorted(set(flags) - set(FLAGS))
        if unknown:   # from Python a typo would be dropped without a word
            close = difflib.get_close_matches(unknown[0], FLAGS, n=1)
            raise ConfigError(f"unknown flag {unknown[0]!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                              + f"; flags: {', '.join(FLAGS)}")
        for key, types in (("budget", int), ("seed", int), ("threads", int), ("workers", int)):
            if flags.get(key) is not None:
                _typed(flags[key], key, types)
        changes: dict[str, Any] = {}
        for key in ("space", "strategy", "predictor", "evaluator"):
            value = flags.get(key)
            if value is not None and (getattr(self, key) is None or getattr(self, key).name != value):
                changes[key] = Component(value)   # another component: its parameters do not carry over
        if "strategy" in changes and "predictor" not in changes and self.predictor is not None:
            from ..registry import STRATEGIES   # the config's predictor belonged to its strategy
            if "predictor" not in _parameters(_lookup(STRATEGIES, changes["strategy"], "strategy")):
                changes["predictor"] = None
        if "space" in changes and "evaluator" not in changes and self.evaluator.name == "tabular":
            changes["evaluator"] = _default_evaluator(changes["space"])
            changes["dataset"] = self.dataset or DEFAULT_DATASET
        if flags.get("executor") is not None and flags["executor"] != self.executor.name:
            changes["executor"] = Component(flags["executor"])
        executor_params = {param: flags[flag] for flag, param in EXECUTOR_FLAGS.items() if flags.get(flag) is not None}
        if executor_params:
            executor = changes.get("executor", self.executor)
            changes["executor"] = Component(executor.name, {**executor.params, **executor_params})
        if flags.get("budget") is not None:
            changes["budget"] = replace(self.budget, evaluations=flags["budget"])
        for key in ("dataset", "seed", "storage", "out", "name", "threads"):
            if flags.get(key) is not None:
                changes[key] = flags[key]
        if flags.get("name") is not None and flags.get("out") is None:
            changes["out"] = None   # another search: runs/NAME, not the file's directory of the first one
        evaluator = changes.get("evaluator", self.evaluator)
        if flags.get("dataset") is not None and "dataset" in evaluator.params:   # the flag overrides the file
            changes["evaluator"] = Component(evaluator.name,
                                             {k: v for k, v in evaluator.params.items() if k != "dataset"})
        if flags.get("constraints") is not None:   # --constraint: they replace the file's
            changes["constraints"] = tuple(parse_constraint_flag(text) for text in flags["constraints"])
        config = replace(self, **changes)
        config.validate()
        return config

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "space": self.space.to_config(), "dataset": self.dataset,
                             "evaluator": self.evaluator.to_config(), "strategy": self.strategy.to_config(),
                             "predictor": self.predictor.to_config() if self.predictor else None,
                             "budget": {"evaluations": self.budget.evaluations, "cost_s": self.budget.cost_s},
                             "seed": self.seed, "executor": self.executor.to_config(),
                             "storage": without_password(self.storage), "out": self.out, "threads": self.threads}
        if self.constraints:   # absent when unconstrained: configs recorded before the key stay equal
            d["constraints"] = [c.to_config() for c in self.constraints]
        return d

    @property
    def run_name(self) -> str:
        return self.name or "-".join(str(p) for p in (self.space.name, self.dataset, self.strategy.name,
                                                       f"seed{self.seed}") if p)

    @property
    def run_dir(self) -> Path:
        return Path(self.out) if self.out else Path("runs") / self.run_name

    # -- checks ------------------------------------------------------------
    def validate(self) -> None:
        from ..registry import EVALUATORS, EXECUTORS, PREDICTORS, SPACES, STRATEGIES
        _check_component(SPACES, self.space, "space")
        strategy_cls = _check_component(STRATEGIES, self.strategy, "strategy")
        if self.name is not None:
            _check_name(self.name)
        if self.dataset is not None and "dataset" not in _parameters(_lookup(EVALUATORS, self.evaluator, "evaluator")):
            raise ConfigError(f"dataset: the evaluator {self.evaluator.name!r} takes no dataset")
        if self.dataset is not None and self.evaluator.params.get("dataset", self.dataset) != self.dataset:
            raise ConfigError(f"dataset given twice: {self.dataset} (top level) and "
                              f"{self.evaluator.params['dataset']} (evaluator.dataset); give it once")
        _check_component(EVALUATORS, Component(self.evaluator.name, self.evaluator_params()), "evaluator")
        _check_component(EXECUTORS, self.executor, "executor")
        for i, constraint in enumerate(self.constraints):
            _check_component(EVALUATORS, constraint.evaluator, f"constraints[{i}].evaluator")
        takes_predictor = "predictor" in _parameters(strategy_cls)
        inline = self.strategy.params.get("predictor")
        if takes_predictor and (isinstance(inline, str) or isinstance(inline, Mapping) and "name" in inline):
            # strategy: {name: ..., predictor: {name: ..., ...}} (dele's may leave out the name)
            inline = _component(inline, "strategy.predictor")
            _check_component(PREDICTORS, replace(inline, name=_predictor_name(inline.name)), "strategy.predictor")
        if self.predictor is not None:
            if not takes_predictor:
                raise ConfigError(f"predictor: the strategy {self.strategy.name!r} uses no predictor "
                                  f"(remove the predictor, or use a predictor-guided strategy)")
            if "predictor" in self.strategy.params:
                raise ConfigError("predictor is given twice: at the top level and in strategy.predictor")
            _check_component(PREDICTORS, replace(self.predictor, name=_predictor_name(self.predictor.name)),
                             "predictor")
        if self.budget.evaluations is not None and self.budget.evaluations < 1:
            raise ConfigError(f"budget.evaluations must be at least 1, got {self.budget.evaluations}")
        if self.budget.cost_s is not None and not (0 < self.budget.cost_s < math.inf):
            raise ConfigError(f"budget.cost_s must be a positive, finite number of seconds, got {self.budget.cost_s}")
        if in_memory_sqlite(self.storage):
            raise ConfigError(f"storage: {self.storage!r} is an in-memory SQLite ledger, gone with the process: "
                              f"the search could be neither resumed nor reported (give a file: "
                              f"sqlite:///path/ledger.db, or leave storage out for the run directory's)")
        if self.seed < 0:
            raise ConfigError(f"seed must be an integer >= 0 (numpy's and Optuna's seeds), got {self.seed}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be at least 1 (or null for torch's default), got {self.threads}")

    def strategy_params(self) -> dict[str, Any]:
        params = dict(self.strategy.params)
        if self.predictor is not None:
            params["predictor"] = self.predictor.to_config()
        return params

    def evaluator_params(self) -> dict[str, Any]:
        params = dict(self.evaluator.params)
        if self.dataset is not None:
            params["dataset"] = self.dataset
        return params


def _check_name(name: str) -> None:
    """A name is one directory under runs/ and the ledger's study: no path."""
    if name in ("", ".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise ConfigError(f"name: {name!r} must be one directory name (the run directory runs/NAME and the "
                          f"ledger's study): no path separator (/ or \\), not '.', '..' or empty")


def _predictor_name(name: str) -> str:
    from .guided import resolve_predictor_name
    return resolve_predictor_name(name)


def _default_evaluator(space: Component) -> Component:
    """The benchmark table of the space (building it says so if there is none)."""
    from ..benchmarks.base import tables_of
    from ..evaluators.tabular import DATASETS
    searchable = [name for name in tables_of(space.name) if name in DATASETS]
    return Component("tabular", {"benchmark": searchable[0] if searchable else space.name})


def _component(value: Any, key: str) -> Component:
    if isinstance(value, str) and value:
        return Component(value)
    if isinstance(value, Mapping):
        if not isinstance(value.get("name"), str) or not value["name"]:
            raise ConfigError(f"{key}.name: a {key} mapping needs a name (e.g. {key}: {{name: ..., ...}})")
        params = {k: v for k, v in value.items() if k != "name"}
        for k in params:
            if not isinstance(k, str):
                raise ConfigError(f"{key}: parameter names must be strings, got {k!r}")
        return Component(value["name"], params)
    raise ConfigError(f"{key}: expected a name or a mapping with a name, got {type(value).__name__} {value!r}")


def parse_constraints(value: Any) -> tuple[ConstraintSpec, ...]:
    if value is None:
        return ()
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"constraints: expected a list of mappings, got {type(value).__name__} {value!r}")
    out = []
    for i, item in enumerate(value):
        key = f"constraints[{i}]"
        if not isinstance(item, Mapping):
            raise ConfigError(f"{key}: expected a mapping (metric, max and/or min, evaluator), got {item!r}")
        unknown = [k for k in item if k not in ("metric", "max", "min", "evaluator")]
        if unknown:
            raise ConfigError(f"{key}.{unknown[0]}: unknown key (known: metric, max, min, evaluator)")
        for required in ("metric", "evaluator"):
            if item.get(required) is None:
                raise ConfigError(f"{key}.{required}: required (e.g. {{metric: latency_ms, max: 5.0, "
                                  f"evaluator: {{name: latency_table, device: pixel3}}}})")
        bounds = {b: _typed(item.get(b), f"{key}.{b}", (int, float, type(None))) for b in ("max", "min")}
        for b, value in bounds.items():
            _check_number(value, f"{key}.{b}")
        out.append(ConstraintSpec(_typed(item["metric"], f"{key}.metric", str),
                                  _component(item["evaluator"], f"{key}.evaluator"),
                                  *(None if bounds[b] is None else float(bounds[b]) for b in ("max", "min"))))
    return tuple(out)


_CONSTRAINT_EXAMPLE = ("e.g. --constraint 'latency_ms <= 5 latency_table device=pixel3', "
                       "'0.5 <= params_m_c10 <= 1 tabular dataset=cifar10'")


def parse_constraint_flag(text: str) -> ConstraintSpec:
    """A ``--constraint`` as the summary prints one: the bounds (``METRIC <= MAX``,
    ``METRIC >= MIN``, both joined by ``and``, or ``MIN <= METRIC <= MAX``), then
    the evaluator's name and its parameters as ``key=value`` (each value read as
    YAML), in parentheses or not: ``latency_ms <= 5 (latency_table device=pixel3)``."""
    import yaml
    def fail(why: str):
        raise ConfigError(f"--constraint {text!r}: {why} ({_CONSTRAINT_EXAMPLE})")

    def number(token: str) -> float | None:
        try:
            return float(token)
        except ValueError:
            return None

    if text.count("(") != text.count(")") or text.count("(") > 1 or text.find(")") < text.find("("):
        fail("unbalanced parentheses: at most one pair, around the evaluator and its parameters")
    tokens = re.sub(r"(<=|>=|[()])", r" \1 ", text).replace("(", " ").replace(")", " ").split()
    metric, bounds, i = None, {}, 0

    def bound(name: str, op: str, value: str) -> None:
        nonlocal metric
        if number(value) is None or number(name) is not None:
            fail(f"'{name} {op} {value}': expected a metric {op} a number")
        if not math.isfinite(number(value)):
            fail(f"'{name} {op} {value}': expected a finite number")
        if metric not in (None, name):
            fail(f"one constraint bounds one metric, not {metric} and {name}")
        key = "max" if op == "<=" else "min"
        if key in bounds:
            fail(f"two {key} bounds on {name}")
        metric, bounds[key] = name, number(value)

    while True:
        if len(tokens) < i + 3 or tokens[i + 1] not in ("<=", ">="):
            fail("expected a bound such as latency_ms <= 5" if metric is None else
                 "expected another bound after 'and'")
        left, op, right = tokens[i:i + 3]
        i += 3
        if number(left) is not None and op == "<=" and tokens[i:i + 1] == ["<="] and len(tokens) > i + 1:
            bound(right, ">=", left)           # MIN <= METRIC <= MAX
            bound(right, "<=", tokens[i + 1])
            i += 2
        else:
            bound(left, op, right)
        if tokens[i:i + 1] != ["and"]:
            break
        i += 1
    if i >= len(tokens):
        fail(f"no evaluator to compute {metric} (any registered one, e.g. latency_table, tabular, proxies)")
    params = {}
    for item in tokens[i + 1:]:
        key, eq, value = item.partition("=")
        if not eq or not key:
            fail(f"{item!r}: the evaluator's parameters are key=value")
        if key in params:
            fail(f"{key!r} is given twice")
        try:
            params[key] = load_yaml(value)
        except (yaml.YAMLError, DuplicateKeyError):
            fail(f"{item!r}: the value is not YAML")
    return ConstraintSpec(metric, Component(tokens[i], params), bounds.get("max"), bounds.get("min"))


def _budget(value: Any) -> Budget:
    if isinstance(value, bool):
        raise ConfigError(f"budget: expected a number of evaluations or a mapping, got {value!r}")
    if isinstance(value, int):
        return Budget(evaluations=value)
    if isinstance(value, Mapping):
        unknown = [k for k in value if k not in ("evaluations", "cost_s")]
        if unknown:
            raise ConfigError(f"budget.{unknown[0]}: unknown key (known: evaluations, cost_s)")
        evaluations = _typed(value.get("evaluations"), "budget.evaluations", (int, type(None)))
        cost = _typed(value.get("cost_s"), "budget.cost_s", (int, float, type(None)))
        if evaluations is None and cost is None:
            raise ConfigError("budget: give evaluations, cost_s or both")
        return Budget(evaluations=evaluations, cost_s=None if cost is None else float(cost))
    raise ConfigError(f"budget: expected a number of evaluations or a mapping, got {type(value).__name__}")


def _typed(value: Any, key: str, types) -> Any:
    types = types if isinstance(types, tuple) else (types,)
    if isinstance(value, bool) and bool not in types:
        ok = False
    else:
        ok = isinstance(value, types)
    if not ok:
        names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
        raise ConfigError(f"{key}: expected {names}, got {type(value).__name__} {value!r}")
    return value


def _parameters(target: Any) -> dict[str, inspect.Parameter]:
    if target is None:
        return {}
    fn = target.__init__ if inspect.isclass(target) else target
    return dict(inspect.signature(fn).parameters)


def _lookup(registry, component: Component, key: str):
    try:
        return registry.get(component.name)
    except UnknownNameError as exc:
        raise ConfigError(f"{key}: {exc}") from None


def _check_component(registry, component: Component, key: str):
    """The registered object; each parameter must be one it takes, of the right
    type (its annotation, else its default's), a finite number, and not negative
    where flownas's own component has a positive default (a size, a rate, a count)."""
    target = _lookup(registry, component, key)
    params = _parameters(target)
    skip = _INJECTED.get(registry.kind, ("self",))
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    known = [n for n, p in params.items() if n not in skip and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    declared = _declared(target, params)
    accepted = known + [n for n in _keyword_parameters(target) if n not in known]   # **kwargs flownas knows
    takes_any = takes_any and accepted == known
    own = getattr(target, "__module__", "").startswith("flownas.")
    for name, value in component.params.items():
        if name in skip or (name not in accepted and not takes_any):
            close = difflib.get_close_matches(name, accepted, n=1)
            raise ConfigError(f"{key}.{name}: {registry.kind} {component.name!r} takes no parameter {name!r} " + (
                f"(did you mean {close[0]!r}?)" if close else f"(known: {', '.join(accepted) or 'none'})"))
        default, hint = declared.get(name, (inspect.Parameter.empty, None))
        if hint is not None and not _matches(value, hint):
            raise ConfigError(f"{key}.{name}: expected {_hint_name(hint)}, got {type(value).__name__} {value!r}")
        _check_number(value, f"{key}.{name}", default if own else None)
    missing = [n for n in known if params[n].default is inspect.Parameter.empty and n not in component.params]
    if missing:
        raise ConfigError(f"{key}.{missing[0]}: required by {registry.kind} {component.name!r}")
    return target


def _check_number(value: Any, key: str, default: Any = None) -> None:
    """NaN and infinities are refused; a negative value too where the default is positive."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key}: expected a finite number, got {value}")
    if (_is_number(value) and value < 0 and _is_number(default) and default > 0):
        raise ConfigError(f"{key}: must not be negative (default {default}), got {value}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _declared(target: Any, params: dict[str, inspect.Parameter]) -> dict[str, tuple[Any, Any]]:
    """Each parameter's default and type: its annotation, else the type of a
    plain (int, float, bool, str) default; then what ``**kwargs`` takes."""
    hints = _hints(target)
    declared = {}
    for name, p in params.items():
        if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        declared[name] = (p.default, hints.get(name) or _default_hint(p.default))
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        declared.update({k: v for k, v in _keyword_parameters(target).items() if k not in declared})
    return declared


def _default_hint(default: Any) -> Any:
    return type(default) if type(default) in (bool, int, float, str) else None


def _keyword_parameters(target: Any) -> dict[str, tuple[Any, Any]]:
    """What a component takes through ``**kwargs``, with default and type:
    the neural predictors' shared hyper-parameters, the training evaluator's
    ``TrainConfig`` fields."""
    if not inspect.isclass(target):
        return {}
    from ..predictors.neural import COMMON_DEFAULTS, NeuralPredictor
    if issubclass(target, NeuralPredictor):
        defaults = {**COMMON_DEFAULTS, **getattr(target, "defaults", {})}
        return {k: (v, _NEURAL_HINTS.get(k) or _default_hint(v)) for k, v in defaults.items()}
    from ..evaluators.training import TrainConfig, TrainingEvaluator
    if issubclass(target, TrainingEvaluator):
        hints = _hints(TrainConfig)
        return {f.name: (f.default, hints.get(f.name)) for f in dataclasses.fields(TrainConfig)}
    return {}


def _hints(target: Any) -> dict[str, Any]:
    fn = target.__init__ if inspect.isclass(target) and not dataclasses.is_dataclass(target) else target
    try:
        return typing.get_type_hints(fn)
    except Exception:   # annotations that do not evaluate: no type checks, names still checked
        return {}


def _matches(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    base = origin or hint
    if base in (list, tuple, typing.Sequence):
        return isinstance(value, (list, tuple))
    if base in (dict, typing.Mapping):
        return isinstance(value, Mapping)
    return True   # a type we do not check (a class instance given in Python)


def _hint_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return " or ".join(_hint_name(h) for h in typing.get_args(hint))
    if origin is typing.Literal:
        return " or ".join(repr(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "null"
    if origin is None and isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")
