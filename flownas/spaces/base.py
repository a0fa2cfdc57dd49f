"""The ``SearchSpace`` interface: every space (built in or a user's) has these
methods, and follows the rules of ``flownas.conformance`` (``flownas spaces
--check NAME``), which ``tests/test_spaces_conformance.py`` checks for every
registered space."""
from __future__ import annotations

import abc
import difflib
import functools
import json
from typing import Any, ClassVar, Iterator, Mapping

import numpy as np

from ..arch import FORMAT, Architecture, keys_text, loads_json
from ..errors import ArchitectureError, ConfigError, FlownasError, NotInSpaceError, check_whole


class SpaceMethodError(FlownasError):
    """A method of a space of your own broke its contract: ``sample``, ``mutate``
    or ``from_params`` raised something other than a flownas error, or returned
    something other than a member. The message names the space and the method;
    the original exception, if any, is the ``__cause__``."""


class SearchSpace(abc.ABC):
    """A set of architectures: sample, mutate, check, build.

    ``ops`` is the operation vocabulary in a fixed order (predictors one-hot
    encode by it): every node of every member has one of these ops.
    ``input_op``/``output_op`` name the single input and output nodes
    (None for spaces without them); ``input_shape`` is one input of the
    networks without the batch dimension.

    Writing your own: subclass, set ``name`` and ``ops``, implement the seven
    abstract methods (the optional ones have working defaults), register it
    with ``@SPACES.register("my-space")`` (or an entry point of the group
    ``flownas.spaces``, for a pip-installed plug-in), and run
    ``flownas spaces --check my-space`` (or ``flownas.conformance.check_space``).
    Rules every space keeps (``flownas.conformance`` checks them):

    - an architecture's identity is its labelled graph: equal (isomorphic)
      graphs are the same member, whatever their node numbering, so
      ``validate``, ``to_params`` and ``to_string`` must not depend on it;
    - all randomness comes from the ``rng`` argument (seeded runs repeat);
    - ``from_params(to_params(a)) == a`` and ``parse(to_string(a)) == a``;
    - the class must be constructible without arguments (``get_space(name)``).

    Examples: ``flownas/spaces/nb201.py``, ``examples/resnet_space.py``;
    ``flownas.spaces.custom.cell_space`` declares cell spaces without code and
    ``flownas.spaces.nni_adapter`` takes NNI model spaces (docs/custom_spaces.md).
    """

    name: ClassVar[str]
    ops: ClassVar[tuple[str, ...]]
    input_shape: ClassVar[tuple[int, ...]] = (3, 32, 32)   # one example of the networks' input (C, H, W)
    input_op: ClassVar[str | None] = "input"
    output_op: ClassVar[str | None] = "output"

    def __init_subclass__(cls, **kwargs):
        """Wrap the entry points a subclass defines in argument checks (``_GUARDS``),
        so that a wrong type gets a flownas error naming it, in every space.

        In a space of your own (methods defined outside flownas), what ``sample``,
        ``mutate`` and ``from_params`` return is checked too (``_checked``): an
        exception they raise, or a result that is not a member, is an error
        naming the space and the method, not a traceback (or wasted evaluations)
        further on. flownas's own spaces build members by construction, and skip
        that check (it would cost a ``validate`` per call)."""
        super().__init_subclass__(**kwargs)
        for name in _WRAPPED:
            fn = cls.__dict__.get(name)
            if not callable(fn) or getattr(fn, "_flownas_guarded", False) \
                    or getattr(fn, "__isabstractmethod__", False):
                continue
            if name in _RESULT_CHECKED and not _is_flownas(fn):
                fn = _checked(name, fn)
            if name in _GUARDS:
                fn = _GUARDS[name](fn)
            setattr(cls, name, fn)

    # -- required --------------------------------------------------------
    @abc.abstractmethod
    def sample(self, rng: np.random.Generator) -> Architecture:
        """A random member of the space (uniform where the space says so),
        drawn with ``rng`` only. Its ``space`` is ``self.name``."""

    @abc.abstractmethod
    def mutate(self, arch: Architecture, rng: np.random.Generator) -> Architecture:
        """A random neighbour: a member of the space that differs from ``arch``
        (``!=``), usually by one decision; drawn with ``rng`` only."""

    @abc.abstractmethod
    def validate(self, arch: Architecture) -> None:
        """Raise ``NotInSpaceError`` naming the broken rule, else return None.

        Check the space name and op vocabulary first (``check_common`` does,
        plus single input/output nodes); never rely on the node numbering."""

    @abc.abstractmethod
    def to_model(self, arch: Architecture, **options: Any):
        """A real, trainable ``torch.nn.Module`` for ``arch``: a new module on
        every call (no weights shared between calls). ``options`` are network
        settings such as ``num_classes``; raise ``TypeError`` for unknown ones.
        Import torch inside (or from ``spaces/networks/``) so that importing
        the space stays cheap."""

    @abc.abstractmethod
    def param_space(self) -> dict[str, tuple]:
        """Categorical parameters (name -> choices) for Optuna-style samplers.

        Choices are JSON scalars (None, bool, int, float, str), as Optuna's
        categorical distributions require; every member is reachable by some
        assignment (several assignments may give one member)."""

    @abc.abstractmethod
    def to_params(self, arch: Architecture) -> dict[str, Any]:
        """``arch`` as values of ``param_space()`` (one value per parameter,
        each among its choices), the same for every numbering of ``arch``."""

    @abc.abstractmethod
    def from_params(self, params: Mapping[str, Any]) -> Architecture:
        """The architecture of those parameter values; raises
        ``ArchitectureError`` (``NotInSpaceError`` for a broken rule) naming
        the bad or missing parameter."""

    # -- optional --------------------------------------------------------
    def contains(self, arch: Architecture) -> bool:
        try:
            self.validate(arch)
        except ArchitectureError:
            return False
        return True

    def normalize(self, arch: Architecture) -> Architecture:
        """The form the space stores (e.g. NB101 prunes dead vertices);
        ``sample``, ``mutate`` and ``from_params`` return normalized members."""
        return arch

    def neighbours(self, arch: Architecture) -> list[Architecture]:
        """Every member one parameter change away from ``arch`` (through
        ``to_params``/``from_params``), each once, ``arch`` itself excluded;
        assignments the space rejects are skipped."""
        params = self.to_params(arch)
        found: dict[str, Architecture] = {}
        for name, choices in self.param_space().items():
            for choice in choices:
                if choice == params.get(name):
                    continue
                try:
                    other = self.from_params({**params, name: choice})
                except ArchitectureError:
                    continue
                if other.key != arch.key:
                    found.setdefault(other.key, other)
        return list(found.values())

    def describe(self, arch: Architecture) -> dict[str, Any]:
        """What the space records of a candidate in the ledger, beside its
        outcome (a constrained space: the constrained metrics)."""
        return {}

    def enumerate(self) -> Iterator[Architecture]:
        """Every member, once (no two equal); only for finite spaces."""
        raise NotImplementedError(f"space {self.name!r} cannot be enumerated")

    def size(self) -> int | None:
        """Number of members, or None when infinite or unknown."""
        return None

    def to_string(self, arch: Architecture) -> str:
        """The space's native text form (NB201 string, genotype, ...): the same
        for every numbering of ``arch``, and ``parse`` reads it back."""
        return arch.to_json()

    def from_string(self, text: str) -> Architecture:
        _check_text(text)
        return self.normalize(Architecture.from_json(text))

    def parse(self, text: str) -> Architecture:
        """An architecture from flownas JSON or the space's native text form."""
        _check_text(text)
        text = text.strip()
        arch = self._from_flownas_json(text) if text.startswith("{") else self.from_string(text)
        arch = self.normalize(arch if arch.space else arch.with_space(self.name))
        self.validate(arch)
        return arch

    def _from_flownas_json(self, text: str) -> Architecture:
        """flownas JSON; a JSON object without ``format`` (another space's form, a
        typo) is refused saying which forms the space reads."""
        try:
            record = loads_json(text)
        except json.JSONDecodeError:
            record = None   # from_json says what does not parse
        if isinstance(record, Mapping) and "format" not in record:
            raise ArchitectureError(
                f"space {self.name!r} reads flownas JSON (an object with \"format\": \"{FORMAT}\", as "
                f"`flownas sample {self.name}` prints it) or its own text form (the \"string\" it prints); "
                f"this JSON object has no \"format\" (its keys: {keys_text(record)})")
        return Architecture.from_json(text)

    def __repr__(self) -> str:
        return f"<space {self.name}>"

    # -- shared checks for subclasses --------------------------------------
    def _error(self, rule: str) -> NotInSpaceError:
        return NotInSpaceError(self.name, rule)

    def check_param_names(self, params: Mapping[str, Any], names) -> None:
        """Refuse a parameter that is not one of ``names`` (the space's parameters,
        in ``param_space`` order): an ``ArchitectureError`` naming it."""
        unknown = [k for k in params if k not in names]
        if not unknown:
            return
        names = list(names)
        close = difflib.get_close_matches(str(unknown[0]), [str(n) for n in names], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        shown = ", ".join(map(str, names[:8])) + (f", ... ({len(names)} in all)" if len(names) > 8 else "")
        raise ArchitectureError(f"space {self.name!r} has no parameter {unknown[0]!r}{hint} "
                                f"(its parameters: {shown})")

    def check_common(self, arch: Architecture) -> None:
        """Space name, op vocabulary, and one input / one output node."""
        if not isinstance(arch, Architecture):
            raise ArchitectureError(f"expected an Architecture, got {type(arch).__name__}")
        if arch.space != self.name:
            raise self._error(f"the architecture belongs to space {arch.space!r}")
        known = set(self.ops)
        for i, op in enumerate(arch.ops):
            if op not in known:
                raise self._error(f"unknown op {op!r} at node {i} (known: {', '.join(self.ops)})")
        for role, op in (("input", self.input_op), ("output", self.output_op)):
            if op is None:
                continue
            count = arch.ops.count(op)
            if count != 1:
                raise self._error(f"needs exactly one {role} node ({op!r}), found {count}")
        if self.input_op is not None:
            src = arch.sources()
            if src != (arch.ops.index(self.input_op),):
                bad = [i for i in src if arch.ops[i] != self.input_op]
                raise self._error(f"node {bad[0]} ({arch.ops[bad[0]]}) has no input: only the input node may")
        if self.output_op is not None:
            snk = arch.sinks()
            if snk != (arch.ops.index(self.output_op),):
                bad = [i for i in snk if arch.ops[i] != self.output_op]
                raise self._error(f"node {bad[0]} ({arch.ops[bad[0]]}) feeds nothing: only the output node may")


def shown(text, limit: int = 200) -> str:
    """``repr(text)`` for a one-line message, cut short (an error may quote what it was given)."""
    text = text if isinstance(text, str) else repr(text)
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text):,} characters)"


