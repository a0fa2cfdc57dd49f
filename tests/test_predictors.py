"""The shared machinery of the predictors: metrics, graph encoding, the
training loop and its losses."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from flownas.arch import Architecture
from flownas.predictors import metrics
from flownas.predictors.features import GraphFeaturizer, path_encoding
from flownas.spaces.nb201 import NB201Space

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


# -- metrics -------------------------------------------------------------------
def test_rank_metrics():
    y = np.arange(10.0)
    assert metrics.kendall_tau(y, y) == pytest.approx(1.0)
    assert metrics.kendall_tau(y, -y) == pytest.approx(-1.0)
    assert metrics.spearman(y, y ** 3) == pytest.approx(1.0)
    assert metrics.kendall_tau(y, np.ones(10)) == 0.0


def test_precision_at_k_counts_the_true_top_found():
    y = np.arange(100.0)
    assert metrics.precision_at_k(y, y, 0.05) == 1.0
    pred = y.copy()
    pred[[99, 0]] = pred[[0, 99]]           # the best is predicted worst
    assert metrics.precision_at_k(y, pred, 0.05) == pytest.approx(4 / 5)
    assert metrics.precision_at_k(y, -y, 0.01) == 0.0


def test_relative_errors():
    assert metrics.mape([1, 2, 4], [1.1, 2, 3]) == pytest.approx((10 + 0 + 25) / 3)
    assert metrics.acc_within([1, 2, 4], [1.05, 2, 3], 0.1) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="undefined"):
        metrics.mape([0, 1], [0, 1])
    with pytest.raises(ValueError, match="differ in length"):
        metrics.kendall_tau([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="finite"):
        metrics.spearman([1, 2, np.nan], [1, 2, 3])


# -- encoding ------------------------------------------------------------------
def _cell(text):
    return NB201Space().from_string(text)


def test_featurizer_matches_the_architecture():
    arch = _cell(BEST)
    f = GraphFeaturizer(NB201Space.ops)
    g = f([arch, arch.relabel([7, 6, 5, 4, 3, 2, 1, 0])])
    assert g.ops.shape == (2, 8) and g.mask.all()
    assert [f.ops[i] for i in g.ops[0]] == list(arch.ops)
    np.testing.assert_array_equal(g.adj[0], arch.adjacency.astype(bool))
    np.testing.assert_array_equal(g.depth[0], arch.depths())
    np.testing.assert_array_equal(g.rdepth[0], arch.reverse_depths())
    np.testing.assert_array_equal(g.reach[0], arch.reachability())
    r = arch.relabel([7, 6, 5, 4, 3, 2, 1, 0])
    np.testing.assert_array_equal(g.depth[1], r.depths())


def test_pruning_removes_zero_ops_and_dead_paths():
    f = GraphFeaturizer(NB201Space.ops, prune_ops=("none",))
    # edge 1<-0 is none: edges 2<-1 and 3<-1 only see a zero input, so they go too
    arch = _cell("|none~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|")
    g = f([arch])
    kept = [arch.ops[i] for i in np.flatnonzero(g.mask[0])]
    assert kept == ["input", "nor_conv_3x3", "skip_connect", "nor_conv_1x1", "output"]
    assert g.depth[0][g.mask[0]].tolist() == [0, 1, 1, 2, 3]
    assert not g.adj[0][~g.mask[0]].any() and not g.reach[0][:, ~g.mask[0]].any()
    # nothing reaches the output: only the input and output nodes stay, unconnected
    empty = f([_cell("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")])
    assert empty.mask[0].sum() == 2 and not empty.adj.any()


def test_contraction_joins_the_neighbours_of_identity_nodes():
    f = GraphFeaturizer(NB201Space.ops, prune_ops=("none",), contract_ops=("skip_connect",))
    best = _cell(BEST)
    g = f([best])
    assert g.mask[0].sum() == 7 and g.adj[0, 0, 7]          # input -> skip -> output became input -> output
    np.testing.assert_array_equal(g.reach[0][np.ix_(g.mask[0], g.mask[0])],
                                  Architecture.from_edges(["x"] * 8, zip(*np.nonzero(g.adj[0]))).reachability()
                                  [np.ix_(g.mask[0], g.mask[0])])
    # output = skip(x) + skip(skip(x)) is 2x, not x: the skip whose
    # predecessor already feeds its successor stays
    twice = _cell("|skip_connect~0|+|none~0|none~1|+|skip_connect~0|skip_connect~1|none~2|")
    g = f([twice])
    assert np.flatnonzero(g.mask[0]).tolist() == [0, 5, 7]
    assert g.adj[0, 0, 5] and g.adj[0, 5, 7] and g.adj[0, 0, 7] and g.adj[0].sum() == 3
    assert g.depth[0, [0, 5, 7]].tolist() == [0, 1, 2] and g.rdepth[0, [0, 5, 7]].tolist() == [2, 1, 0]


def test_unique_encodings_merge_cells_that_reduce_to_the_same_graph():
    f = GraphFeaturizer(NB201Space.ops, prune_ops=("none",), contract_ops=("skip_connect",))
    # the none edge into node 1 kills the edges out of it, whatever their ops
    a = _cell("|none~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|")
    b = _cell("|none~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_1x1~2|")
    arrays = f([a, _cell(BEST), b, a])
    distinct, inverse = arrays.unique()
    assert len(distinct) == 2 and inverse[0] == inverse[2] == inverse[3] != inverse[1]
    back = distinct[inverse]
    for name in ("ops", "adj", "mask", "depth", "rdepth", "reach"):
        np.testing.assert_array_equal(getattr(back, name), getattr(arrays, name))


def test_featurizer_rejects_unknown_ops_and_oversized_graphs():
    f = GraphFeaturizer(("input", "a", "output"), max_nodes=3)
    with pytest.raises(ValueError, match="not in this predictor's vocabulary"):
        f([Architecture.from_edges(("input", "b", "output"), [(0, 1), (1, 2)])])
    with pytest.raises(ValueError, match="at most 3 nodes"):
        f([Architecture.from_edges(("input", "a", "a", "output"), [(0, 1), (1, 2), (2, 3)])])
    with pytest.raises(ValueError, match="empty"):
        f([])


def test_numeric_attributes_are_standardized():
    archs = [Architecture.from_edges(("input", "conv", "output"), [(0, 1), (1, 2)], "",
                                     [{}, {"k": k, "name": "x"}, {}]) for k in (3, 5, 7)]
    f = GraphFeaturizer.for_archs(archs)
    assert f.attr_keys == ("k",) and f.ops == ("conv", "input", "output")
    g = f(archs)
    np.testing.assert_allclose(g.attrs[:, 1, 0], [-1.2247, 0, 1.2247], atol=1e-4)
    assert GraphFeaturizer(**f.config()) == f


def test_path_encoding_counts_every_path():
    enc, vocab = path_encoding([_cell(BEST)])
    assert enc.sum() == 4 and len(vocab) == 4      # NB201 cells: 4 input-to-output paths
    assert ("input", "nor_conv_3x3", "nor_conv_3x3", "nor_conv_1x1", "output") in vocab
    again, _ = path_encoding([_cell(BEST)], vocab)
    np.testing.assert_array_equal(again, enc)


def test_featurizer_refuses_an_unresolved_op_list():
    with pytest.raises(TypeError, match="prune_ops.*'auto'"):
        GraphFeaturizer.for_archs([_cell(BEST)], prune_ops="auto")


def test_gbt_fits_when_no_path_is_frequent_and_with_any_seed():
    from flownas.predictors.gbt import GBTPredictor
    space = NB201Space()
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(10)]
    y = rng.normal(size=10)
    # leaves of 5 cells among 10 diverse cells: no path is in 5 of them for this draw
    p = GBTPredictor(max_iter=20, min_samples_leaf=5, seed=2**23).fit(archs, y)
    assert p.paths_ and np.isfinite(p.predict(archs)).all()


def test_encoding_a_whole_table_is_vectorized(nb201_table):
    import time
    archs = nb201_table.archs()
    f = GraphFeaturizer(NB201Space.ops, prune_ops=("none",))
    start = time.process_time()
    g = f(archs)
    assert time.process_time() - start < 5      # a loop over nodes in Python takes far longer
    assert g.ops.shape == (15625, 8)
    assert np.bincount(g.mask.sum(1))[2] == 341  # cells whose output sees nothing


# -- batches, losses and the loop ------------------------------------------------
def test_relabeled_batch_is_the_same_graphs():
    from flownas.predictors.nn.batch import GraphBatch
    f = GraphFeaturizer(NB201Space.ops)
    b = GraphBatch.encode([_cell(BEST)], f)
    perm = torch.tensor([[7, 6, 5, 4, 3, 2, 1, 0]])
    r = b.relabeled(perm)
    assert r.ops[0].tolist() == b.ops[0].flip(0).tolist()
    assert torch.equal(r.adj[0], b.adj[0].flip(0).flip(1))
    assert torch.equal(r.reach[0], b.reach[0].flip(0).flip(1))


def test_pairwise_losses():
    from flownas.predictors.nn.train import pairwise_hinge, pairwise_logistic
    y = torch.tensor([0.0, 1.0, 2.0])
    assert pairwise_hinge(y, y, margin=0.5).item() == 0.0
    assert pairwise_hinge(-y, y, margin=0.0).item() == pytest.approx((1 + 2 + 1) / 3)
    assert pairwise_logistic(y * 10, y).item() < pairwise_logistic(-y, y).item()
    assert pairwise_hinge(y, torch.ones(3)).item() == 0.0    # no ordered pair


def test_warmup_cosine_schedule():
    from flownas.predictors.nn.train import warmup_cosine
    f = [warmup_cosine(s, 100, 10) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert f[10] == pytest.approx(1.0) and f[-1] < 0.01
    assert all(a >= b for a, b in zip(f[10:], f[11:]))


def test_model_selection_keeps_a_real_copy_of_the_best_weights():
    """The official FlowerFormer code kept references to the live weights;
    the loop must restore the best epoch's weights, not the last."""
    from flownas.predictors.nn.batch import GraphBatch
    from flownas.predictors.nn.heads import GraphRegressor
    from flownas.predictors.nn.mlp import MLPEncoder
    from flownas.predictors.nn.train import TrainConfig, predict_scores, train_network
    rng = np.random.default_rng(0)
    space = NB201Space()
    archs = [space.sample(rng) for _ in range(64)]
    f = GraphFeaturizer(NB201Space.ops, max_nodes=8)
    batch = GraphBatch.encode(archs, f)
    y = torch.randn(64)
    torch.manual_seed(0)
    net = GraphRegressor(MLPEncoder(7, 8, 32, 2))
    val_y = rng.normal(size=64)
    result = train_network(net, batch, y, TrainConfig(epochs=8, batch_size=16), val=(batch, val_y))
    tau_at_best = [h["val_tau"] for h in result.history if h["epoch"] == result.best_epoch][0]
    assert tau_at_best == result.val_tau == max(h["val_tau"] for h in result.history)
    assert metrics.kendall_tau(val_y, predict_scores(net, batch).numpy()) == pytest.approx(result.val_tau)


