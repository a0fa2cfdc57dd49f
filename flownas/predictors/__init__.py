"""Performance predictors, registered by name: ``PREDICTORS.create("flowerformer")``."""
from .base import Predictor

__all__ = ["Predictor"]
