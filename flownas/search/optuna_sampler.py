"""``optuna``: any Optuna sampler as a strategy, through the space's categorical
parameters (``param_space`` / ``to_params`` / ``from_params``).

TPE is the default for one objective, NSGA-II for several (``objectives``:
metric names, ``"name:min"`` to minimize, e.g. ``["c10_valid_val_acc_200",
"params_m_c10:min"]``). Parameter values that make no architecture of the
space are told to the sampler as failed trials; a proposal that repeats a
known architecture is told that architecture's outcome (no evaluation). An
objective that the first result does not have is a ``ConfigError`` (the
search stops), not a failed trial for every candidate.
"""
from __future__ import annotations

from typing import Sequence

from ..arch import Architecture
from ..errors import ArchitectureError, ConfigError
from ..registry import STRATEGIES
from ..spaces.base import SearchSpace
from ..store import quiet_optuna
from .base import Strategy, Told

# proposals in a row that repeat known architectures before a random new one is enqueued
REPEATS = 20

SAMPLER_ALIASES = {"tpe": "TPESampler", "nsga2": "NSGAIISampler", "nsga3": "NSGAIIISampler",
                   "random": "RandomSampler", "gp": "GPSampler", "qmc": "QMCSampler",
                   "bruteforce": "BruteForceSampler"}
# samplers of continuous parameters: on a space's categorical ones they sample at random (and warn per trial)
CONTINUOUS_ONLY = ("CmaEsSampler",)


@STRATEGIES.register("optuna")
class OptunaSearch(Strategy):
    """``sampler``: ``auto`` (TPE, or NSGA-II for several objectives), an alias
    (``tpe nsga2 nsga3 random gp qmc bruteforce``) or any class name in
    ``optuna.samplers`` but CMA-ES (a space's parameters are categorical);
    ``sampler_params`` go to its constructor (with ``seed``)."""

    def __init__(self, space: SearchSpace, *, seed: int = 0, sampler: str = "auto",
                 sampler_params: dict | None = None, objectives: list | None = None):
        import optuna
        super().__init__(space, seed=seed)
        self.sampler = sampler
        self.sampler_params = sampler_params
        self.objectives = objectives
        self._metrics, directions = _parse_objectives(objectives)
        name = ("TPESampler" if len(directions) == 1 else "NSGAIISampler") if sampler == "auto" \
            else SAMPLER_ALIASES.get(sampler, sampler)
        if name in CONTINUOUS_ONLY or sampler == "cmaes":
            raise ConfigError(f"sampler {sampler!r}: CMA-ES samples continuous parameters, and a space's are "
                              f"categorical: it would sample at random, with a warning per trial (use tpe, gp, "
                              f"nsga2 or random)")
        cls = getattr(optuna.samplers, name, None)
        if not isinstance(cls, type) or not issubclass(cls, optuna.samplers.BaseSampler):
            raise ConfigError(f"unknown Optuna sampler {sampler!r} (aliases: {', '.join(SAMPLER_ALIASES)}, "
                              f"or a class name in optuna.samplers)")
        try:
            instance = cls(seed=seed, **(sampler_params or {}))
        except TypeError as exc:
            raise ConfigError(f"sampler {name}: {exc}") from None
        with quiet_optuna():
            self._study = optuna.create_study(directions=directions, sampler=instance)
        self._choices = {k: list(v) for k, v in space.param_space().items()}
        self._trials: dict[str, list] = {}     # arch key -> Optuna trials waiting for its outcome
        # the metrics the evaluator (and the constraints) can give, where the search loop knows them:
        # then a result without one of ``needed_metrics`` is that candidate's failure, not a wrong name
        self.known_metrics: set[str] | None = None

    @property
    def needed_metrics(self) -> list[str]:
        """The metrics ``objectives`` names (none: the search objective alone)."""
        return list(self._metrics)

    def _propose(self) -> Architecture | None:
        from optuna.trial import TrialState
        for _ in range(REPEATS):
            trial = self._study.ask()
            params = {k: trial.suggest_categorical(k, v) for k, v in self._choices.items()}
            try:
                arch = self.space.normalize(self.space.from_params(params))
            except ArchitectureError:
                self._tell_study(trial, state=TrialState.FAIL)
                continue
            known = self.told(arch)
            if known is not None:
                self._finish(trial, known)
            elif not self.is_new(arch):            # being evaluated: learn its outcome then
                self._trials.setdefault(arch.key, []).append(trial)
            else:
                self._trials[arch.key] = [trial]
                return arch
        # the sampler keeps repeating itself: hand it a random new architecture
        arch = self.sample_new()
        if arch is not None:
            self._study.enqueue_trial(self.space.to_params(arch))
            trial = self._study.ask()
            for k, v in self._choices.items():
                trial.suggest_categorical(k, v)
            self._trials[arch.key] = [trial]
        return arch

    def _tell(self, told: Told) -> None:
        import optuna
        trials = self._trials.pop(told.arch.key, None)
        if trials is None:   # not proposed by this sampler: add it as a finished trial
            values = self._values(told)
            dist = {k: optuna.distributions.CategoricalDistribution(v) for k, v in self._choices.items()}
            self._study.add_trial(optuna.trial.create_trial(
                params=self.space.to_params(told.arch), distributions=dist, values=values,
                state=optuna.trial.TrialState.COMPLETE if values else optuna.trial.TrialState.FAIL))
            return
        for trial in trials:
            self._finish(trial, told)

    def _finish(self, trial, told: Told) -> None:
        from optuna.trial import TrialState
        values = self._values(told)
        if values is None:
            self._tell_study(trial, state=TrialState.FAIL)
        else:
            self._tell_study(trial, values)

    def _tell_study(self, trial, values=None, state=None) -> None:
        try:
            with quiet_optuna():   # "Trial N finished with value ...", once per candidate
                self._study.tell(trial, values, state=state)
        except RuntimeError as exc:
            # grid-like samplers call Study.stop() when their grid is done, which is an
            # error outside Study.optimize; the trial is stored before that happens
            if "Study.stop" not in str(exc):
                raise

    def _values(self, told: Told) -> list[float] | None:
        if told.failed:
            return None
        if not self._metrics:
            return [told.value]
        missing = [m for m in self._metrics if m not in told.metrics]
        if missing and not (self.known_metrics is not None and set(missing) <= self.known_metrics):
            # not this candidate's failure: no result will have it, and the sampler would search blind
            raise ConfigError(f"strategy.objectives: the evaluator gives no metric {missing[0]!r} "
                              f"(it gives: {', '.join(sorted(map(str, told.metrics)))})")
        try:
            return [float(told.metrics[m]) for m in self._metrics]
        except (KeyError, TypeError, ValueError):   # this candidate has no number for it
            return None


def _parse_objectives(objectives: Sequence[str] | None) -> tuple[list[str], list[str]]:
    """Metric names and Optuna directions; none given: the search objective, maximized."""
    if not objectives:
        return [], ["maximize"]
    metrics, directions = [], []
    for item in objectives:
        name, _, direction = str(item).partition(":")
        direction = direction or "max"
        if direction not in ("min", "max"):
            raise ConfigError(f"objective {item!r}: the direction after ':' must be min or max")
        metrics.append(name)
        directions.append("minimize" if direction == "min" else "maximize")
    return metrics, directions