def test_selection_last_keeps_the_last_weights_and_records_the_split():
    """selection='last': the validation split is recorded every epoch but picks
    nothing; the weights are those of an unvalidated run of the same seed."""
    from flownas.predictors.nn.batch import GraphBatch
    from flownas.predictors.nn.heads import GraphRegressor
    from flownas.predictors.nn.mlp import MLPEncoder
    from flownas.predictors.nn.train import TrainConfig, predict_scores, train_network
    rng = np.random.default_rng(0)
    archs = [NB201Space().sample(rng) for _ in range(64)]
    batch = GraphBatch.encode(archs, GraphFeaturizer(NB201Space.ops, max_nodes=8))
    y, val_y = torch.randn(64), rng.normal(size=64)
    nets, results = [], []
    for kwargs in ({"val": (batch, val_y)}, {}):
        torch.manual_seed(0)
        nets.append(GraphRegressor(MLPEncoder(7, 8, 32, 2)))
        cfg = TrainConfig(epochs=8, batch_size=16, selection="last")
        results.append(train_network(nets[-1], batch, y, cfg, **kwargs))
    torch.testing.assert_close(predict_scores(nets[0], batch), predict_scores(nets[1], batch))
    validated = results[0]
    assert validated.best_epoch == 8 and len([h for h in validated.history if "val_tau" in h]) == 8
    assert validated.val_tau == validated.history[-1]["val_tau"]
    assert metrics.kendall_tau(val_y, predict_scores(nets[0], batch).numpy()) == pytest.approx(validated.val_tau)
    with pytest.raises(ValueError, match="selection"):
        TrainConfig(selection="first")
    with pytest.raises(ValueError, match="patience"):
        TrainConfig(selection="last", patience=3)


