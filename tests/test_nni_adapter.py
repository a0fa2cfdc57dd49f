"""The NNI adapter: NNI model spaces (hub spaces, the ResNet example, small
spaces written here) sampled, frozen, traced and hashed through flownas."""
import json
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from flownas import graph
from flownas.arch import Architecture
from flownas.errors import ArchitectureError, ConfigError, NotInSpaceError
from flownas.registry import SPACES, get_space
from flownas.spaces import nni_adapter
from flownas.spaces.nni_adapter import NNISpace, network_of, nni_space
# the shared conformance suite, run here on the NNI form of the ResNet example
from test_spaces_conformance import test_the_space_follows_the_rule  # noqa: F401 - collected by pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
HUB = "nni.nas.hub.pytorch:"
# every hub space, small enough to freeze and trace in about a second
HUB_SPACES = {
    "NasBench201": dict(stem_out_channels=4, num_modules_per_stack=1),
    "NasBench101": dict(stem_out_channels=4, num_stacks=1, num_modules_per_stack=1),
    "DARTS": dict(width=4, num_cells=3),
    "NASNet": dict(width=4, num_cells=3),
    "ENAS": dict(width=4, num_cells=3),
    "AmoebaNet": dict(width=4, num_cells=3),
    "PNAS": dict(width=4, num_cells=3),
    "ProxylessNAS": dict(num_labels=10, base_widths=(8, 8, 8, 8, 8, 8, 8, 8, 16)),
    "MobileNetV3Space": dict(num_labels=10, base_widths=(8, 8, 8, 8, 8, 8, 8, 8, 16), width_multipliers=1.0),
    "ShuffleNetSpace": dict(num_labels=10),
    "AutoformerSpace": dict(search_embed_dim=(24, 48), search_num_heads=(2, 3), search_depth=(1, 2),
                            img_size=32, patch_size=8, num_labels=10),
}
# hub model spaces that are not spaces of their own
HUB_NOT_SPACES = {"NDS": "the base of the cell spaces above, it takes the operations as arguments",
                  "AutoFormer": "another name of AutoformerSpace"}


@pytest.fixture(scope="session")
def nni(nni_import_warnings):
    import nni
    return nni


@pytest.fixture(scope="session")
def examples(nni):
    sys.path.insert(0, str(EXAMPLES))
    import resnet_nni
    import resnet_space
    return resnet_space, resnet_nni


@pytest.fixture(scope="module")
def space(examples):
    """The conformance suite's subject: the ResNet example through the adapter."""
    return nni_space("test-resnet-nni", examples[1].ResNetModelSpace, register=False)()


# -- small model spaces written for these tests -----------------------------------------
def _branches_space(nni):
    from nni.nas.nn.pytorch import LayerChoice, ModelSpace
    from torch import nn

    def convs():
        return {"conv3": nn.Conv2d(4, 4, 3, padding=1), "conv5": nn.Conv2d(4, 4, 5, padding=2)}

    class Branches(ModelSpace):
        """Two parallel branches, summed: swapping their choices gives the same network."""

        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 4, 1)
            self.left = LayerChoice(convs(), label="left")
            self.right = LayerChoice(convs(), label="right")

        def forward(self, x):
            x = self.stem(x)
            return self.left(x) + self.right(x)

    return Branches


class Gate(torch.nn.Module):
    def forward(self, x):
        return x if x.mean() > 0 else -x        # data-dependent: cannot be traced


def _gated_space(nni):
    from nni.nas.nn.pytorch import LayerChoice, ModelSpace
    from torch import nn

    class Gated(ModelSpace):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 4, 1), LayerChoice({"relu": nn.ReLU(), "gate": Gate()},
                                                                      label="act"))

        def forward(self, x):
            return self.body(x)

    return Gated


# -- hub spaces ------------------------------------------------------------------------
@pytest.mark.parametrize("hub", sorted(HUB_SPACES))
def test_hub_space_round_trips(nni, hub):
    space = NNISpace(HUB + hub, name=f"nni-{hub.lower()}", **HUB_SPACES[hub])
    arch = space.sample(np.random.default_rng(0))
    assert arch.space == space.name and arch.attrs and "conv2d" in arch.ops
    # sample -> freeze -> trace -> hash, and back from the stored text
    assert space.parse(space.to_string(arch)) == arch
    assert space.from_params(space.to_params(arch)) == arch
    choices = space.param_space()
    assert all(value in choices[label] for label, value in space.to_params(arch).items())
    # the trainable model is the traced network
    model = space.to_model(arch)
    assert graph.from_module(model, space.input_shape, space=space.name) == network_of(arch)
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(2, *space.input_shape)).shape == (2, 10)


