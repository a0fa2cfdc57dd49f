"""Evaluators, registered by name: tabular lookup, real training, proxies."""
from .base import Evaluator, Result

__all__ = ["Evaluator", "Result"]
