"""Zero-cost proxies of an untrained network, from one minibatch.

The definitions follow NASLib's ``predictors/utils/pruners/measures`` (the
code behind NAS-Bench-Suite-Zero, itself after Abdelfattah et al.'s
zero-cost-nas), so that values rank architectures like the published ones:

* per-weight measures are summed over the weights of every ``Conv2d`` and
  ``Linear`` layer; BN stays on and the network is in training mode, except
  for synflow;
* ``snip`` = sum |w * dL/dw|, ``grad_norm`` = sum over layers of ||dL/dw||,
  ``plain`` = sum w * dL/dw, ``grasp`` = sum -w * (H g) with g = dL/dw,
  ``fisher`` = sum over output channels of 0.5 * mean_n((sum_hw a*da)^2),
  broadcast to the channel's weights as NASLib does (a: a layer's output);
* ``synflow``: on a BN-free double-precision copy with |weights|, input all
  ones (one example), R = sum of outputs, S = sum |w * dR/dw|, reported as
  ln(1 + S) like the NAS-Bench-Suite-Zero tables (S reaches 1e40 and beyond;
  the log keeps the ranking and fits in any float);
* ``jacov``: -sum(log(v + k) + 1/(v + k)), k = 1e-5, v the eigenvalues of the
  correlation matrix of the input Jacobians of the summed outputs;
* ``nwot`` (NASWOT v2): log|det K|, K = sum over ReLUs of the Hamming-style
  kernel c c^T + (1-c)(1-c)^T of binary codes c = [ReLU input > 0];
* ``l2_norm`` = sum over layers of ||w||.

The loss is cross-entropy (mean). As in NASLib, a non-finite value becomes
``FAILED`` (-1e8). Every proxy runs on a copy: the given model is untouched.
One forward pass of the batch serves all data-based proxies.
"""
from __future__ import annotations

import copy
import math
import warnings
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..proxies import FAILED, PROXIES, check_proxy_names

_FROM_BATCH = {"snip", "grad_norm", "grasp", "fisher", "jacov", "nwot", "plain"}
_FROM_WEIGHT_GRADS = {"snip", "grad_norm", "grasp", "fisher", "plain"}


def compute_proxies(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
                    names: Iterable[str] = PROXIES,
                    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
                    ) -> dict[str, float]:
    """The proxies ``names`` of ``model`` on the batch ``(inputs, targets)``."""
    names = check_proxy_names(names)
    values: dict[str, float] = {}
    wanted = set(names)
    if wanted & _FROM_BATCH:
        values.update(_batch_proxies(copy.deepcopy(model).train(), inputs, targets, wanted & _FROM_BATCH, loss_fn))
    if "synflow" in wanted:
        values["synflow"] = _synflow(copy.deepcopy(model), tuple(inputs.shape[1:]))
    if "l2_norm" in wanted:
        with torch.no_grad():
            values["l2_norm"] = float(sum(layer.weight.norm() for layer in _weighted_layers(model)))
    return {n: _finite(values[n]) for n in names}


