"""Search spaces, registered by name: ``flownas.get_space("nb201")``."""
from .base import SearchSpace

__all__ = ["SearchSpace"]