# -- argument checks of every space's entry points ----------------------------
def _check_text(text) -> None:
    if not isinstance(text, str):
        got = "None" if text is None else f"{type(text).__name__} {text!r}"[:80]
        raise ArchitectureError(f"an architecture's text form must be a str, got {got}")


def _check_rng(rng) -> None:
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(f"rng must be a numpy.random.Generator (numpy.random.default_rng(seed)), "
                          f"got {type(rng).__name__} {rng!r}"[:160])


#: network options that are sizes, checked before torch sees them
_SIZE_OPTIONS = ("num_classes",)


def _check_options(options: Mapping[str, Any]) -> None:
    for name in _SIZE_OPTIONS:
        if options.get(name) is not None:
            check_whole(name, options[name])


def _check_params(params: Any) -> None:
    if not isinstance(params, Mapping):
        raise ArchitectureError(f"params must be a mapping of parameter name to value (as to_params gives), "
                                f"got {type(params).__name__}")


def _guard(check_first=None, check_options=None):
    """A method wrapped so that its first argument (``check_first``) or its
    keyword options (``check_options``) are checked before it runs."""
    def wrap(fn):
        @functools.wraps(fn)
        def guarded(self, first, *args, **kwargs):
            if check_first is not None:
                check_first(first)
            if check_options is not None:
                check_options(kwargs)
            return fn(self, first, *args, **kwargs)
        guarded._flownas_guarded = True
        return guarded
    return wrap


