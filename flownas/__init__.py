"""flownas: predictor-guided neural architecture search."""
from .arch import Architecture
from .errors import (ArchitectureError, ConfigError, DataError, FlownasError, NotInSpaceError,
                     NotInTableError, UnknownNameError)
from .registry import get_space

__version__ = "0.1.0"

__all__ = ["Architecture", "ArchitectureError", "ConfigError", "DataError", "FlownasError",
           "NotInSpaceError", "NotInTableError", "UnknownNameError", "get_space", "__version__"]
