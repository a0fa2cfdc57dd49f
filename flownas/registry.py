"""Registries by name (timm style): ``@SPACES.register("nb201")``.

A registry discovers its implementations lazily: the first lookup imports every
module of its package, then every plug-in of its entry-point group
(``flownas.spaces``, ``flownas.strategies``, ...; so a pip-installed plug-in
appears without editing flownas).
A plug-in that fails to import, or names something other than what its
registry expects (``expects``: spaces must be ``SearchSpace`` subclasses), is
reported (a warning, and its name's lookup says why) without taking the others
down. Importing flownas itself stays cheap.
"""
from __future__ import annotations

import difflib
import fnmatch
import importlib
import importlib.metadata
import pkgutil
import warnings
from typing import Any

from .errors import ConfigError, UnknownNameError


class Registry:
    def __init__(self, kind: str, package: str, plural: str | None = None, expects: str | None = None):
        self.kind = kind                  # "space", "predictor", ...
        self.package = package            # "flownas.spaces"
        self.group = f"flownas.{plural or kind + 's'}"   # the entry-point group of plug-ins
        # "module:Class": a plug-in must name a subclass of it (resolved at discovery: no import cycle)
        self.expects = expects
        self._entries: dict[str, Any] = {}
        self._broken: dict[str, str] = {}  # plug-ins that failed to load: name -> why
        self._discovered = False

    def register(self, name: str, obj: Any = None):
        """Register ``obj`` under ``name``; usable as a decorator."""
        def add(o):
            current = self._entries.get(name)
            if current is not None and current is not o:
                raise ValueError(f"{self.kind} {name!r} is registered twice: "
                                 f"{_qualname(current)} and {_qualname(o)}")
            self._entries[name] = o
            return o
        return add if obj is None else add(obj)

    def get(self, name: str) -> Any:
        if not isinstance(name, str):
            got = "None" if name is None else f"{type(name).__name__} {name!r}"
            raise ConfigError(f"a {self.kind} must be a name (a str), got {got}")
        self._discover()
        try:
            return self._entries[name]
        except KeyError:
            if name in self._broken:
                raise UnknownNameError(f"{self.kind} {name!r} is an installed plug-in that failed to load: "
                                       f"{self._broken[name]}") from None
            close = difflib.get_close_matches(name, self._entries, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else (
                # one of your own is known only where it is registered: in that process, or installed
                f"; one of your own must be registered in this process or installed as a "
                f"{self.group} plug-in (docs/custom_spaces.md, 'Plug-ins')")
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}{hint} "
                f"(known: {', '.join(sorted(self._entries)) or 'none'})") from None

    def create(self, name: str, **kwargs) -> Any:
        return self.get(name)(**kwargs)

    def names(self, pattern: str = "*") -> list[str]:
        self._discover()
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: str) -> bool:
        self._discover()
        return name in self._entries

    def _discover(self) -> None:
        if self._discovered:
            return
        pkg = importlib.import_module(self.package)
        for mod in pkgutil.iter_modules(pkg.__path__):
            if not mod.name.startswith("_"):
                importlib.import_module(f"{self.package}.{mod.name}")
        for ep in importlib.metadata.entry_points(group=self.group):
            try:
                obj = ep.load()
                self._check_plugin(obj)
            except Exception as exc:
                self._broken[ep.name] = f"{ep.value}: {type(exc).__name__}: {exc}"
                warnings.warn(f"flownas {self.kind} plug-in {ep.name!r} failed to load ({self._broken[ep.name]})",
                              RuntimeWarning, stacklevel=3)
                continue
            current = self._entries.get(ep.name)
            if current is None:
                self.register(ep.name, obj)
            elif current is not obj:   # a plug-in may register itself; one named like another is left out
                warnings.warn(f"flownas {self.kind} plug-in {ep.name!r} ({ep.value}) is ignored: {ep.name!r} is "
                              f"{_qualname(current)} (give the plug-in another name)", RuntimeWarning, stacklevel=3)
        # set last: a failed import fails again, loudly, on the next lookup
        self._discovered = True

    def _check_plugin(self, obj: Any) -> None:
        """Raise TypeError when ``obj`` is not what this registry expects (``expects``)."""
        if self.expects is None:
            return
        module, _, name = self.expects.partition(":")
        base = getattr(importlib.import_module(module), name)
        if not (isinstance(obj, type) and issubclass(obj, base)):
            got = f"the class {_qualname(obj)}" if isinstance(obj, type) else f"{type(obj).__name__} {obj!r}"[:80]
            raise TypeError(f"a {self.kind} plug-in must name a {base.__name__} subclass, it names {got}")


def _qualname(o: Any) -> str:
    return f"{getattr(o, '__module__', '?')}.{getattr(o, '__qualname__', repr(o))}"


SPACES = Registry("space", "flownas.spaces", expects="flownas.spaces.base:SearchSpace")
PREDICTORS = Registry("predictor", "flownas.predictors")
STRATEGIES = Registry("strategy", "flownas.search", plural="strategies")
EVALUATORS = Registry("evaluator", "flownas.evaluators")
BENCHMARKS = Registry("benchmark", "flownas.benchmarks")
EXECUTORS = Registry("executor", "flownas.runtime")


def get_space(name: str, **kwargs) -> Any:
    """The search space registered as ``name``, instantiated."""
    return SPACES.get(name)(**kwargs)