def test_every_hub_space_is_covered(nni):
    import nni.nas.hub.pytorch as hub
    from nni.nas.nn.pytorch import ModelSpace
    model_spaces = {name for name, obj in vars(hub).items() if isinstance(obj, type) and issubclass(obj, ModelSpace)}
    assert model_spaces == set(HUB_SPACES) | set(HUB_NOT_SPACES)


def test_hub_sample_is_seeded_and_mutation_moves(nni):
    space = NNISpace(HUB + "NasBench201", name="nni-nb201", **HUB_SPACES["NasBench201"])
    a, b = (space.sample(np.random.default_rng(7)) for _ in range(2))
    assert a == b and space.to_string(a) == space.to_string(b)
    child = space.mutate(a, np.random.default_rng(1))
    assert child != a and space.contains(child)


def test_constraints_of_the_space_are_enforced(nni):
    space = NNISpace(HUB + "NasBench101", name="nni-nb101", **HUB_SPACES["NasBench101"])
    params = space.to_params(space.sample(np.random.default_rng(0)))
    # every vertex takes every earlier vertex: more than the 9 edges NAS-Bench-101 allows
    full = {label: json.dumps(list(range(int(label[len("cell/input"):]))))
            for label in params if label.startswith("cell/input")}
    with pytest.raises(NotInSpaceError, match="constraint"):
        space.from_params({**params, **full, "cell/num_nodes": 7})


# -- the ResNet example in both forms -----------------------------------------------------
def test_both_forms_of_the_example_build_the_same_networks(space, examples):
    plain = examples[0].ResNetSpace()
    rng = np.random.default_rng(5)
    for _ in range(3):
        arch = space.sample(rng)
        twin = plain.from_params(space.to_params(arch))
        assert graph.from_module(plain.to_model(twin), space=space.name) == network_of(arch)
        assert plain.param_space() == space.param_space()


# -- canonical graphs, errors ----------------------------------------------------------------
def test_samples_building_the_same_network_hash_equal(nni):
    space = NNISpace(_branches_space(nni), name="branches")
    a = space.from_params({"left": "conv3", "right": "conv5"})
    b = space.from_params({"left": "conv5", "right": "conv3"})
    c = space.from_params({"left": "conv3", "right": "conv3"})
    assert a == b and a.key == b.key and a != c
    network = json.dumps(network_of(a).to_dict())     # module names are nowhere in the graph
    assert "left" not in network and "right" not in network and "stem" not in network


def test_untraceable_sample_names_the_module(nni):
    space = NNISpace(_gated_space(nni), name="gated")
    assert space.from_params({"act": "relu"}).ops[-2] == "relu"
    with pytest.raises(ArchitectureError, match=r"gated.*'body\.1' \(Gate\).*control flow"):
        space.from_params({"act": "gate"})


def test_bad_samples_are_named(nni):
    space = NNISpace(_branches_space(nni), name="branches")
    with pytest.raises(NotInSpaceError, match="missing decisions right"):
        space.from_params({"left": "conv3"})
    with pytest.raises(NotInSpaceError, match="unknown decisions depth"):
        space.from_params({"left": "conv3", "right": "conv3", "depth": 2})
    with pytest.raises(NotInSpaceError, match="left"):
        space.from_params({"left": "conv7", "right": "conv3"})


def test_an_architecture_carries_its_sample_to_any_process(nni, examples, monkeypatch):
    here = nni_space("test-resnet-carried", examples[1].ResNetModelSpace, register=False)
    arch = here().sample(np.random.default_rng(0))
    text = here().to_string(arch)
    stored = Architecture.from_json(arch.to_json())            # a ledger, a worker
    # another process: no traced network remembered, a new instance (as get_space makes)
    monkeypatch.setattr(nni_adapter, "_TRACED", type(nni_adapter._TRACED)())
    monkeypatch.setattr(nni_adapter, "_FIRST_SAMPLE", type(nni_adapter._FIRST_SAMPLE)())
    elsewhere = pickle.loads(pickle.dumps(here()))
    assert elsewhere.to_string(stored) == text and elsewhere.contains(stored)
    assert elsewhere.to_model(stored, num_classes=3).classifier.out_features == 3