# -- FlowerFormer's pieces ----------------------------------------------------------
def test_flow_pass_is_a_gru_cell_along_the_flow():
    """On a chain every node has one predecessor (attention weight 1): the pass
    must equal GRUCell applied node after node, hidden = the predecessor's state."""
    from flownas.predictors.nn.flowerformer import FlowPass, Schedule
    torch.manual_seed(0)
    fp = FlowPass(8)
    adj = torch.zeros(1, 3, 3, dtype=torch.bool)
    adj[0, 0, 1] = adj[0, 1, 2] = True
    x = torch.randn(1, 3, 8)
    h = fp(x, Schedule(adj.transpose(1, 2), torch.tensor([[0, 1, 2]])))
    h0 = fp.gru(x[0, :1])
    h1 = fp.gru(x[0, 1:2], h0)
    h2 = fp.gru(x[0, 2:], h1)
    torch.testing.assert_close(h[0], torch.cat([h0, h1, h2]))


def test_flow_pass_attends_over_all_predecessors():
    from flownas.predictors.nn.flowerformer import FlowPass, Schedule
    torch.manual_seed(0)
    fp = FlowPass(4)
    adj = torch.zeros(1, 3, 3, dtype=torch.bool)
    adj[0, 0, 2] = adj[0, 1, 2] = True          # 0 -> 2 <- 1
    x = torch.randn(1, 3, 4)
    h = fp(x, Schedule(adj.transpose(1, 2), torch.tensor([[0, 0, 1]])))
    h0, h1 = fp.gru(x[0, :1]), fp.gru(x[0, 1:2])
    w = torch.softmax(torch.cat([fp.score(h0), fp.score(h1)]).squeeze(-1), 0)
    torch.testing.assert_close(h[0, 2:], fp.gru(x[0, 2:], w[0] * h0 + w[1] * h1))


