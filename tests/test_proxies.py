import copy
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from flownas.errors import ConfigError
from flownas.evaluators.engine.proxies import compute_proxies
from flownas.evaluators.proxies import FAILED, PROXIES, ProxyEvaluator
from flownas.registry import EVALUATORS
from flownas.spaces.nb201 import NB201Space

from conftest import require_data

ARCHS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|",
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
    "|skip_connect~0|+|none~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|",
]
DEAD = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|nor_conv_1x1~2|"   # the cell output is always 0
TINY = {"C": 8, "N": 1}


def proxies(dataset, **options):
    return ProxyEvaluator(dataset, model_options=TINY, batch_size=16, num_threads=1, **options)


def test_all_proxies_finite_and_deterministic(tiny_images):
    space = NB201Space()
    ev = proxies(tiny_images)
    assert EVALUATORS.get("proxies") is ProxyEvaluator
    for text in ARCHS:
        arch = space.from_string(text)
        first, second = ev.evaluate(arch), ev.evaluate(arch)
        assert set(first.metrics) == set(PROXIES) | {"params", "flops"}
        assert all(math.isfinite(v) for v in first.metrics.values())
        assert first.metrics == second.metrics
        assert first.metrics["synflow"] > 0 and first.metrics["snip"] > 0 and first.metrics["params"] > 0
    arch = space.from_string(ARCHS[0])
    other = proxies(tiny_images, seed=1).evaluate(arch).metrics
    assert other["snip"] != ev.evaluate(arch).metrics["snip"]


def test_a_dead_network_scores_zero_or_failed(tiny_images):
    m = proxies(tiny_images).evaluate(NB201Space().from_string(DEAD)).metrics
    assert m["synflow"] == m["snip"] == m["grad_norm"] == 0.0
    assert m["jacov"] == FAILED            # constant Jacobians: no correlation, NaN -> -1e8 as in NASLib


def test_options_are_checked():
    with pytest.raises(ConfigError, match="unknown zero-cost proxies zen"):
        ProxyEvaluator(proxies=["synflow", "zen"])
    with pytest.raises(ConfigError, match="objective 'nwot' is not computed"):
        ProxyEvaluator(proxies=["synflow"], objective="nwot")
    assert ProxyEvaluator(proxies=["snip"], objective="flops").objective == "flops"


