"""Any NNI ``ModelSpace`` as a flownas search space.

An NNI model space (``LayerChoice``, ``InputChoice``, ``nni.choice``,
``Repeat``, ``Cell``, the hub spaces of ``nni.nas.hub.pytorch`` ...) is a set
of labelled decisions (``model_space.simplify()``); a *sample* gives each a
value and ``model_space.freeze(sample)`` builds that network. This adapter:

- samples and mutates through those decisions (seeded: numpy ``rng``);
- builds the ``Architecture`` by tracing the frozen network with torch.fx
  (``flownas.graph.from_module``): operator nodes with attributes, no module
  names, so two samples that build the same network give equal, equal-hashing
  architectures;
- ``to_params``/``from_params`` are the sample itself (values that are not
  plain scalars, e.g. the list of an ``InputChoice``, as JSON strings, so an
  Optuna sampler can use ``param_space()``); ``to_string`` is the sample as
  JSON, the text form to store: ``parse`` rebuilds the network from it;
- ``to_model`` builds the sample's network (only the chosen modules, under
  ``nni.nas.space.model_context``; a fresh copy: models never share weights).

The sample is not part of the architecture (two samples may build one
network), so the space remembers the sample of every architecture it has
built; a bare graph from elsewhere is recovered through its text form
(``space.parse(space.to_string(arch))``). Pickling the space keeps that memory.

nni is imported only when a model space is first needed (its import takes
seconds and warns about new torch versions; the warnings are silenced here).

Register your own space by name (also usable from an entry point of the group
``flownas.spaces``)::

    from flownas.spaces.nni_adapter import nni_space
    MySpace = nni_space("my-space", "mypackage.spaces:MyModelSpace", width=16)
"""
from __future__ import annotations

import contextlib
import copy
import itertools
import json
import logging
import warnings
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from .. import graph
from ..arch import FORMAT, Architecture
from ..errors import ArchitectureError, ConfigError
from ..registry import SPACES
from .base import SearchSpace

_MAX_CHOICES = 4096      # a parameter with more combinations is not offered as categorical


@contextlib.contextmanager
def _quiet():
    """NNI warns about untested torch versions and logs every freeze at INFO."""
    nni_log = logging.getLogger("nni")
    level = nni_log.level
    nni_log.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        nni_log.setLevel(level)


def _nni():
    """The nni modules the adapter uses, imported on first use."""
    with _quiet():
        import nni.mutable
        import nni.nas.nn.pytorch  # noqa: F401 - registers the torch mutables
        import nni.nas.space  # noqa: F401 - model_context
    return nni


