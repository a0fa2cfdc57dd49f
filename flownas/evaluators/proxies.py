"""``ProxyEvaluator``: zero-cost proxies of the untrained network as metrics.

Every proxy of ``PROXIES`` (definitions in ``engine/proxies.py``, after NASLib
/ NAS-Bench-Suite-Zero) plus ``params`` and ``flops``, computed on the real
network of the architecture from one seeded minibatch; cheap low-fidelity
experts for multi-fidelity search and DELE. The defaults (batch of 32 training
images, PyTorch's default initialisation under the seed) reproduce the
protocol of the published NAS-Bench-Suite-Zero values.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..arch import Architecture
from ..errors import ConfigError
from ..registry import EVALUATORS
from ..seeding import keeping_torch_rng
from .base import Evaluator, Result

PROXIES = ("synflow", "snip", "grad_norm", "grasp", "fisher", "jacov", "nwot", "l2_norm", "plain")
FAILED = -1e8   # NASLib's score for a NaN or infinite proxy value
COUNTS = ("params", "flops")


def check_proxy_names(names: Iterable[str]) -> tuple[str, ...]:
    names = tuple(names)
    unknown = [n for n in names if n not in PROXIES]
    if unknown:
        raise ConfigError(f"unknown zero-cost proxies {', '.join(unknown)} (known: {', '.join(PROXIES)})")
    return names


@EVALUATORS.register("proxies")
class ProxyEvaluator(Evaluator):
    """Zero-cost proxies, params and FLOPs of a candidate's untrained network.

    ``objective`` picks the metric a search maximises (any proxy, ``params``
    or ``flops``). ``seed`` fixes both the initialisation and the minibatch,
    so a given architecture always gets the same scores. ``fidelity`` is
    ignored: a proxy has one fidelity.
    """

    def __init__(self, dataset: str | Path = "cifar10-mini", *, proxies: Iterable[str] = PROXIES,
                 objective: str | None = None, batch_size: int = 32, seed: int = 0,
                 model_options: Mapping[str, Any] | None = None, device: str = "cpu",
                 num_threads: int | None = None, val_fraction: float | None = None,
                 image_size: int | None = None):
        self.dataset = str(dataset)
        self.proxies = check_proxy_names(proxies)
        if objective is None:   # synflow where it is computed, else the first proxy asked for, else params
            objective = "synflow" if "synflow" in self.proxies else (self.proxies + ("params",))[0]
        if objective not in self.proxies + COUNTS:
            raise ConfigError(f"objective {objective!r} is not computed (choose from "
                              f"{', '.join(self.proxies + COUNTS)}, or add it to proxies)")
        if batch_size < 2:
            raise ConfigError(f"proxies need a batch of at least 2 images, got batch_size={batch_size}")
        self.objective = objective
        self.batch_size = batch_size
        self.seed = seed
        self.model_options = dict(model_options or {})
        self.device = device
        self.num_threads = num_threads
        self.val_fraction = val_fraction
        self.image_size = image_size

    def __repr__(self) -> str:
        return f"ProxyEvaluator({self.dataset!r}, objective={self.objective!r}, seed={self.seed})"

    @keeping_torch_rng
    def evaluate(self, arch: Architecture, fidelity: Any = None) -> Result:
        import torch

        from ..datasets import load_image_data
        from .engine.data import sample_batch
        from .engine.models import build_model, count_flops, count_params
        from .engine.proxies import compute_proxies
        from .training import torch_device

        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        start = time.perf_counter()
        data = load_image_data(self.dataset, val_fraction=self.val_fraction, image_size=self.image_size)
        device = torch_device(self.device)
        torch.manual_seed(self.seed)
        model = build_model(arch, data.num_classes, self.model_options).to(device)
        x, y = sample_batch(data, self.batch_size, self.seed, device)
        metrics: dict[str, Any] = compute_proxies(model, x, y, self.proxies)
        metrics["params"] = count_params(model)
        metrics["flops"] = count_flops(model, data.image_shape)
        return Result(metrics=metrics, cost_s=time.perf_counter() - start, info={"device": str(device)})