def test_compacted_batches_score_the_same():
    from flownas.predictors.nn.batch import GraphBatch
    from flownas.predictors.nn.flowerformer import FlowerFormerEncoder
    from flownas.predictors.nn.heads import GraphRegressor
    from flownas.predictors.nn.train import predict_scores
    rng = np.random.default_rng(0)
    archs = [NB201Space().sample(rng) for _ in range(50)]
    batch = GraphBatch.encode(archs, GraphFeaturizer(NB201Space.ops, prune_ops=("none",)))
    assert batch.compacted().num_nodes <= batch.num_nodes
    torch.manual_seed(0)
    net = GraphRegressor(FlowerFormerEncoder(7, 16, 2, 2))
    torch.testing.assert_close(predict_scores(net, batch, chunk=16, compact=True), predict_scores(net, batch))


def test_a_stacked_ensemble_trains_like_separate_networks():
    """Members trained at once (vmap over stacked weights) end where separately
    trained ones do (LayerNorm: the same arithmetic; BatchNorm: next test)."""
    from flownas.predictors.nn.batch import GraphBatch
    from flownas.predictors.nn.flowerformer import FlowerFormerEncoder
    from flownas.predictors.nn.heads import GraphRegressor
    from flownas.predictors.nn.train import TrainConfig, predict_scores, train_networks
    rng = np.random.default_rng(0)
    archs = [NB201Space().sample(rng) for _ in range(48)]
    batch = GraphBatch.encode(archs, GraphFeaturizer(NB201Space.ops, prune_ops=("none",)))
    y = torch.randn(48)
    cfg = TrainConfig(epochs=4, batch_size=16, loss="mse")
    runs = {}
    for stacked in (False, True):
        nets = []
        for seed in (1, 2):
            torch.manual_seed(seed)
            nets.append(GraphRegressor(FlowerFormerEncoder(7, 16, 1, 2, norm="layer")))
        results = train_networks(nets, batch, y, cfg, stacked=stacked)
        runs[stacked] = ([predict_scores(n, batch) for n in nets], [[h["loss"] for h in r.history] for r in results])
    for a, b in zip(runs[True][0], runs[False][0]):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(runs[True][1], runs[False][1], rtol=1e-4)
    assert not torch.allclose(runs[True][0][0], runs[True][0][1])