def _weighted_layers(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _finite(value: float) -> float:
    value = float(value)
    return value if math.isfinite(value) else FAILED


def _batch_proxies(net, inputs, targets, wanted, loss_fn) -> dict[str, float]:
    layers = _weighted_layers(net)
    weights = [layer.weight for layer in layers]
    hooks, out = [], {}
    fisher_on = [False]           # fisher listens only to the loss gradient
    fisher = [0.0] * len(layers)
    kernel = None
    batch = inputs.shape[0]

    if "fisher" in wanted:
        def fisher_hook(i):
            def forward_hook(module, args, act):
                if act.requires_grad:
                    act_detached = act.detach()

                    def on_grad(grad):
                        if fisher_on[0]:
                            g = act_detached * grad.detach()
                            g_nk = g.sum(dim=tuple(range(2, g.dim()))) if g.dim() > 2 else g
                            fisher[i] = fisher[i] + g_nk.pow(2).mean(0).mul(0.5)
                    act.register_hook(on_grad)
            return forward_hook
        hooks += [layer.register_forward_hook(fisher_hook(i)) for i, layer in enumerate(layers)]

    if "nwot" in wanted:
        kernel = torch.zeros(batch, batch, dtype=torch.float64, device=inputs.device)

        def relu_hook(module, args, result):
            codes = (args[0].detach().reshape(batch, -1) > 0).float()
            kernel.add_(codes @ codes.t() + (1.0 - codes) @ (1.0 - codes).t())
        # torch's own ReLU modules only, as NASLib (a user block named *ReLU* is no activation)
        hooks += [m.register_forward_hook(relu_hook) for m in net.modules()
                  if "ReLU" in type(m).__name__ and type(m).__module__.startswith("torch.nn")]

    try:
        x = inputs.detach().clone().requires_grad_("jacov" in wanted)
        logits = net(x)
        if "nwot" in wanted:
            out["nwot"] = float(torch.linalg.slogdet(kernel.cpu())[1])
        if "jacov" in wanted:
            (jac,) = torch.autograd.grad(logits, x, torch.ones_like(logits), retain_graph=True)
            out["jacov"] = _jacov_score(jac.reshape(batch, -1).cpu().numpy())
        if wanted & _FROM_WEIGHT_GRADS:
            loss = loss_fn(logits, targets)
            fisher_on[0] = True
            grads = torch.autograd.grad(loss, weights, create_graph="grasp" in wanted, allow_unused=True)
            fisher_on[0] = False
            pairs = [(w, g) for w, g in zip(weights, grads) if g is not None]
            with torch.no_grad():
                out["snip"] = float(sum((w * g).abs().sum() for w, g in pairs))
                out["grad_norm"] = float(sum(g.norm() for _, g in pairs))
                out["plain"] = float(sum((w * g).sum() for w, g in pairs))
                out["fisher"] = float(sum(f.abs().sum() * math.prod(layer.weight.shape[1:])
                                          for f, layer in zip(fisher, layers) if torch.is_tensor(f)))
            if "grasp" in wanted:
                z = sum((g.detach() * g).sum() for _, g in pairs)
                try:
                    hg = torch.autograd.grad(z, [w for w, _ in pairs], allow_unused=True)
                except RuntimeError as exc:   # an op without a second derivative (torch's hardsigmoid)
                    warnings.warn(f"grasp needs second derivatives of every op ({exc}); scored {FAILED}")
                    hg = None
                with torch.no_grad():
                    out["grasp"] = math.nan if hg is None else float(
                        sum((-w * h).sum() for (w, _), h in zip(pairs, hg) if h is not None))
    finally:
        for h in hooks:
            h.remove()
    return {n: out[n] for n in wanted}


def _jacov_score(jacobians: np.ndarray) -> float:
    try:
        with np.errstate(all="ignore"):
            corr = np.corrcoef(jacobians)
            v = np.linalg.eigvalsh(corr)
            k = 1e-5
            return float(-np.sum(np.log(v + k) + 1.0 / (v + k)))
    except np.linalg.LinAlgError:
        return math.nan


def _synflow(net: nn.Module, example_shape: tuple[int, ...]) -> float:
    net = net.double().train()
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.forward = _identity          # synflow is defined without BN
    with torch.no_grad():
        for tensor in net.state_dict().values():
            if tensor.is_floating_point():
                tensor.abs_()
    net.zero_grad()
    device = next(net.parameters()).device
    net(torch.ones((1, *example_shape), dtype=torch.float64, device=device)).sum().backward()
    with torch.no_grad():
        total = sum(float((layer.weight * layer.weight.grad).abs().sum())
                    for layer in _weighted_layers(net) if layer.weight.grad is not None)
    return math.log1p(total)


def _identity(x):
    return x
