"""Build a space's network for an architecture; count its params and FLOPs."""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from ...arch import Architecture


def build_model(arch: Architecture, num_classes: int, options: Mapping[str, Any] | None = None) -> nn.Module:
    """``space.to_model(arch, num_classes=..., **options)`` for the arch's own space."""
    from ...registry import get_space
    return get_space(arch.space).to_model(arch, num_classes=num_classes, **dict(options or {}))


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """FLOPs of one forward pass of ONE example (``torch.utils.flop_counter``:
    2 per multiply-add of convolutions, linear layers and matmuls)."""
    from torch.utils.flop_counter import FlopCounterMode
    was_training = model.training
    model.eval()
    param = next(model.parameters(), None)
    x = torch.zeros((1, *input_shape), device=param.device if param is not None else "cpu",
                    dtype=param.dtype if param is not None else torch.float32)
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())