def test_a_stacked_ensemble_keeps_batchnorm_statistics_per_member():
    from flownas.predictors.nn.batch import GraphBatch
    from flownas.predictors.nn.flowerformer import FlowerFormerEncoder
    from flownas.predictors.nn.heads import GraphRegressor
    from flownas.predictors.nn.train import TrainConfig, train_networks
    rng = np.random.default_rng(0)
    batch = GraphBatch.encode([NB201Space().sample(rng) for _ in range(32)], GraphFeaturizer(NB201Space.ops))
    nets = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        nets.append(GraphRegressor(FlowerFormerEncoder(7, 8, 1, 2, norm="batch")))
    train_networks(nets, batch, torch.randn(32), TrainConfig(epochs=2, batch_size=16), stacked=True)
    means = [n.encoder.input_norm.bn.running_mean for n in nets]
    assert all(m.abs().sum() > 0 for m in means) and not torch.allclose(means[0], means[1])
    assert all(int(n.encoder.input_norm.bn.num_batches_tracked) == 4 for n in nets)


def test_auto_epochs_follow_the_benchmarked_budget():
    from flownas.registry import PREDICTORS
    from flownas.predictors.neural import auto_epochs
    assert [auto_epochs(n) for n in (10, 78, 156, 781, 1563, 7812)] == [300, 300, 300, 100, 50, 30]
    p = PREDICTORS.create("flowerformer")
    assert p.epochs == "auto" and p.train_config(781).epochs == 100 and p.train_config(78).epochs == 300
    assert PREDICTORS.create("flowerformer", epochs=7).train_config(781).epochs == 7
    with pytest.raises(ValueError, match="epochs must be a whole number or 'auto'"):
        PREDICTORS.create("flowerformer", epochs="many")


@pytest.mark.parametrize("name, params, message", [
    ("flowerformer", {"dim": 30, "heads": 4}, r"dim \(30\) must be divisible by heads \(4\)"),
    ("flowerformer", {"norm": "group"}, "unknown norm 'group'"),
    ("narformer", {"depths": [0]}, "depths must be positive"),
    ("narformer_v2", {"readout": "max"}, "unknown readout 'max'"),
    ("tagates", {"time_steps": 0}, "time_steps must be at least 1"),
    ("dele", {"heads": 5}, r"dim \(64\) must be divisible by heads \(5\)"),   # no experts named yet
    ("blend", {"members": [["flowerformer", {"dim": 30, "heads": 4}]]}, "member 'flowerformer': dim"),
    ("gbt", {"max_iter": 0}, r"max_iter must be at least 1 \(a whole number\)"),
    ("gbt", {"max_features": 1.5}, r"max_features must be a number in \(0, 1\]"),
])
def test_bad_hyper_parameters_fail_at_construction(name, params, message):
    # not at the first fit, which in a search comes after num_init evaluations
    from flownas.registry import PREDICTORS
    with pytest.raises(ValueError, match=message):
        PREDICTORS.create(name, **params)