class NNISpace(SearchSpace):
    """An NNI ModelSpace, sampled through its mutables and traced into graphs."""

    name = "nni"
    ops = graph.OPS
    input_op = "input"
    output_op = "output"
    # subclasses made by nni_space() set these
    model_space_source: Any = None
    model_space_kwargs: Mapping[str, Any] = {}
    max_tries = 100

    def __init__(self, model_space: Any = None, *, name: str | None = None,
                 input_shape: tuple[int, ...] | None = None, extra_ops: tuple[str, ...] = (),
                 **kwargs: Any):
        """``model_space``: an nni ``ModelSpace``, a class or factory making one
        (called with ``kwargs``), or its import path ``"package.module:name"``.
        ``extra_ops``: operator names beyond ``flownas.graph.OPS`` that its
        networks use (a traced op outside the vocabulary is an error, so that
        predictors can encode every member)."""
        source = model_space if model_space is not None else self.model_space_source
        if source is None:
            raise ConfigError("an NNI space needs a model space: an nni ModelSpace, its class or factory, "
                              "or 'package.module:name'")
        if isinstance(source, str):
            source = graph.import_object(source)
        self._source = source
        self._kwargs = {**self.model_space_kwargs, **kwargs}
        self.name = name or type(self).name
        if extra_ops:
            self.ops = tuple(self.ops) + tuple(op for op in extra_ops if op not in self.ops)
        self.input_shape = tuple(int(s) for s in (input_shape or type(self).input_shape))
        self._space = None                    # the nni model space, built on first use
        self._params: dict[str, Any] = {}     # label -> nni mutable (the decisions)
        self._constraints: list[Any] = []
        self._samples: dict[str, dict] = {}   # arch.key -> its sample
        self._archs: dict[str, Architecture] = {}   # sample JSON -> arch

    # -- the nni model space -----------------------------------------------------
    @property
    def model_space(self):
        if self._space is None:
            nni = _nni()
            src = self._source
            with _quiet():
                space = src if isinstance(src, nni.mutable.Mutable) else None
                if space is None:
                    if not callable(src):
                        raise ConfigError(f"{src!r} is neither an nni ModelSpace nor a factory of one")
                    space = src(**self._kwargs)
                elif self._kwargs:
                    raise ConfigError(f"keyword arguments {sorted(self._kwargs)} need a model space "
                                      "class or factory, not an instance")
            if not isinstance(space, nni.mutable.Mutable) or not hasattr(space, "freeze"):
                raise ConfigError(f"{_describe(src)} made a {type(space).__name__}, not an nni ModelSpace")
            annotation = nni.mutable.MutableAnnotation
            for label, mutable in space.simplify().items():
                if isinstance(mutable, annotation):
                    self._constraints.append(mutable)
                else:
                    self._params[label] = mutable
            self._space = space
        return self._space

    def _frozen(self, sample: dict):
        """A new network for ``sample``, sharing no module with the space."""
        import torch
        nni = _nni()
        space = self.model_space
        with _quiet():
            if hasattr(space, "trace_args"):
                # a ModelSpace records its init arguments: rebuilding it under the
                # sample builds only the chosen modules (freeze() copies them all)
                with nni.nas.space.model_context(dict(sample)):
                    model = type(space)(*space.trace_args, **space.trace_kwargs)
                shared = any(isinstance(a, torch.nn.Module)
                             for a in (*space.trace_args, *space.trace_kwargs.values()))
                return copy.deepcopy(model) if shared else model
            # freeze() may hand out the space's own candidate modules: copy
            return copy.deepcopy(space.freeze(dict(sample)))

    # -- samples <-> architectures -------------------------------------------------
    def _architecture(self, sample: dict) -> Architecture:
        text = _sample_json(sample)
        arch = self._archs.get(text)
        if arch is None:
            model = self._frozen(sample)
            try:
                arch = graph.from_module(model, self.input_shape, space=self.name, copy_module=False)
            except ArchitectureError as exc:
                raise ArchitectureError(f"NNI space {self.name!r}, sample {text}: {exc}") from exc
            unknown = sorted(set(arch.ops) - set(self.ops))
            if unknown:
                raise ArchitectureError(
                    f"NNI space {self.name!r}, sample {text}: operators {', '.join(unknown)} are not in the "
                    f"vocabulary (flownas.graph.OPS): declare them with extra_ops=")
            self._archs[text] = arch
            self._samples.setdefault(arch.key, dict(sample))
        return arch

    def _sample_of(self, arch: Architecture) -> dict:
        self.validate(arch)
        return dict(self._samples[arch.key])

    def _violation(self, sample: dict) -> str | None:
        """Why ``sample`` is not in the space, or None."""
        self.model_space
        sample = dict(sample)      # some nni constraints write their verdict into the sample
        for label, mutable in self._params.items():
            err = mutable.check_contains(sample)
            if err is not None:
                return f"{label}: {err}"
        for constraint in self._constraints:
            err = constraint.check_contains(sample)
            if err is not None:
                return f"constraint {constraint.label!r}: {err}"
        return None

    # -- the interface ---------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Architecture:
        self.model_space
        state = np.random.RandomState(int(rng.integers(2**32)))
        for _ in range(self.max_tries):
            sample: dict = {}
            with _quiet():
                for mutable in self._params.values():
                    mutable.random(sample, state)
            sample = {k: sample[k] for k in self._params}
            if self._violation(sample) is None:
                return self._architecture(sample)
        raise ArchitectureError(f"NNI space {self.name!r}: no sample met the constraints in "
                                f"{self.max_tries} tries")

    def mutate(self, arch: Architecture, rng: np.random.Generator) -> Architecture:
        sample = self._sample_of(arch)
        labels = [k for k, m in self._params.items() if _num_values(m) != 1]
        if not labels:
            raise ArchitectureError(f"NNI space {self.name!r} has a single member: nothing to mutate")
        state = np.random.RandomState(int(rng.integers(2**32)))
        for _ in range(self.max_tries):
            label = labels[int(rng.integers(len(labels)))]
            child = dict(sample)
            child[label] = _other_value(self._params[label], sample[label], rng, state)
            if self._violation(child) is not None:
                continue
            new = self._architecture(child)
            if new != arch:          # a decision the network does not use changes nothing
                return new
        raise ArchitectureError(f"NNI space {self.name!r}: no different neighbour found in "
                                f"{self.max_tries} tries")

    def validate(self, arch: Architecture) -> None:
        if not isinstance(arch, Architecture):
            raise ArchitectureError(f"expected an Architecture, got {type(arch).__name__}")
        if arch.space != self.name:
            raise self._error(f"the architecture belongs to space {arch.space!r}")
        if arch.key not in self._samples:
            raise self._error(
                "no sample of this space built this network here (an NNI network is rebuilt from "
                "its sample: keep space.to_string(arch) and read it back with space.parse)")

    def to_model(self, arch: Architecture, **options: Any):
        if options:
            raise TypeError(f"NNI networks take their options from the model space, not "
                            f"to_model: {', '.join(options)}")
        return self._frozen(self._sample_of(arch))

    def param_space(self) -> dict[str, tuple]:
        self.model_space
        return {label: _choices(label, m) for label, m in self._params.items()}

    def to_params(self, arch: Architecture) -> dict[str, Any]:
        return {label: _encode(value) for label, value in self._sample_of(arch).items()}

    def from_params(self, params: Mapping[str, Any]) -> Architecture:
        self.model_space
        if not isinstance(params, Mapping):
            raise ArchitectureError(f"NNI space {self.name!r}: a sample is a mapping label -> value, "
                                    f"got {type(params).__name__}")
        missing = [k for k in self._params if k not in params]
        unknown = [k for k in params if k not in self._params]
        if missing or unknown:
            raise self._error("; ".join(
                ([f"missing decisions {', '.join(missing)}"] if missing else [])
                + ([f"unknown decisions {', '.join(unknown)}"] if unknown else [])))
        sample = {k: _decode(self._params[k], params[k]) for k in self._params}
        why = self._violation(sample)
        if why is not None:
            raise self._error(why)
        return self._architecture(sample)

    def to_string(self, arch: Architecture) -> str:
        return _sample_json(self._sample_of(arch))

    def from_string(self, text: str) -> Architecture:
        try:
            params = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ArchitectureError(f"an NNI sample is a JSON object: {exc}") from None
        return self.from_params(params)

    def parse(self, text: str) -> Architecture:
        text = text.strip()
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ArchitectureError(f"NNI space {self.name!r} reads JSON (a sample or an "
                                    f"architecture): {exc}") from None
        if isinstance(record, dict) and record.get("format") == FORMAT:
            arch = Architecture.from_dict(record)
            arch = arch if arch.space else arch.with_space(self.name)
            self.validate(arch)
            return arch
        return self.from_params(record)

    def size(self) -> int | None:
        return None    # constraints and unused decisions make counting the networks hard

    def enumerate(self) -> Iterator[Architecture]:
        raise NotImplementedError(f"NNI space {self.name!r} is not enumerated (sample or search it)")

    # -- pickling: the nni objects are rebuilt, the memory of samples is kept -----
    def __reduce__(self):
        state = dict(self.__dict__)
        state["_archs"] = {}
        if not _is_instance_source(self._source):
            state["_space"], state["_params"], state["_constraints"] = None, {}, []
        # classes made by nni_space() cannot be found by import: rebuild as NNISpace
        cls = type(self) if "[" not in type(self).__qualname__ else NNISpace
        return (_rebuild, (cls, state))


