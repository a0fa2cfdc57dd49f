"""Forward latency of a model on the local device: warm-up, then the median
of timed repeats (synchronised on CUDA)."""
from __future__ import annotations

import statistics
import time

import torch
from torch import nn


@torch.inference_mode()
def measure_latency(model: nn.Module, input_shape: tuple[int, ...], *, batch_size: int = 1,
                    device: torch.device | str = "cpu", warmup: int = 5, repeats: int = 20) -> dict[str, float]:
    """Milliseconds per forward pass of a batch of ``batch_size`` examples of
    ``input_shape``: ``median_ms`` (the figure to use), ``min_ms``, ``mean_ms``,
    ``max_ms``, over ``repeats`` timed passes after ``warmup`` untimed ones."""
    device = torch.device(device)
    model = model.to(device).eval()
    x = torch.randn((batch_size, *input_shape), device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        model(x)
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(x)
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return {"median_ms": statistics.median(times), "min_ms": min(times),
            "mean_ms": statistics.fmean(times), "max_ms": max(times)}
