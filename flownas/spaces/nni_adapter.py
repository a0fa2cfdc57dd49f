"""Any NNI ``ModelSpace`` as a flownas search space.

An NNI model space (``LayerChoice``, ``InputChoice``, ``nni.choice``,
``Repeat``, ``Cell``, the hub spaces of ``nni.nas.hub.pytorch`` ...) is a set
of labelled decisions (``model_space.simplify()``); a *sample* gives each a
value and ``model_space.freeze(sample)`` builds that network. This adapter:

- samples and mutates through those decisions (seeded: numpy ``rng``);
- builds the ``Architecture`` by tracing that network with torch.fx
  (``flownas.graph.from_module``): operator nodes with attributes (op type,
  kernel, stride, channels, groups, output shape ...), no module names;
- the sample travels with the architecture, as the attribute ``nni_sample``
  (JSON) of its input node, so any process rebuilds the network from the
  architecture alone (a ledger, a Ray worker, ``get_space(arch.space)``);
- two samples that build one network (a decision the network does not use,
  two branches swapped) give one architecture: the space keeps, per network,
  the first sample it met (in this process) and hands out that architecture
  for both, so equal networks are equal, equal-hashing architectures;
- ``to_params``/``from_params`` are the sample (values that are not plain
  scalars, e.g. the list of an ``InputChoice``, as JSON strings, so an Optuna
  sampler can use ``param_space()``); ``to_string`` is the sample as JSON;
- ``to_model`` builds only the chosen modules (under NNI's
  ``model_context``), a new network every call; its options are arguments of
  the model space (``num_classes`` reaches NNI hub spaces as ``num_labels``).

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
import inspect
import itertools
import json
import logging
import warnings
from collections import OrderedDict
from typing import Any, Iterator, Mapping

import numpy as np

from .. import graph
from ..arch import FORMAT, Architecture, loads_json
from ..errors import ArchitectureError, ConfigError
from ..registry import SPACES
from .base import SearchSpace

_MAX_CHOICES = 4096      # a parameter with more combinations is not offered as categorical
SAMPLE_ATTR = "nni_sample"   # attribute of the input node: the sample, as JSON
_CACHE_SIZE = 4096

# per space identity: sample JSON -> traced architecture, and network key ->
# the first sample met that builds it (shared by the instances get_space makes)
_TRACED: "OrderedDict[tuple, Architecture]" = OrderedDict()
_FIRST_SAMPLE: "OrderedDict[tuple, str]" = OrderedDict()


def _remember(cache: OrderedDict, key, value):
    """``cache[key]``, set to ``value`` when absent; least recently used entries go."""
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    cache[key] = value
    if len(cache) > _CACHE_SIZE * (16 if cache is _FIRST_SAMPLE else 1):
        cache.popitem(last=False)
    return value


def _with_sample(network: Architecture, text: str) -> Architecture:
    attrs = [dict(a) for a in network.attrs] if network.attrs else [{} for _ in network.ops]
    attrs[network.ops.index("input")][SAMPLE_ATTR] = text
    return network.with_ops(network.ops, attrs)


def _carried_sample(arch: Architecture) -> str | None:
    for op, attrs in zip(arch.ops, arch.attrs or ()):
        if op == "input" and isinstance(attrs.get(SAMPLE_ATTR), str):
            return attrs[SAMPLE_ATTR]
    return None


def network_of(arch: Architecture) -> Architecture:
    """The network alone: ``arch`` without the NNI sample it carries."""
    if _carried_sample(arch) is None:
        return arch
    return arch.with_ops(arch.ops, [{k: v for k, v in a.items() if k != SAMPLE_ATTR} for a in arch.attrs])


def _network_key(arch: Architecture) -> str:
    return network_of(arch).key


def _model_options(cls, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """``to_model`` options as arguments of the model space class."""
    options = dict(options or {})
    init = getattr(cls, "_init_wrapped", None) or cls.__init__
    try:
        params = inspect.signature(init).parameters
    except (TypeError, ValueError):
        return options
    if "num_classes" in options and "num_classes" not in params and "num_labels" in params:
        options["num_labels"] = options.pop("num_classes")     # the NNI hub's name for it
    takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
    unknown = [k for k in options if k not in params and not takes_any]
    if unknown:
        raise TypeError(f"{cls.__name__} takes no argument {', '.join(unknown)}")
    return options


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
        self._source = source                 # an import path is imported on first use
        self._kwargs = {**self.model_space_kwargs, **kwargs}
        self.name = name or type(self).name
        if extra_ops:
            self.ops = tuple(self.ops) + tuple(op for op in extra_ops if op not in self.ops)
        self.input_shape = tuple(int(s) for s in (input_shape or type(self).input_shape))
        self._space = None                    # the nni model space, built on first use
        self._params: dict[str, Any] = {}     # label -> nni mutable (the decisions)
        self._constraints: list[Any] = []
        # what makes two instances the same space (they share traced networks)
        self._identity = (self.name, _describe(source) if not _is_instance_source(source) else id(source),
                          _sample_json(self._kwargs), self.input_shape)

    # -- the nni model space -----------------------------------------------------
    @property
    def model_space(self):
        if self._space is None:
            nni = _nni()
            src = graph.import_object(self._source) if isinstance(self._source, str) else self._source
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

    def _build(self, sample: dict, options: Mapping[str, Any] | None = None):
        """A new network for ``sample``, sharing no module with the space;
        ``options`` are arguments of the model space (``to_model``)."""
        import torch
        nni = _nni()
        space = self.model_space
        with _quiet():
            if not hasattr(space, "trace_args"):
                if options:
                    raise TypeError(f"NNI space {self.name!r}: options {', '.join(options)} need a "
                                    "ModelSpace that records its arguments")
                # freeze() may hand out the space's own candidate modules: copy
                return copy.deepcopy(space.freeze(dict(sample)))
            args, kwargs = space.trace_args, {**space.trace_kwargs, **_model_options(type(space), options)}
            # rebuilding the space under the sample builds only the chosen modules
            with nni.nas.space.model_context(dict(sample)):
                model = type(space)(*args, **kwargs)
            shared = any(isinstance(a, torch.nn.Module) for a in (*args, *kwargs.values()))
            return copy.deepcopy(model) if shared else model

    # -- samples <-> architectures -------------------------------------------------
    def _architecture(self, sample: dict) -> Architecture:
        """The traced network of ``sample``, carrying the sample of the first
        sample this space met that builds the same network."""
        text = _sample_json(sample)
        arch = _TRACED.get((self._identity, text))
        if arch is None:
            try:
                network = graph.from_module(self._build(sample), self.input_shape, space=self.name,
                                            copy_module=False)
            except ArchitectureError as exc:
                raise ArchitectureError(f"NNI space {self.name!r}, sample {text}: {exc}") from exc
            unknown = sorted(set(network.ops) - set(self.ops))
            if unknown:
                raise ArchitectureError(
                    f"NNI space {self.name!r}, sample {text}: operators {', '.join(unknown)} are not in the "
                    f"vocabulary (flownas.graph.OPS): declare them with extra_ops=")
            first = _remember(_FIRST_SAMPLE, (self._identity, network.key), text)
            arch = _with_sample(network, first)
            _remember(_TRACED, (self._identity, text), arch)
        return arch

    def _sample_of(self, arch: Architecture) -> dict:
        """The sample ``arch`` carries, checked against the space and the graph."""
        if not isinstance(arch, Architecture):
            raise ArchitectureError(f"expected an Architecture, got {type(arch).__name__}")
        if arch.space != self.name:
            raise self._error(f"the architecture belongs to space {arch.space!r}")
        text = _carried_sample(arch)
        if text is None:
            raise self._error(f"the graph carries no NNI sample (attribute {SAMPLE_ATTR!r} of its input "
                              "node): only architectures built by the space do")
        try:
            sample = loads_json(text, "the carried NNI sample")
        except json.JSONDecodeError:
            raise self._error(f"the carried sample is not JSON: {text[:80]!r}") from None
        why = self._mismatch(sample) or self._violation(sample)
        if why is not None:
            raise self._error(f"the carried sample is not one of this space: {why}")
        built = self._architecture(sample)
        if built != arch and _network_key(built) != _network_key(arch):
            raise self._error("the graph is not the network its sample builds")
        return sample

    def _mismatch(self, sample: Any) -> str | None:
        """Why ``sample`` does not name exactly the space's decisions, or None."""
        self.model_space
        if not isinstance(sample, Mapping):
            return f"a sample is a mapping label -> value, got {type(sample).__name__}"
        missing = [k for k in self._params if k not in sample]
        unknown = [k for k in sample if k not in self._params]
        if missing or unknown:
            return "; ".join(([f"missing decisions {', '.join(missing)}"] if missing else [])
                             + ([f"unknown decisions {', '.join(unknown)}"] if unknown else []))
        return None

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
        self._sample_of(arch)

    def to_model(self, arch: Architecture, **options: Any):
        """The network of ``arch``; ``options`` are arguments of the model
        space that override those the space was made with (``num_classes``
        reaches NNI hub spaces as ``num_labels``)."""
        return self._build(self._sample_of(arch), options)

    def param_space(self) -> dict[str, tuple]:
        self.model_space
        return {label: _choices(label, m) for label, m in self._params.items()}

    def to_params(self, arch: Architecture) -> dict[str, Any]:
        return {label: _encode(value) for label, value in self._sample_of(arch).items()}

    def from_params(self, params: Mapping[str, Any]) -> Architecture:
        self.model_space
        why = self._mismatch(params)
        if why is None:
            sample = {k: _decode(self._params[k], params[k]) for k in self._params}
            why = self._violation(sample)
        if why is not None:
            raise self._error(why)
        return self._architecture(sample)

    def to_string(self, arch: Architecture) -> str:
        return _sample_json(self._sample_of(arch))

    def from_string(self, text: str) -> Architecture:
        try:
            params = loads_json(text, "the NNI sample JSON")
        except json.JSONDecodeError as exc:
            raise ArchitectureError(f"an NNI sample is a JSON object: {exc}") from None
        return self.from_params(params)

    def parse(self, text: str) -> Architecture:
        text = text.strip()
        try:
            record = loads_json(text, "the architecture JSON")
        except json.JSONDecodeError as exc:
            raise ArchitectureError(f"NNI space {self.name!r} reads JSON (a sample or an "
                                    f"architecture): {exc}") from None
        if isinstance(record, dict) and record.get("format") == FORMAT:
            arch = Architecture.from_dict(record)
            arch = arch if arch.space else arch.with_space(self.name)
            self._sample_of(arch)
            return arch
        return self.from_params(record)

    def size(self) -> int | None:
        return None    # constraints and unused decisions make counting the networks hard

    def enumerate(self) -> Iterator[Architecture]:
        raise NotImplementedError(f"NNI space {self.name!r} is not enumerated (sample or search it)")

    # -- pickling: the nni objects are rebuilt where they are needed --------------
    def __reduce__(self):
        state = dict(self.__dict__)
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
                value = loads_json(value, f"the value of {mutable.label}")
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
    """``package.module:Name`` of a class or factory (its import path)."""
    if isinstance(source, str):
        return source
    name = getattr(source, "__qualname__", None)
    if name is None:
        return type(source).__name__
    return f"{getattr(source, '__module__', '?')}:{name}"


def _is_plain_function(obj) -> bool:
    return callable(obj) and not isinstance(obj, type) and hasattr(obj, "__get__") \
        and type(obj).__name__ == "function"


def _is_instance_source(source) -> bool:
    """A model space object (kept when pickling), not a class or factory."""
    return not isinstance(source, type) and hasattr(source, "simplify")
