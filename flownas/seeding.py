"""Every random choice in flownas takes a seed: these turn one into a generator."""
from __future__ import annotations

import functools
import random

import numpy as np

SeedLike = "int | np.random.Generator | None"


def as_rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    """A numpy Generator from a seed (or the generator itself)."""
    if isinstance(seed, np.random.Generator):
        return seed
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError):   # numpy's "expected non-negative integer" does not say which value
        from .errors import ConfigError
        raise ConfigError(f"seed: expected a non-negative whole number (or None), got {seed!r}") from None


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and CUDA) at once."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        import torch
    except ImportError:  # torch is a dependency, but keep seeding importable without it
        return
    torch.manual_seed(seed)


def keeping_torch_rng(method):
    """``method`` seeds torch's global generator for its own determinism; the
    caller's generator state comes back afterwards (a host program's random
    stream is not reset by a fit or an evaluation run in its process)."""
    @functools.wraps(method)
    def kept(*args, **kwargs):
        import torch
        gpus = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=gpus):   # manual_seed reseeds the GPUs' generators too
            return method(*args, **kwargs)
    return kept