# -- save / load: which class loads which file (walkthrough B7) ----------------------------------
@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A fitted gcn, mlp, gbt and blend, each saved; name -> (predictor, path, archs)."""
    from flownas.registry import PREDICTORS
    space = NB201Space()
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(12)]
    y = np.linspace(80, 90, len(archs))
    folder = tmp_path_factory.mktemp("saved")
    out = {}
    for name, params in (("gcn", {"epochs": 2, "dim": 8, "layers": 1}), ("mlp", {"epochs": 2, "hidden": 8}),
                         ("gbt", {"max_iter": 5}),
                         ("blend", {"members": [["gcn", {"epochs": 2, "dim": 8, "layers": 1}],
                                                ["gbt", {"max_iter": 5}]]})):
        p = PREDICTORS.create(name, **params).fit(archs, y)
        p.save(folder / f"{name}.pt")
        out[name] = (p, folder / f"{name}.pt", archs)
    return out


@pytest.mark.parametrize("name", ["gcn", "mlp", "gbt", "blend"])
def test_the_base_class_loads_whichever_predictor_was_saved(saved, name):
    from flownas.predictors.base import Predictor, saved_name
    p, path, archs = saved[name]
    assert saved_name(path) == name
    q = Predictor.load(path)            # it returned None
    assert type(q) is type(p)
    np.testing.assert_array_equal(q.predict(archs), p.predict(archs))


def test_the_neural_base_loads_whichever_neural_predictor_was_saved(saved):
    from flownas.predictors.neural import NeuralPredictor
    p, path, archs = saved["mlp"]
    assert type(NeuralPredictor.load(path)) is type(p)


@pytest.mark.parametrize("cls_name, file_name", [("gcn", "mlp"), ("mlp", "gcn"), ("gcn", "gbt"),
                                                  ("gbt", "gcn"), ("blend", "gcn"), ("gcn", "blend")])
def test_a_class_refuses_another_predictors_file_naming_both(saved, cls_name, file_name):
    from flownas.errors import DataError
    from flownas.registry import PREDICTORS
    path = saved[file_name][1]
    with pytest.raises(DataError) as info:   # GCNPredictor.load(an mlp file) returned an MLP
        PREDICTORS.get(cls_name).load(path)
    assert str(info.value) == (f"{path} holds a {file_name!r} predictor, not a {cls_name!r}; "
                               f"Predictor.load(path) loads whichever was saved")


def test_the_saved_name_of_a_pickle_is_read_without_unpickling_it(tmp_path):
    import pickle
    from flownas.predictors.base import saved_name

    class Bomb:
        def __reduce__(self):
            return (pytest.fail, ("unpickled",))
    path = tmp_path / "p.pt"
    path.write_bytes(pickle.dumps({"format": "x", "version": 1, "predictor": "gbt", "object": Bomb()}))
    assert saved_name(path) == "gbt"
    path.write_text("not a pickle")
    assert saved_name(path) is None


def test_the_base_class_refuses_a_file_without_a_predictor_name(tmp_path):
    from flownas.errors import DataError
    from flownas.predictors.base import Predictor
    path = tmp_path / "p.pt"
    path.write_text("{}")
    with pytest.raises(DataError, match="not a saved flownas predictor"):
        Predictor.load(path)
    with pytest.raises(DataError, match="no such file"):
        Predictor.load(tmp_path / "missing.pt")


# -- fit: a validation split of another space (walkthrough B9) --------------------------------------
def test_a_validation_split_of_another_space_names_both_spaces():
    from flownas.errors import ArchitectureError
    from flownas.registry import PREDICTORS, get_space
    rng = np.random.default_rng(0)
    archs = [NB201Space().sample(rng) for _ in range(6)]
    other = [get_space("nb101").sample(rng) for _ in range(3)]
    with pytest.raises(ArchitectureError) as info:
        PREDICTORS.create("gcn", epochs=1).fit(archs, np.arange(6.0), validation=(other, [90.0] * 3))
    assert str(info.value) == ("the training architectures are of space 'nb201'; "
                               "the validation split has architectures of ['nb101']")