def test_graphs_without_or_with_a_wrong_sample_are_rejected(nni):
    space = NNISpace(_branches_space(nni), name="branches")
    arch = space.from_params({"left": "conv3", "right": "conv3"})
    bare = arch.with_ops(arch.ops, [{k: v for k, v in a.items() if k != nni_adapter.SAMPLE_ATTR}
                                    for a in arch.attrs])
    with pytest.raises(NotInSpaceError, match="carries no NNI sample"):
        space.validate(bare)
    other = space.from_params({"left": "conv5", "right": "conv5"})
    lying = arch.with_ops(arch.ops, [dict(a, nni_sample=space.to_string(other)) if op == "input" else a
                                     for op, a in zip(arch.ops, arch.attrs)])
    with pytest.raises(NotInSpaceError, match="not the network its sample builds"):
        space.validate(lying)


def test_pickled_space_still_builds(nni, examples):
    space = nni_space("test-resnet-pickle", examples[1].ResNetModelSpace, register=False)()
    arch = space.sample(np.random.default_rng(2))
    clone = pickle.loads(pickle.dumps(space))
    assert clone.name == space.name and clone.to_string(arch) == space.to_string(arch)
    assert isinstance(clone.to_model(arch), torch.nn.Module)


def test_hub_options_reach_the_model_space(nni):
    space = NNISpace(HUB + "NasBench201", name="nni-nb201", **HUB_SPACES["NasBench201"])
    arch = space.sample(np.random.default_rng(0))
    with torch.no_grad():
        assert space.to_model(arch, num_classes=7).eval()(torch.randn(1, 3, 32, 32)).shape == (1, 7)
    with pytest.raises(TypeError, match="no argument depth"):
        space.to_model(arch, depth=3)


def test_models_do_not_share_weights(nni):
    space = NNISpace(_branches_space(nni), name="branches")
    arch = space.sample(np.random.default_rng(0))
    one, two = space.to_model(arch), space.to_model(arch)
    assert all(p.data_ptr() != q.data_ptr() for p, q in zip(one.parameters(), two.parameters()))


@pytest.mark.parametrize("source, message", [
    (None, "needs a model space"),
    ("nni.nas.hub.pytorch:no_such_space", "no attribute"),
    (lambda: 42, "not an nni ModelSpace"),
])
def test_bad_model_spaces_are_config_errors(nni, source, message):
    with pytest.raises(ConfigError, match=message):
        NNISpace(source).param_space()


# -- registration and imports -------------------------------------------------------------------
def test_named_nni_space_is_registered(nni, examples, monkeypatch):
    monkeypatch.setattr(SPACES, "_entries", dict(SPACES._entries))
    nni_space("test-resnet-registered", examples[1].ResNetModelSpace)
    space = get_space("test-resnet-registered")
    assert space.sample(np.random.default_rng(0)).space == "test-resnet-registered"


def test_nni_warnings_do_not_leak(nni_import_warnings, nni):
    if nni_import_warnings is None:
        pytest.skip("nni was imported before this module: its import warnings were not observable")
    assert [str(w.message) for w in nni_import_warnings] == []
    space = NNISpace(_branches_space(nni), name="branches")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        space.to_model(space.sample(np.random.default_rng(0)))
    assert caught == []


def test_flownas_and_space_discovery_do_not_import_nni():
    # also listing a registered NNI space (flownas spaces makes one and asks its size)
    code = ("import sys, flownas; from flownas.registry import SPACES; SPACES.names(); "
            "from flownas.spaces.nni_adapter import nni_space; "
            "space = nni_space('hub-nb201', 'nni.nas.hub.pytorch:NasBench201')(); space.size(); "
            "print('nni' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1]).stdout
    assert out.strip() == "False"


def test_operators_outside_the_vocabulary_must_be_declared(nni):
    from nni.nas.nn.pytorch import LayerChoice, ModelSpace
    from torch import nn

    class Clamped(ModelSpace):
        def __init__(self):
            super().__init__()
            self.conv = LayerChoice({"c1": nn.Conv2d(3, 4, 1), "c3": nn.Conv2d(3, 4, 3, padding=1)}, label="conv")

        def forward(self, x):
            return torch.clamp(self.conv(x), -1, 1)

    with pytest.raises(ArchitectureError, match="operators clamp .*extra_ops"):
        NNISpace(Clamped, name="clamped").sample(np.random.default_rng(0))
    space = NNISpace(Clamped, name="clamped", extra_ops=("clamp",))
    assert "clamp" in space.ops and "clamp" in space.sample(np.random.default_rng(0)).ops
