"""flownas.graph: torch modules and ONNX files as canonical operator graphs."""
import json
import textwrap
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from flownas import graph
from flownas.arch import Architecture
from flownas.cli import main
from flownas.errors import ArchitectureError, ConfigError, DataError


class Residual(nn.Module):
    """stem -> (1x1 conv, 3x3 conv, skip) summed -> pool -> classifier."""

    def __init__(self, k=3, stride=1):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.branch_a = nn.Conv2d(8, 8, 1)
        self.branch_b = nn.Conv2d(8, 8, k, stride=stride, padding=k // 2)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = F.relu(self.bn(self.conv(x)))
        y = self.branch_a(x) + self.branch_b(x) + x if self.branch_b.stride == (1, 1) else self.branch_b(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(y, 1), 1))


class ResidualWrittenDifferently(nn.Module):
    """The same network: other names, branches in another order, module forms,
    a Python sum with an Identity skip, view instead of flatten."""

    def __init__(self):
        super().__init__()
        self.my_weird_stem = nn.Sequential(nn.Conv2d(3, 8, (3, 3), padding=(1, 1)), nn.BatchNorm2d(8), nn.ReLU())
        self.right = nn.Conv2d(8, 8, 3, padding=1)
        self.left = nn.Conv2d(8, 8, 1)
        self.skip = nn.Identity()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        x = self.my_weird_stem(x)
        y = sum([self.skip(x), self.right(x), self.left(x)])
        return self.head(self.pool(y).view(x.size(0), -1))


class StackedSum(ResidualWrittenDifferently):
    def forward(self, x):
        x = self.my_weird_stem(x)
        y = torch.stack([self.left(x), x, self.right(x)]).sum(0)
        return self.head(self.pool(y).flatten(1))


def test_isomorphic_networks_written_differently_hash_equal():
    a = graph.from_module(Residual())
    for other in (ResidualWrittenDifferently(), StackedSum()):
        b = graph.from_module(other)
        assert a == b and a.key == b.key and hash(a) == hash(b)
    assert a.ops.count("add") == 1
    add = a.ops.index("add")
    assert len(a.predecessors(add)) == 3          # one n-ary sum, the skip is an edge


def test_attributes_describe_operators_not_names():
    arch = graph.from_module(ResidualWrittenDifferently())
    text = json.dumps(arch.to_dict())
    for name in ("my_weird_stem", "right", "left", "head", "skip"):
        assert name not in text
    conv = arch.attrs[arch.ops.index("conv2d")]
    assert {"in_channels", "out_channels", "kernel_size", "stride", "padding", "groups"} <= set(conv)
    assert arch.attrs[0]["shape"] == (3, 32, 32)        # attrs are frozen: lists become tuples
    assert arch.attrs[arch.ops.index("linear")] == {"in_features": 8, "out_features": 10, "bias": True, "shape": (10,)}


@pytest.mark.parametrize("kwargs", [{"k": 5}, {"stride": 2}])
def test_different_operators_give_different_graphs(kwargs):
    assert graph.from_module(Residual(**kwargs)) != graph.from_module(Residual())


def test_the_module_is_left_untouched():
    model = Residual()
    graph.from_module(model)
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert model.training


class Truncate(nn.Module):
    """Shape-dependent control flow (as NAS-Bench-101 cells have): traceable."""

    def forward(self, x):
        if x.size(1) > 4:
            x = x[:, :4]
        return x * 2


class Gate(nn.Module):
    def forward(self, x):
        if x.sum() > 0:               # data-dependent: not traceable
            return x
        return -x


def test_shape_dependent_control_flow_is_traced():
    arch = graph.from_module(nn.Sequential(nn.Conv2d(3, 8, 1), Truncate()))
    assert arch.ops == ("input", "conv2d", "getitem", "mul", "output")
    assert arch.attrs[2]["shape"] == (4, 32, 32)


def test_untraceable_module_is_named():
    model = nn.Sequential(nn.Conv2d(3, 8, 1), nn.Sequential(nn.ReLU(), Gate()))
    with pytest.raises(ArchitectureError, match=r"module '1\.1' \(Gate\).*control flow"):
        graph.from_module(model)


def test_several_inputs_and_outputs():
    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 2), nn.Linear(6, 2)

        def forward(self, x, y, scale=2.0):
            s = self.a(x) + self.b(y)
            return s, torch.sigmoid(s) * scale

    arch = graph.from_module(TwoHeads(), example_inputs=[(1, 4), (1, 6)])
    assert arch.ops.count("input") == 2 and arch.ops.count("output") == 1
    out = arch.ops.index("output")
    assert len(arch.predecessors(out)) == 2


