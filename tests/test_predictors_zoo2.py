"""NAR-Former, NAR-Former V2 and TA-GATES: their pieces, and NAR-Former V2 on
whole networks with attributes predicting latency. (Learning, save/load,
isomorphism invariance, determinism and bad input on NB201 are checked for
every registered predictor by test_predictors_conformance.py.)"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from flownas.arch import Architecture
from flownas.predictors.features import GraphFeaturizer
from flownas.predictors.metrics import kendall_tau
from flownas.registry import PREDICTORS
from flownas.spaces.nb201 import NB201Space

ZOO2 = ("narformer", "narformer_v2", "tagates")


def _batch(archs, ops=NB201Space.ops, prune=("none",)):
    from flownas.predictors.nn.batch import GraphBatch
    return GraphBatch.encode(archs, GraphFeaturizer(ops, prune_ops=prune))


def _cells(n, seed=0):
    rng = np.random.default_rng(seed)
    space = NB201Space()
    return [space.sample(rng).canonical() for _ in range(n)]


# -- tokens ----------------------------------------------------------------------
def test_sinusoid_is_the_nerf_code():
    from flownas.predictors.nn.narformer import sinusoid
    code = sinusoid(torch.tensor([0.5, 3.0]), 4)
    assert code.shape == (2, 8)
    bands = np.linspace(1, 8, 4)
    want = np.stack([np.sin(bands * math.pi * 0.5), np.cos(bands * math.pi * 0.5)], -1).ravel()
    np.testing.assert_allclose(code[0].numpy(), want, atol=1e-6)


def test_tokens_code_op_position_and_predecessor_positions():
    from flownas.predictors.nn.narformer import SOURCE_CODE, Tokenizer, sinusoid
    # 0 -> 1, 0 -> 2, 1 -> 3, 2 -> 3
    arch = Architecture.from_edges(("input", "a", "b", "output"), [(0, 1), (0, 2), (1, 3), (2, 3)])
    batch = _batch([arch], ops=("a", "b", "input", "output"), prune=())
    tok = Tokenizer(freqs=4)(batch)[0]
    code = lambda v: sinusoid(torch.tensor(float(v)), 4)   # noqa: E731
    assert tok.shape == (4, 24)
    torch.testing.assert_close(tok[3, :8], code(3))                      # op "output" is vocabulary index 3
    torch.testing.assert_close(tok[2, 8:16], code(2))                    # own position
    torch.testing.assert_close(tok[3, 16:], code(1) + code(2))           # sum of the predecessors' positions
    torch.testing.assert_close(tok[0, 16:], code(SOURCE_CODE))           # a source


def test_positions_ignore_padding_so_compaction_changes_nothing():
    """Real nodes keep their relative order when padding moves (the shared
    prediction path may renumber real nodes first), so positions and
    predictions stay the same."""
    from flownas.predictors.nn.narformer import node_positions
    mask = torch.tensor([[True, False, True, True, False]])
    assert node_positions(mask).tolist() == [[0, 0, 1, 2, 0]]
    batch = _batch(_cells(40))
    assert not batch.mask.all()
    perm = torch.argsort((~batch.mask).to(torch.int8), dim=1, stable=True)
    compact = batch.relabeled(perm).trimmed()
    for name in ZOO2:
        cls = PREDICTORS.get(name)
        torch.manual_seed(0)
        net = cls(**cls.quick_params).build_network(GraphFeaturizer(NB201Space.ops, prune_ops=("none",)))
        net.eval()
        with torch.no_grad():
            torch.testing.assert_close(net(compact), net(batch))


def test_flow_consistent_relabelings_are_random_topological_orders():
    from flownas.predictors.nn.narformer import flow_consistent_relabel
    batch = _batch(_cells(64), prune=())
    gen = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(5):
        r = flow_consistent_relabel(batch, gen)
        assert not torch.triu(r.adj.transpose(1, 2)).any()              # every edge goes forward
        assert torch.equal(r.adj.sum((1, 2)), batch.adj.sum((1, 2)))
        assert torch.equal(r.ops.sort(1).values, batch.ops.sort(1).values)
        seen.add(tuple(r.ops[0].tolist()))
    assert len(seen) > 1


def test_narformer_loss_terms():
    from flownas.predictors.nn.narformer import narformer_step_loss
    batch = _batch(_cells(8))
    y = torch.arange(8.0)
    gen = torch.Generator().manual_seed(0)

    class Fixed(torch.nn.Module):     # predicts y + 1 for the first copy, y + 3 for a second one
        def forward(self, b):
            out = y + 1
            return out if len(b) == len(y) else torch.cat([out, out + 2])
    assert narformer_step_loss(0.0, 0.0, False)(Fixed(), batch, y, gen).item() == pytest.approx(1.0)
    assert narformer_step_loss(0.1, 0.0, False)(Fixed(), batch, y, gen).item() == pytest.approx(1.0)  # SR: shifts cancel
    # both copies enter the MSE (1 and 9), and the AC term is 0.5 * |1 - 3|
    assert narformer_step_loss(0.0, 0.5, True)(Fixed(), batch, y, gen).item() == pytest.approx(5.0 + 1.0)


# -- TA-GATES ------------------------------------------------------------------------
def _chain(ops):
    return Architecture.from_edges(ops, [(i, i + 1) for i in range(len(ops) - 1)])


def test_gates_flow_reaches_the_sink_along_any_depth():
    """One flow layer carries information from the source through a long
    chain (a layer of aw_nas' dense GATES moves it one hop): the op of the
    first node changes the sink's state. Gates multiply along a path, so the
    effect shrinks with depth, but it is there."""
    from flownas.predictors.nn.tagates import TAGATESEncoder
    ops = ("a", "b", "input", "output")
    long = [_chain(("input", first) + ("b",) * 6 + ("output",)) for first in ("a", "b")]
    torch.manual_seed(0)
    enc = TAGATESEncoder(4, dims=(16,), time_steps=1, noise=0.0).eval()
    emb = enc.embed(_batch(long, ops=ops, prune=()))
    assert not torch.equal(emb[0], emb[1])


def test_identity_ops_pass_information_ungated():
    from flownas.predictors.nn.tagates import GatedFlow, Schedule
    layer = GatedFlow(4, 3, 5)
    for t in (layer.residual.weight, layer.gate.weight):
        torch.nn.init.zeros_(t)
    torch.nn.init.ones_(layer.residual.bias)                  # every node's own term is 1
    torch.nn.init.constant_(layer.gate.bias, math.log(1 / 3))  # a gate of 0.25
    torch.nn.init.eye_(layer.hop.weight)
    batch = _batch([_chain(("input", "skip", "output"))], ops=("skip", "input", "output"), prune=())
    out = layer(torch.randn(1, 3, 4), Schedule(batch.adj.transpose(1, 2), batch.depth), torch.zeros(1, 3, 5),
                torch.tensor([[False, True, False]]))
    # source 1; skip: 1 * 1 + 1 = 2 (ungated); output: 0.25 * 2 + 1
    torch.testing.assert_close(out[0], torch.tensor([[1.0] * 3, [2.0] * 3, [1.5] * 3]))


def _dense_gated_flow(layer, h, senders, depth, op_emb, identity):
    """GATES' flow layer written out node by node, in topological order: the
    reference the per-edge implementation must match."""
    gate = torch.where(identity.unsqueeze(-1), torch.ones(()), torch.sigmoid(layer.gate(op_emb)))
    base = layer.residual(h)
    graphs = []
    for b in range(base.shape[0]):
        out = [torch.zeros(base.shape[-1])] * base.shape[1]
        for v in sorted(range(base.shape[1]), key=lambda v: int(depth[b, v])):
            if depth[b, v] == 0:
                out[v] = base[b, v]
            else:
                msg = sum(senders[b, v, u] * layer.hop(out[u]) for u in range(len(out)) if senders[b, v, u])
                out[v] = gate[b, v] * msg + base[b, v]
        graphs.append(torch.stack(out))
    return torch.stack(graphs)


def test_gated_flow_matches_the_node_by_node_definition():
    """Messages are summed per edge (the schedule's sender lists), with
    gradients as well as values."""
    from flownas.predictors.nn.tagates import GatedFlow, Schedule
    batch = _batch(_cells(6))
    senders = batch.adj.transpose(1, 2)
    torch.manual_seed(0)
    layer = GatedFlow(5, 4, 3)
    h = torch.randn(*batch.mask.shape, 5, requires_grad=True)
    op_emb = torch.randn(*batch.mask.shape, 3)
    identity = torch.zeros_like(batch.mask)
    identity[:, 2] = True
    got = layer(h, Schedule(senders, batch.depth), op_emb, identity)
    want = _dense_gated_flow(layer, h, senders, batch.depth, op_emb, identity)
    mask = batch.mask.unsqueeze(-1)
    torch.testing.assert_close(got * mask, want * mask)
    grad_got, = torch.autograd.grad((got * mask).sum(), h)
    grad_want, = torch.autograd.grad((want * mask).sum(), h)
    torch.testing.assert_close(grad_got, grad_want)


def test_time_steps_update_only_parametrized_ops_and_change_the_embedding():
    from flownas.predictors.nn.tagates import TAGATESEncoder
    cells = _cells(16)
    batch = _batch(cells)
    torch.manual_seed(0)
    enc = TAGATESEncoder(7, dims=(16, 16), time_steps=3, fb_dims=(16,), update_dims=(16,),
                         updatable_ops=(3, 4), noise=0.0).eval()
    one = TAGATESEncoder(7, dims=(16, 16), time_steps=1, noise=0.0).eval()
    one.load_state_dict({k: v for k, v in enc.state_dict().items() if k in one.state_dict()})
    assert not torch.allclose(enc.embed(batch), one.embed(batch))
    enc.updatable.zero_()                 # nothing updatable: every round is the first forward pass
    torch.testing.assert_close(enc.embed(batch), one.embed(batch))


def test_symmetry_breaking_is_random_in_training_and_fixed_in_evaluation():
    from flownas.predictors.nn.tagates import TAGATESEncoder
    batch = _batch(_cells(8))
    torch.manual_seed(0)
    enc = TAGATESEncoder(7, dims=(16,), time_steps=2, fb_dims=(16,), update_dims=(16,), updatable_ops=(3, 4))
    enc.train()
    assert not torch.allclose(enc.embed(batch), enc.embed(batch))
    enc.eval()
    torch.testing.assert_close(enc.embed(batch), enc.embed(batch))


# -- NAR-Former V2 on whole networks ------------------------------------------------------
def _latency_split(table, device, n_train=200, n_test=500):
    archs, lat = table.latencies(device)
    perm = np.random.default_rng(0).permutation(len(archs))
    tr, te = perm[:n_train], perm[n_train:n_train + n_test]
    lat = np.asarray(lat)
    return [archs[i] for i in tr], lat[tr], [archs[i] for i in te], lat[te]


@pytest.mark.parametrize("table_name, device", [("ofa", "v100_1"), ("fbnet", "pixel3")])
def test_narformer_v2_fits_latency_of_whole_networks(table_name, device, request, tmp_path):
    table = request.getfixturevalue(f"{table_name}_table")
    tr_a, tr_y, te_a, te_y = _latency_split(table, device)
    assert tr_a[0].attrs and tr_a[0].num_nodes > 20
    cls = PREDICTORS.get("narformer_v2")
    p = cls(seed=0, **{**cls.quick_params, "readout": "sum", "target_transform": "log"}).fit(tr_a, tr_y)
    assert p.featurizer_.num_attrs > 0
    pred = p.predict(te_a)
    assert (pred > 0).all()
    assert kendall_tau(te_y, pred) > 0.5
    p.save(tmp_path / "p.bin")
    np.testing.assert_array_equal(type(p).load(tmp_path / "p.bin").predict(te_a[:50]), p.predict(te_a[:50]))
    mean, std = p.predict(te_a[:20], return_std=True)
    np.testing.assert_array_equal(mean, p.predict(te_a[:20]))
    assert (std == 0).all()               # one member: no spread


def test_log_targets_must_be_positive():
    cls = PREDICTORS.get("narformer_v2")
    cells = _cells(4)
    with pytest.raises(ValueError, match="positive"):
        cls(target_transform="log", **cls.quick_params).fit(cells, [1.0, 2.0, 0.0, 3.0])
    with pytest.raises(ValueError, match="target_transform"):
        cls(target_transform="sqrt")
