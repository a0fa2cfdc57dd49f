"""Search strategies (ask/tell), registered by name, and the search loop."""
from .base import Strategy

__all__ = ["Strategy"]
