"""Tabular ground truth loaded from ``$FLOWNAS_DATA``: ``load_benchmark("nb201")``."""
from .base import Benchmark, data_root, load_benchmark, table_path

__all__ = ["Benchmark", "data_root", "load_benchmark", "table_path"]
