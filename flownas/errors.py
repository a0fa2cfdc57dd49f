"""The exceptions flownas raises. Each message names the problem and, where
there is one, the fix, so that the CLI can print it as a one-line error."""


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


class UnknownNameError(FlownasError, LookupError):
    """A name that no registry knows (space, predictor, strategy, ...)."""


class DataError(FlownasError, FileNotFoundError):
    """A missing or malformed benchmark table or dataset."""


class NotInTableError(FlownasError, LookupError):
    """An architecture that the benchmark table has no record of."""


class ConfigError(FlownasError, ValueError):
    """A broken search configuration; the message names the bad key."""


def construct(key: str, factory, *args, **kwargs):
    """Call a constructor; a bad value becomes a ConfigError that names ``key``."""
    try:
        return factory(*args, **kwargs)
    except (FlownasError, TypeError, ValueError) as exc:
        raise ConfigError(f"{key}: {exc}") from None