def test_dead_code_and_constants_are_not_nodes():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 1)
            self.scale = nn.Parameter(torch.ones(1, 4, 1, 1))

        def forward(self, x):
            unused = torch.tanh(x)  # noqa: F841 - dead code
            return self.conv(x) * self.scale + 0

    arch = graph.from_module(Net())
    assert arch.ops == ("input", "conv2d", "mul", "output")
    assert arch.attrs[2]["other_shape"] == (1, 4, 1, 1)


# -- ONNX ----------------------------------------------------------------------------
class ExportFriendly(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, stride=2)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        y = torch.relu(self.conv(x))
        z = self.pool(self.dw(y) + y)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(z, 1), 1))


def _export(model, tmp_path):
    path = tmp_path / "net.onnx"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model.eval(), (torch.randn(1, 3, 32, 32),), str(path), dynamo=False)
    except Exception as exc:  # the legacy exporter may go away in a later torch
        pytest.skip(f"torch cannot export ONNX here: {exc}")
    return path


def test_onnx_export_gives_the_same_graph_as_tracing(tmp_path):
    model = ExportFriendly()
    assert graph.from_onnx(_export(model, tmp_path)) == graph.from_module(model)


def _onnx_model(nodes, inputs=("x",), outputs=("y",)):
    from onnx import TensorProto, helper
    return helper.make_model(helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4]) for n in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4]) for n in outputs]))


def test_onnx_cycle_is_reported_by_node_name():
    from onnx import helper
    model = _onnx_model([
        helper.make_node("Add", ["x", "c"], ["a"], name="first_add"),
        helper.make_node("Relu", ["a"], ["b"], name="the_relu"),
        helper.make_node("Sigmoid", ["b"], ["c"], name="loop_back"),
        helper.make_node("Tanh", ["b"], ["y"], name="head"),
    ])
    with pytest.raises(ArchitectureError, match="cycle.*(first_add|the_relu|loop_back)"):
        graph.from_onnx(model)


def test_onnx_sum_of_sums_is_one_node():
    from onnx import helper
    model = _onnx_model([
        helper.make_node("Relu", ["x"], ["r"], name="r"),
        helper.make_node("Add", ["x", "r"], ["s1"], name="s1"),
        helper.make_node("Identity", ["s1"], ["i"], name="i"),
        helper.make_node("Add", ["i", "r"], ["y"], name="s2"),
    ])
    arch = graph.from_onnx(model)
    assert arch.ops == ("input", "relu", "add", "output")


def test_missing_onnx_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no ONNX file"):
        graph.from_onnx(tmp_path / "absent.onnx")


# -- targets, drawing, the command ----------------------------------------------------
@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A user's model file next to the command, as `flownas graph mymodels:make` sees it."""
    (tmp_path / "mymodels.py").write_text(textwrap.dedent("""
        from torch import nn

        def make(width=8):
            return nn.Sequential(nn.Conv2d(3, width, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                 nn.Flatten(), nn.Linear(width, 10))

        not_a_module = 42
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_load_calls_the_factory_with_kwargs(user_module):
    arch = graph.load("mymodels:make", kwargs={"width": 16})
    assert arch.attrs[arch.ops.index("conv2d")]["out_channels"] == 16


@pytest.mark.parametrize("target, message", [
    ("mymodels", "package.module:name"),
    ("no_such_module_xyz:make", "cannot import"),
    ("mymodels:missing", "no attribute"),
    ("mymodels:not_a_module", "not a torch.nn.Module"),
])
def test_bad_targets_are_config_errors(user_module, target, message):
    with pytest.raises(ConfigError, match=message):
        graph.load(target)


def test_draw_writes_a_png(tmp_path):
    out = graph.draw(graph.from_module(Residual()), str(tmp_path / "g.png"))
    assert open(out, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_graph_command_prints_canonical_json(user_module, capsys):
    assert main(["graph", "mymodels:make", "--kwargs", '{"width": 4}', "--compact"]) == 0
    record = json.loads(capsys.readouterr().out)
    arch = Architecture.from_dict(record)
    assert record["key"] == arch.key
    assert arch == graph.load("mymodels:make", kwargs={"width": 4})


def test_graph_command_draws_png_and_reads_onnx(user_module, tmp_path, capsys):
    onnx_path = _export(ExportFriendly(), tmp_path)
    assert main(["graph", str(onnx_path), "--png", str(tmp_path / "net.png")]) == 0
    assert "wrote" in capsys.readouterr().out and (tmp_path / "net.png").stat().st_size > 0


def test_graph_command_errors_are_one_line(user_module, capsys):
    assert main(["graph", "mymodels:missing"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("flownas: error:") and "no attribute" in err and err.count("\n") == 1
