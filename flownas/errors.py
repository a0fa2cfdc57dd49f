"""The exceptions flownas raises. Each message names the problem and, where
there is one, the fix, so that the CLI can print it as a one-line error."""
import numbers
from typing import Any


class FlownasError(Exception):
    """Base class of every error flownas raises on purpose."""


class ArchitectureError(FlownasError, ValueError):
    """A malformed architecture: wrong shapes, a cycle, unknown ops."""


class NotInSpaceError(ArchitectureError):
    """A well-formed architecture that breaks one rule of a search space."""

    def __init__(self, space: str, rule: str):
        self.space = space
        self.rule = rule
        super().__init__(f"not in space {space!r}: {rule}")


class NotAnArchitectureError(ArchitectureError, TypeError):
    """An item that is not an ``Architecture`` where architectures are expected."""


class NotFittedError(FlownasError, RuntimeError):
    """A predictor's ``predict`` or ``save`` before ``fit``."""


class UnknownNameError(FlownasError, LookupError):
    """A name that no registry knows (space, predictor, strategy, ...)."""


class DataError(FlownasError, FileNotFoundError):
    """A missing or malformed benchmark table or dataset."""


class NotInTableError(FlownasError, LookupError):
    """An architecture that the benchmark table has no record of."""


class ConfigError(FlownasError, ValueError):
    """A broken search configuration; the message names the bad key."""

    #: the message starts with the configuration key it is about, so an outer
    #: ``construct`` (the strategy around its predictor) adds none of its own
    keyed: bool = False


class UnknownParameterError(ConfigError, TypeError):
    """A hyper-parameter the predictor does not take (a ``TypeError`` too, as
    Python's own for an unexpected keyword argument)."""


def key_error(key: str, problem: Any) -> ConfigError:
    """``ConfigError("KEY: PROBLEM")``, marked as naming its key."""
    error = ConfigError(f"{key}: {problem}")
    error.keyed = True
    return error


def construct(key: str, factory, *args, **kwargs):
    """Call a constructor; a bad value becomes a ConfigError that names ``key``
    (unless it names a key of its own already)."""
    try:
        return factory(*args, **kwargs)
    except ConfigError as exc:
        if exc.keyed:
            raise
        raise key_error(key, exc) from None
    except (FlownasError, TypeError, ValueError) as exc:
        raise key_error(key, exc) from None


def is_whole(value) -> bool:
    """An int or numpy integer, not a bool (and no float, however whole)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_whole(name: str, value, low: int = 1) -> None:
    """A size or count (``name``) must be a whole number, at least ``low``: else
    a ConfigError naming it, before torch or scikit-learn sees the value."""
    if not (is_whole(value) and value >= low):
        raise ConfigError(f"{name} must be at least {low} (a whole number), got {value!r}")
