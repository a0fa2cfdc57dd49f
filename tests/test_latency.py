import pytest
import torch

from flownas.errors import ConfigError, NotInTableError
from flownas.evaluators.engine.latency import measure_latency
from flownas.evaluators.latency import LatencyEvaluator, TableLatencyEvaluator, table_latency
from flownas.registry import EVALUATORS
from flownas.spaces.nb201 import NB201Space

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def test_measured_latency_is_a_positive_median():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
    t = measure_latency(model, (3, 16, 16), batch_size=2, warmup=1, repeats=5)
    assert 0 < t["min_ms"] <= t["median_ms"] <= t["max_ms"]
    assert t["min_ms"] <= t["mean_ms"] <= t["max_ms"]


def test_latency_evaluator_on_a_built_network():
    ev = EVALUATORS.create("latency", batch_size=4, warmup=1, repeats=3, model_options={"C": 4, "N": 1},
                           num_threads=1)
    assert isinstance(ev, LatencyEvaluator) and ev.objective == "neg_latency_ms"
    r = ev.evaluate(NB201Space().from_string(ARCH))
    m = r.metrics
    assert m["latency_ms"] > 0 and m["neg_latency_ms"] == -m["latency_ms"]
    assert m["throughput"] == pytest.approx(4000 / m["latency_ms"])
    assert r.info["batch_size"] == 4 and r.cost_s > 0
    with pytest.raises(ConfigError, match="repeats >= 1"):
        LatencyEvaluator(repeats=0)


def test_help_latency_lookup(nb201_table):
    arch = NB201Space().from_string(ARCH)
    recorded = nb201_table.query(arch)["latency_ms"]
    assert table_latency(arch, "pixel3") == pytest.approx(recorded["pixel3"])
    r = TableLatencyEvaluator("1080ti_32").evaluate(arch.relabel([0, 2, 1, 3, 4, 5, 6, 7]))
    assert r.metrics["latency_ms"] == pytest.approx(recorded["1080ti_32"]) and r.cost_s == 0.0
    with pytest.raises(ConfigError, match=r"no latency device 'pixel9' \(known: .*raspi4"):
        table_latency(arch, "pixel9")


def test_latency_lookup_of_a_space_without_table():
    from flownas.arch import Architecture
    arch = Architecture(["input", "output"], [[0, 1], [0, 0]], space="nowhere")
    with pytest.raises(NotInTableError, match="tables tried: none"):
        table_latency(arch, "pixel3")


@pytest.mark.parametrize("fixture, device", [("fbnet_table", "pixel3"), ("ofa_table", "titan_rtx_1")])
def test_help_latency_of_whole_network_spaces(request, fixture, device):
    table = request.getfixturevalue(fixture)
    arch = table.archs()[3]
    if device not in table.devices():
        device = table.devices()[0]
    assert table_latency(arch, device) == pytest.approx(table.query(arch)["latency_ms"][device])
    assert TableLatencyEvaluator(device).evaluate(arch).metrics["latency_ms"] > 0


def test_measured_latency_uses_the_architecture_resolution(ofa_table):
    arch = min(ofa_table.archs()[:50], key=lambda a: a.attrs[0]["resolution"])
    r = LatencyEvaluator(warmup=0, repeats=1, num_threads=1).evaluate(arch)
    res = arch.attrs[0]["resolution"]
    assert r.info["input_shape"] == (3, res, res) and r.metrics["latency_ms"] > 0
