"""Small stand-ins with a known landscape, for conformance checks and tests:
a 4-position chain space of 3 ops (80 members: one op string is outside the
space, so Optuna can propose an invalid one), an evaluator whose optimum is
known, and a one-hot ridge predictor. Not registered anywhere: the strategy
rules of ``flownas.conformance`` and the tests pass them in."""
from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .arch import Architecture
from .errors import ArchitectureError
from .evaluators.base import Evaluator, Result
from .predictors.base import Predictor, check_archs, check_targets
from .spaces.base import SearchSpace

OPS = ("a", "b", "c")
POSITIONS = 4
FORBIDDEN = ("c",) * POSITIONS      # not a member: from_params raises
NAMES = tuple(f"p{i}" for i in range(POSITIONS))
WEIGHTS = {"a": 0.0, "b": 1.0, "c": 2.0}


_CHAIN = Architecture.from_edges(("input",) + ("a",) * POSITIONS + ("output",),
                                 [(i, i + 1) for i in range(POSITIONS + 1)], "toy")


class ToySpace(SearchSpace):
    name = "toy"
    ops = ("input",) + OPS + ("output",)

    def make(self, ops) -> Architecture:
        ops = tuple(ops)
        if len(ops) != POSITIONS or any(o not in OPS for o in ops):
            raise ArchitectureError(f"toy cells have {POSITIONS} ops of {OPS}, got {ops}")
        if ops == FORBIDDEN:
            raise self._error("all ops 'c' is forbidden")
        return _CHAIN.with_ops(("input",) + ops + ("output",))

    def chain(self, arch: Architecture) -> tuple[str, ...]:
        order = arch.topological_order()
        return tuple(arch.ops[i] for i in order[1:-1])

    def sample(self, rng):
        while True:
            ops = tuple(OPS[i] for i in rng.integers(0, len(OPS), POSITIONS))
            if ops != FORBIDDEN:
                return self.make(ops)

    def mutate(self, arch, rng):
        ops = list(self.chain(arch))
        while True:
            k = int(rng.integers(POSITIONS))
            new = list(ops)
            new[k] = str(rng.choice([o for o in OPS if o != ops[k]]))
            if tuple(new) != FORBIDDEN:
                return self.make(new)

    def validate(self, arch):
        self.check_common(arch)
        self.make(self.chain(arch))

    def enumerate(self):
        for ops in itertools.product(OPS, repeat=POSITIONS):
            if ops != FORBIDDEN:
                yield self.make(ops)

    def size(self):
        return len(OPS) ** POSITIONS - 1

    def to_model(self, arch, **options):
        raise NotImplementedError("toy architectures are not networks")

    def param_space(self):
        return {n: OPS for n in NAMES}

    def to_params(self, arch):
        return dict(zip(NAMES, self.chain(arch)))

    def from_params(self, params: Mapping[str, Any]):
        return self.make(params[n] for n in NAMES)

    def to_string(self, arch):
        return "".join(self.chain(arch))

    def from_string(self, text):
        return self.make(tuple(text))


def score(ops) -> float:
    """A known landscape: ops have weights and equal neighbours earn a bonus."""
    s = sum(WEIGHTS[o] * (1 + 0.1 * i) for i, o in enumerate(ops))
    return s + 1.5 * sum(ops[i] == ops[i + 1] for i in range(len(ops) - 1))


class ToyEvaluator(Evaluator):
    """Objective ``val``; ``fail`` (an op string) raises; ``crash`` (an op string)
    kills the worker process evaluating it, as an OOM kill would (in a worker
    process only; by ``crash_signal`` if given); ``log`` gets one line per evaluation; each evaluation but a
    crash takes ``delay_s``."""

    objective = "val"
    test_metric = "test"

    def __init__(self, fail: str | None = None, log: str | None = None, crash: str | None = None,
                 delay_s: float = 0.0, crash_signal: int | None = None):
        self.fail = fail
        self.log = log
        self.crash = crash
        self.delay_s = delay_s
        self.crash_signal = crash_signal   # the crash is this signal (e.g. SIGTERM), not an exit

    def evaluate(self, arch, fidelity=None):
        ops = ToySpace().chain(arch)
        if self.log:
            with open(self.log, "a") as fh:
                fh.write("".join(ops) + "\n")
        if "".join(ops) == self.fail:
            raise RuntimeError(f"training of {''.join(ops)} diverged")
        if "".join(ops) == self.crash:
            import multiprocessing
            import os
            if multiprocessing.parent_process() is None:
                raise RuntimeError("ToyEvaluator(crash=...) kills only a worker process, not the driver")
            if self.crash_signal is not None:
                os.kill(os.getpid(), self.crash_signal)
            os._exit(1)
        if self.delay_s:
            import time
            time.sleep(self.delay_s)
        v = score(ops)
        return Result({"val": v, "test": v + 0.01, "size": float(ops.count("c"))}, cost_s=10.0 + v)


class RidgePredictor(Predictor):
    """One-hot (position x op) ridge regression; no seed, so ensembles bootstrap."""

    name = "ridge"

    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha

    def _x(self, archs):
        rows = []
        for a in archs:
            ops = [a.ops[i] for i in a.topological_order()]
            rows.append([1.0] + [float(op == o) for op in ops for o in self.vocab_])
        return np.array(rows)

    def fit(self, archs, y, *, low_fidelity=None):
        archs = check_archs(archs)
        y = check_targets(y, len(archs))
        self.vocab_ = sorted({op for a in archs for op in a.ops})
        x = self._x(archs)
        self.coef_ = np.linalg.solve(x.T @ x + self.alpha * np.eye(x.shape[1]), x.T @ y)
        return self

    def predict(self, archs, *, return_std=False):
        mean = self._x(check_archs(archs)) @ self.coef_
        return (mean, np.zeros_like(mean)) if return_std else mean

    def save(self, path):
        Path(path).write_text(json.dumps({"alpha": self.alpha, "vocab": self.vocab_, "coef": self.coef_.tolist()}))

    @classmethod
    def load(cls, path):
        d = json.loads(Path(path).read_text())
        p = cls(d["alpha"])
        p.vocab_, p.coef_ = d["vocab"], np.array(d["coef"])
        return p


def optimum() -> float:
    return max(score(ToySpace().chain(a)) for a in ToySpace().enumerate())