def _rebuild(cls, state):
    space = cls.__new__(cls)
    space.__dict__.update(state)
    return space


def nni_space(name: str, model_space: Any, *, input_shape: tuple[int, ...] = (3, 32, 32),
              extra_ops: tuple[str, ...] = (), register: bool = True, doc: str | None = None,
              **kwargs: Any) -> type[NNISpace]:
    """A search-space class named ``name`` for an NNI model space (its class,
    factory or ``"package.module:name"``, called with ``kwargs``), registered
    in ``flownas.registry.SPACES`` unless ``register=False``. ``extra_ops``:
    see ``NNISpace``.

    The class takes no arguments, so ``get_space(name)``, configs and
    ``flownas spaces`` can use it; point an entry point of the group
    ``flownas.spaces`` at it to ship it in a package.
    """
    summary = doc or f"NNI model space {_describe(model_space)}"
    cls = type(f"NNISpace[{name}]", (NNISpace,), {
        "name": name,
        "model_space_source": staticmethod(model_space) if _is_plain_function(model_space) else model_space,
        "model_space_kwargs": dict(kwargs),
        "input_shape": tuple(input_shape),
        "ops": graph.OPS + tuple(op for op in extra_ops if op not in graph.OPS),
        "__doc__": summary,
        "__module__": __name__,
    })
    if register:
        SPACES.register(name, cls)
    return cls


