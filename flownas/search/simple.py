"""Strategies without a predictor: random search and regularized evolution."""
from __future__ import annotations

from collections import deque
from ..arch import Architecture
from ..registry import STRATEGIES
from ..spaces.base import SearchSpace
from .base import Strategy, Told


@STRATEGIES.register("random")
class RandomSearch(Strategy):
    """Uniform samples of the space, each new."""

    def __init__(self, space: SearchSpace, *, seed: int = 0):
        super().__init__(space, seed=seed)

    def _propose(self) -> Architecture | None:
        return self.sample_new()


@STRATEGIES.register("evolution")
class RegularizedEvolution(Strategy):
    """Regularized evolution (Real et al. 2019, "aging evolution").

    The first ``population_size`` proposals are random; then each child is a
    mutation of the best of ``sample_size`` members drawn from the
    population, and every told result joins the population while the oldest
    member dies.
    """

    def __init__(self, space: SearchSpace, *, seed: int = 0, population_size: int = 20,
                 sample_size: int = 5):
        super().__init__(space, seed=seed)
        if population_size < 1 or not 1 <= sample_size <= population_size:
            raise ValueError(f"need 1 <= sample_size ({sample_size}) <= population_size ({population_size})")
        self.population_size = population_size
        self.sample_size = sample_size
        self.population: deque[Told] = deque()

    def _propose(self) -> Architecture | None:
        """A random member while the population fills, else a tournament winner's mutant."""
        if self.num_known < self.population_size or not self.population:
            return self.sample_new()
        return self.mutate_new(self.tournament()) or self.sample_new()

    def tournament(self) -> Architecture:
        k = min(self.sample_size, len(self.population))
        picks = self.rng.choice(len(self.population), size=k, replace=False)
        best = max(picks, key=lambda i: (self.population[i].value, -i))
        return self.population[best].arch

    def _tell(self, told: Told) -> None:
        if not told.failed:
            self.population.append(told)
            if len(self.population) > self.population_size:
                self.population.popleft()