class Tiny(nn.Module):
    """conv -> BN -> ReLU -> pool -> linear: every layer type the proxies treat."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.act = nn.ReLU()
        self.fc = nn.Linear(4, 5)

    def forward(self, x):
        return self.fc(self.act(self.bn(self.conv(x))).mean((2, 3)))


def test_definitions_by_hand():
    torch.manual_seed(0)
    net = Tiny()
    x, y = torch.randn(6, 3, 5, 5), torch.randint(0, 5, (6,))
    before = copy.deepcopy(net.state_dict())
    got = compute_proxies(net, x, y)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())   # untouched

    weights = [net.conv.weight, net.fc.weight]
    # snip, grad_norm, plain from dL/dw
    conv_out = net.conv(x)
    conv_out.retain_grad()
    logits = net.fc(net.act(net.bn(conv_out)).mean((2, 3)))
    loss = F.cross_entropy(logits, y)
    grads = torch.autograd.grad(loss, weights + [conv_out, logits], create_graph=True)
    g, acts = grads[:2], (conv_out, logits)
    with torch.no_grad():
        assert got["snip"] == pytest.approx(sum(float((w * gw).abs().sum()) for w, gw in zip(weights, g)), rel=1e-5)
        assert got["grad_norm"] == pytest.approx(sum(float(gw.norm()) for gw in g), rel=1e-5)
        assert got["plain"] == pytest.approx(sum(float((w * gw).sum()) for w, gw in zip(weights, g)), rel=1e-4)
        # fisher: per output channel 0.5 * mean_n (sum_hw a * da)^2, times the weights of that channel
        conv_term = (acts[0] * grads[2]).sum((2, 3)).pow(2).mean(0).mul(0.5).sum() * 3 * 3 * 3
        fc_term = (acts[1] * grads[3]).pow(2).mean(0).mul(0.5).sum() * 4
        assert got["fisher"] == pytest.approx(float(conv_term + fc_term), rel=1e-4)
    # grasp: -w . (H g)
    hg = torch.autograd.grad(sum((gw.detach() * gw).sum() for gw in g), weights)
    with torch.no_grad():
        assert got["grasp"] == pytest.approx(-sum(float((w * h).sum()) for w, h in zip(weights, hg)), rel=1e-4)
    # l2_norm
    assert got["l2_norm"] == pytest.approx(float(net.conv.weight.detach().norm() + net.fc.weight.detach().norm()), rel=1e-6)
    # synflow: |params|, no BN, double, ones input -> ln(1 + sum |w * dR/dw|)
    lin = copy.deepcopy(net).double()
    with torch.no_grad():
        for p in lin.parameters():
            p.abs_()
    out = lin.fc(lin.act(lin.conv(torch.ones(1, 3, 5, 5, dtype=torch.float64))).mean((2, 3))).sum()
    sw = torch.autograd.grad(out, [lin.conv.weight, lin.fc.weight])
    s = float((lin.conv.weight * sw[0]).abs().sum().detach() + (lin.fc.weight * sw[1]).abs().sum().detach())
    assert got["synflow"] == pytest.approx(math.log1p(s), rel=1e-9)
    # nwot: log|det K|, K summed over the ReLU's binary codes
    with torch.no_grad():
        c = (net.bn.train()(net.conv(x)) > 0).reshape(6, -1).double()
    k = c @ c.T + (1 - c) @ (1 - c).T
    assert got["nwot"] == pytest.approx(float(torch.linalg.slogdet(k)[1]), rel=1e-6)
    # jacov: from the correlations of the input gradients of the summed logits
    xg = x.clone().requires_grad_(True)
    (jac,) = torch.autograd.grad(net(xg).sum(), xg)
    v = np.linalg.eigvalsh(np.corrcoef(jac.reshape(6, -1).numpy()))
    assert got["jacov"] == pytest.approx(float(-np.sum(np.log(v + 1e-5) + 1 / (v + 1e-5))), rel=1e-4)


def test_ranks_agree_with_the_published_values():
    """A handful of full-size cells: the cheap proxies rank as NAS-Bench-Suite-Zero."""
    from scipy.stats import spearmanr

    from flownas.benchmarks.base import read_jsonl_gz, table_path
    require_data("nasbench201/nb201_zc_subset.jsonl.gz", "cifar10-mini/cifar10_mini.npz")
    rows = [r for r in read_jsonl_gz(table_path("nasbench201/nb201_zc_subset.jsonl.gz"))
            if r["dataset"] == "cifar10"]
    picks = [rows[i] for i in np.random.default_rng(0).choice(len(rows), 8, replace=False)]
    ev = ProxyEvaluator("cifar10-mini", proxies=["synflow", "l2_norm"], num_threads=1)
    space = NB201Space()
    ours = [ev.evaluate(space.from_string(r["arch"])).metrics for r in picks]
    for metric, field in (("synflow", "zc_synflow"), ("params", "params_m"), ("flops", "flops_m")):
        rho = spearmanr([o[metric] for o in ours], [r[field] for r in picks])[0]
        assert rho >= 0.9, (metric, rho)
    assert all(o["params"] == pytest.approx(r["params_m"] * 1e6, abs=1) for o, r in zip(ours, picks))


@pytest.mark.parametrize("space, options", [
    ("nb101", {"stem_channels": 8, "num_stacks": 1, "modules_per_stack": 1}),
    ("darts", {"C": 4, "layers": 3}),
])
def test_other_cell_spaces(tiny_images, space, options):
    from flownas.registry import get_space
    arch = get_space(space).sample(np.random.default_rng(0))
    m = ProxyEvaluator(tiny_images, model_options=options, batch_size=8, num_threads=1).evaluate(arch).metrics
    assert all(math.isfinite(v) and v != FAILED for v in m.values())


def test_grasp_without_second_derivatives_is_failed_not_fatal(tiny_images):
    from flownas.registry import get_space
    arch = get_space("mobilenet").sample(np.random.default_rng(0))      # hardswish: no double backward
    with pytest.warns(UserWarning, match="grasp needs second derivatives"):
        m = ProxyEvaluator(tiny_images, proxies=["grasp", "snip"], objective="snip", batch_size=4, num_threads=1).evaluate(arch).metrics
    assert m["grasp"] == FAILED and m["snip"] > 0