# -- sample values ----------------------------------------------------------------
def _sample_json(sample: Mapping[str, Any]) -> str:
    return json.dumps(sample, sort_keys=True, separators=(",", ":"), default=_json_default)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def _is_scalar(value) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _encode(value):
    """A parameter value an Optuna categorical accepts: scalars as they are,
    anything else as JSON."""
    if isinstance(value, np.generic):
        value = value.item()
    return value if _is_scalar(value) else json.dumps(value, separators=(",", ":"), default=_json_default)


def _decode(mutable, value):
    """The sample value of a parameter value (``_encode`` undone)."""
    nni = _nni()
    if isinstance(mutable, nni.mutable.CategoricalMultiple):
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise ArchitectureError(f"{mutable.label}: {value!r} is not a JSON list") from None
        if isinstance(value, (list, tuple)):     # NNI lists choices in the order of its values
            value = sorted(value, key=lambda v: mutable.values.index(v) if v in mutable.values else -1)
        return value
    if isinstance(mutable, nni.mutable.Categorical) and value not in mutable.values:
        for choice in mutable.values:         # a non-scalar choice arrives as JSON
            if _encode(choice) == value:
                return choice
    return value


def _num_values(mutable) -> int | None:
    nni = _nni()
    if isinstance(mutable, nni.mutable.Categorical):
        return len(mutable.values)
    if isinstance(mutable, nni.mutable.CategoricalMultiple):
        return len(_multiple_values(mutable, limit=2))
    return None


def _multiple_values(mutable, limit: int | None = None) -> list[list]:
    values = mutable.values
    if mutable.n_chosen is not None:
        combos = itertools.combinations(values, mutable.n_chosen)
    else:
        combos = itertools.chain.from_iterable(
            itertools.combinations(values, r) for r in range(len(values) + 1))
    return [list(c) for c in itertools.islice(combos, limit)]


def _choices(label: str, mutable) -> tuple:
    nni = _nni()
    if isinstance(mutable, nni.mutable.Categorical):
        return tuple(_encode(v) for v in mutable.values)
    if isinstance(mutable, nni.mutable.CategoricalMultiple):
        combos = _multiple_values(mutable, limit=_MAX_CHOICES + 1)
        if len(combos) > _MAX_CHOICES:
            raise ConfigError(f"decision {label!r} has more than {_MAX_CHOICES} combinations: "
                              "too many for a categorical parameter")
        return tuple(_encode(c) for c in combos)
    grid = list(itertools.islice(mutable.grid(granularity=1), _MAX_CHOICES + 1)) \
        if getattr(mutable, "quantize", None) else None
    if not grid or len(grid) > _MAX_CHOICES:
        raise ConfigError(f"decision {label!r} ({type(mutable).__name__}) is continuous: it cannot be a "
                          "categorical parameter (quantize it, or use nni.choice)")
    return tuple(_encode(v) for v in grid)


def _other_value(mutable, current, rng: np.random.Generator, state: np.random.RandomState):
    """A value of ``mutable`` other than ``current`` (when it has one)."""
    nni = _nni()
    if isinstance(mutable, nni.mutable.Categorical):
        others = [v for v in mutable.values if v != current]
        return others[int(rng.integers(len(others)))] if others else current
    for _ in range(20):
        memo: dict = {}
        with _quiet():
            value = mutable.random(memo, state)
        value = memo.get(mutable.label, value)
        if value != current:
            return value
    return current


def _describe(source) -> str:
    if isinstance(source, str):
        return source
    return getattr(source, "__qualname__", None) or type(source).__name__


def _is_plain_function(obj) -> bool:
    return callable(obj) and not isinstance(obj, type) and hasattr(obj, "__get__") \
        and type(obj).__name__ == "function"


def _is_instance_source(source) -> bool:
    """A model space object (kept when pickling), not a class or factory."""
    return not isinstance(source, type) and hasattr(source, "simplify")