# the entry points every space gets checked (SearchSpace.__init_subclass__ wraps them)
_GUARDS = {"sample": _guard(_check_rng), "from_string": _guard(_check_text), "parse": _guard(_check_text),
           "from_params": _guard(_check_params), "to_model": _guard(check_options=_check_options)}
# the methods whose results are checked in a space of your own
_RESULT_CHECKED = ("sample", "mutate", "from_params")
_WRAPPED = tuple(_GUARDS) + tuple(n for n in _RESULT_CHECKED if n not in _GUARDS)


def _is_flownas(fn) -> bool:
    """Defined in flownas itself (a built-in space, the toys, the search's subspaces)."""
    module = getattr(fn, "__module__", None) or ""
    return module == "flownas" or module.startswith("flownas.")


def _checked(method: str, fn):
    """``fn`` (a method of a space of your own that returns a member) with its
    outcome checked: an exception that is not a flownas error, a result that is
    not an ``Architecture``, or one that ``validate`` refuses, becomes an error
    naming the space and the method. flownas errors pass unchanged (so
    ``from_params`` still refuses an assignment with ``ArchitectureError``, and
    an error from a nested checked call is not wrapped twice)."""
    @functools.wraps(fn)
    def checked(self, *args, **kwargs):
        name = getattr(self, "name", type(self).__name__)
        fix = check_hint(name)
        try:
            arch = fn(self, *args, **kwargs)
        except FlownasError:
            raise
        except Exception as exc:
            raise SpaceMethodError(f"space {name!r}: {method}() raised {type(exc).__name__}: {exc} {fix}") from exc
        if not isinstance(arch, Architecture):
            raise SpaceMethodError(f"space {name!r}: {method}() returned {type(arch).__name__}, "
                                   f"not an Architecture {fix}")
        try:   # a member once normalized, as strategies use it (normalize may prune what sample left)
            self.validate(self.normalize(arch))
        except ArchitectureError as exc:
            why = exc.rule if isinstance(exc, NotInSpaceError) else str(exc)
            message = f"space {name!r}: {method}() returned a non-member: {why} {fix}"
            # from_params refuses a non-member assignment with ArchitectureError (its contract): say so in that form
            raise (ArchitectureError if method == "from_params" else SpaceMethodError)(message) from exc
        except FlownasError:
            raise
        except Exception as exc:
            raise SpaceMethodError(f"space {name!r}: validate() raised {type(exc).__name__}: {exc} "
                                   f"on what {method}() returned {fix}") from exc
        return arch
    checked._flownas_guarded = checked._flownas_checked = True
    return checked


def check_hint(name: str) -> str:
    """The end of a ``SpaceMethodError``'s message: where to look further."""
    return f"(flownas spaces --check {name} checks the space)"
