"""DELE beyond the shared predictor conformance suite: where its signals come
from, what each fine-tuning mode trains, and that the experts carry signal."""
import copy

import numpy as np
import pytest
import torch

from flownas.arch import Architecture
from flownas.errors import ConfigError
from flownas.predictors.dele import DELEPredictor
from flownas.predictors.metrics import kendall_tau
from flownas.predictors.nn.batch import GraphBatch
from flownas.registry import PREDICTORS

QUICK = {**DELEPredictor.quick_params, "epochs": 10, "pretrain_epochs": 3}


@pytest.fixture(scope="module")
def data(nb201_table):
    archs = nb201_table.archs()
    perm = np.random.default_rng(0).permutation(len(archs))
    pool = [archs[i] for i in perm[:400]]
    y = np.array([nb201_table.row(a)["c10_valid_val_acc_200"] for a in pool])
    noise = np.random.default_rng(1).normal(0, 0.5, len(pool))
    signals = {"good": list(y + noise), "random": list(np.random.default_rng(2).normal(size=len(pool)))}
    signals["good"][5] = None                                 # a missing value is allowed
    return pool, y, signals


@pytest.fixture(scope="module")
def pretrained(data):
    pool, _, signals = data
    return DELEPredictor(seed=0, **QUICK).pretrain(pool, signals)


def test_registered():
    assert PREDICTORS.get("dele") is DELEPredictor


def test_experts_learn_their_signals_and_help_with_few_labels(data, pretrained):
    pool, y, _ = data
    assert pretrained.signals == ("good", "random")
    p = copy.deepcopy(pretrained).fit(pool[:20], y[:20])
    assert kendall_tau(y[20:], p.predict(pool[20:])) > 0.6
    w = p.expert_weights(pool[:5])
    assert w.shape == (5, 2) and np.allclose(w.sum(1), 1)


def test_pretraining_reduces_graphs_like_the_other_neural_predictors(pretrained):
    # "auto" is the space's zero and identity ops, as in NeuralPredictor.fit
    assert pretrained.pretrain_featurizer_.prune_ops == ("none",)
    assert pretrained.pretrain_featurizer_.contract_ops == ("skip_connect",)


def test_ensemble_members_differ_even_on_one_minibatch(data, pretrained):
    # every member starts from the same pre-trained state: its own gate is what its seed changes
    pool, y, _ = data
    p = copy.deepcopy(pretrained)
    p.ensemble = 2
    p.fit(pool[:20], y[:20])                                  # 20 < batch size: one full batch per epoch
    mean, std = p.predict(pool[20:100], return_std=True)
    assert std.mean() > 0.01 * mean.std()


def test_fit_reuses_the_pretraining(data, pretrained):
    pool, y, _ = data
    p = copy.deepcopy(pretrained)
    before = p.pretrain_result_
    p.fit(pool[:30], y[:30])
    assert p.pretrain_result_ is before


@pytest.mark.parametrize("part", ["gate", "heads", "all"])
def test_finetune_modes_train_what_they_say(data, pretrained, part):
    pool, y, _ = data
    p = copy.deepcopy(pretrained)
    p.finetune = part
    p.fit(pool[:30], y[:30])
    state, start = p.networks_[0].state_dict(), p.pretrained_state_
    changed = {k for k in state if not torch.equal(state[k], start[k])}
    assert any(k.startswith("gate.") for k in changed)
    assert any(k.startswith("experts.") for k in changed) == (part != "gate")
    assert any(k.startswith("encoder.") for k in changed) == (part == "all")


def test_uniform_gate_weighs_every_arch_alike(data):
    pool, y, signals = data
    p = DELEPredictor(seed=0, gate="uniform", **QUICK).fit(pool[:30], y[:30], pool=(pool, signals))
    w = p.expert_weights(pool[:4])
    assert np.allclose(w, w[0])


def test_uniform_gate_on_separate_encoders_never_runs_the_gate_encoder(data):
    pool, y, signals = data
    p = DELEPredictor(seed=0, gate="uniform", encoders="separate", **QUICK).fit(pool[:30], y[:30], pool=(pool, signals))
    w = p.expert_weights(pool[:4])
    assert w.shape == (4, 2) and np.allclose(w, w[0]) and np.allclose(w.sum(1), 1)
    net, calls = p.networks_[0], []
    net.encoder.embed = lambda batch: calls.append(batch)                  # the gate's own encoder: never needed
    net(GraphBatch.encode(pool[:8], p.featurizer_))
    p.expert_weights(pool[:4])
    assert not calls


def test_low_fidelity_of_the_training_archs_is_a_pool(data):
    pool, y, signals = data
    p = DELEPredictor(seed=0, **QUICK).fit(pool[:40], y[:40], low_fidelity={k: v[:40] for k, v in signals.items()})
    assert p.pretrain_size_ == 40 and p.signals == ("good", "random")


def test_table_signals_by_default(data):
    pool, y, _ = data
    p = DELEPredictor(seed=0, **{**QUICK, "pool_size": 100}).fit(pool[:30], y[:30])
    # every low-fidelity column of the table: the other datasets' 12-epoch runs too
    assert p.signals == ("acc_12", "acc_12@ImageNet16-120", "acc_12@cifar100", "naswot", "params", "test_acc_12",
                         "test_acc_12@ImageNet16-120", "test_acc_12@cifar100") and p.pretrain_size_ == 100


def test_bad_signals_are_explained(data):
    pool, y, signals = data
    with pytest.raises(ValueError, match="expected 400 values"):
        DELEPredictor(**QUICK).pretrain(pool, {"s": signals["good"][:-1]})
    with pytest.raises(ValueError, match="fewer than 2 known values"):
        DELEPredictor(**QUICK).pretrain(pool, {"s": [None] * len(pool)})
    with pytest.raises(ValueError, match="need the signals acc_12"):
        DELEPredictor(signals=["acc_12"], **QUICK).pretrain(pool, signals)
    with pytest.raises(ValueError, match="DELE needs low-fidelity signals"):
        DELEPredictor(signal_source=None, **QUICK).fit(pool[:10], y[:10])
    cells = [Architecture.from_edges(("input", op, "output"), [(0, 1), (1, 2)], "custom")
             for op in ("a", "b", "c")]
    with pytest.raises(ConfigError, match="no low-fidelity signals for space 'custom'.*pass fit"):
        DELEPredictor(**QUICK).fit(cells, [1.0, 2.0, 3.0])   # one line from the CLI, not a traceback
    with pytest.raises(ValueError, match="finetune must be one of"):
        DELEPredictor(finetune="encoder")


def test_pretraining_is_reused_across_fine_tuning_seeds(data):
    pool, _, signals = data
    first = DELEPredictor(seed=0, **QUICK).pretrain(pool, signals)     # kept: a few of the latest pre-trainings
    again = DELEPredictor(seed=7, **QUICK).pretrain(pool, signals)          # another fine-tuning seed
    assert again.pretrain_result_ is first.pretrain_result_
    other = DELEPredictor(seed=0, pretrain_seed=1, **QUICK).pretrain(pool, signals)
    assert other.pretrain_result_ is not first.pretrain_result_
    assert not all(torch.equal(v, other.pretrained_state_[k]) for k, v in first.pretrained_state_.items())


def test_pretraining_is_cached_on_disk_for_later_processes(data, tmp_path, monkeypatch):
    from flownas import cache
    from flownas.predictors import dele
    from flownas.predictors.nn import train
    pool, y, signals = data
    monkeypatch.setenv("FLOWNAS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(dele, "_PRETRAINED", type(dele._PRETRAINED)())   # as in a new process
    params = {**QUICK, "pretrain_seed": 11}
    first = DELEPredictor(seed=0, **params).pretrain(pool, signals)
    (entry,) = (tmp_path / "cache" / "dele-pretrained").glob("*.pt")

    def no_training(*args, **kwargs):
        raise AssertionError("pre-trained again despite the cache")
    monkeypatch.setattr(dele, "_PRETRAINED", type(dele._PRETRAINED)())   # another new process
    monkeypatch.setattr(train, "train_network", no_training)
    again = DELEPredictor(seed=0, **params).pretrain(pool, signals)
    assert all(torch.equal(v, again.pretrained_state_[k]) for k, v in first.pretrained_state_.items())
    assert again.pretrain_featurizer_.config() == first.pretrain_featurizer_.config()
    assert again.pretrain_result_ == first.pretrain_result_
    fit = lambda p: p.fit(pool[:60], y[:60]).predict(pool[60:])   # noqa: E731
    np.testing.assert_array_equal(fit(again), fit(DELEPredictor(seed=0, **params).pretrain(pool, signals)))

    # another version of the code is a miss; a damaged entry is recomputed, with a warning
    monkeypatch.setattr(dele, "_PRETRAINED", type(dele._PRETRAINED)())
    monkeypatch.setattr(cache, "code_fingerprint", lambda *packages: "changed")
    with pytest.raises(AssertionError, match="pre-trained again"):
        DELEPredictor(seed=0, **params).pretrain(pool, signals)
    monkeypatch.undo()
    monkeypatch.setenv("FLOWNAS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(dele, "_PRETRAINED", type(dele._PRETRAINED)())
    entry.write_bytes(b"truncated")
    with pytest.warns(RuntimeWarning, match="unreadable cache entry"):
        redone = DELEPredictor(seed=0, **params).pretrain(pool, signals)
    assert all(torch.equal(v, redone.pretrained_state_[k]) for k, v in first.pretrained_state_.items())
    assert cache.load("dele-pretrained", entry.stem) is not None   # rewritten whole


def test_the_cache_can_be_turned_off_and_an_unwritable_one_only_warns(data, tmp_path, monkeypatch):
    from flownas import cache
    from flownas.predictors import dele
    pool, _, signals = data
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("FLOWNAS_CACHE", "off")
    assert cache.cache_dir() is None and cache.store("k", "x", {"a": 1}) is None
    monkeypatch.setenv("FLOWNAS_CACHE", "")
    assert cache.cache_dir() == tmp_path / ".cache" / "flownas"
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("FLOWNAS_CACHE", str(tmp_path / "file"))
    monkeypatch.setattr(dele, "_PRETRAINED", type(dele._PRETRAINED)())
    with pytest.warns(RuntimeWarning, match="could not write the cache entry"):
        DELEPredictor(seed=0, **{**QUICK, "pretrain_seed": 12}).pretrain(pool, signals)


def test_the_dele_strategy_ranks_with_zero_cost_experts_by_default(nb201_table):
    from flownas.registry import SPACES, STRATEGIES
    from flownas.toys import ToySpace
    cls = STRATEGIES.get("dele")
    space = SPACES.get("nb201")()
    quick = {**QUICK, "pool_size": 300}
    strategy = cls(space, seed=3, ensemble=2, num_init=6, refit_every=4, num_mutations=20, num_random=10,
                   predictor=quick)
    assert strategy.surrogate._params["signals"] == ["params", "naswot"]      # no training behind them
    assert cls(space, predictor={"signals": ["acc_12"]}).surrogate._params["signals"] == ["acc_12"]
    seen = set()
    for _ in range(12):
        (arch,) = strategy.ask(1)
        assert arch.key not in seen
        seen.add(arch.key)
        strategy.tell(arch, nb201_table.row(arch)["c10_valid_val_acc_200"], {})
    assert strategy.surrogate.num_fits >= 2 and type(strategy.surrogate.members[0]).__name__ == "DELEPredictor"
    assert strategy.fresh().get_params() == strategy.get_params()
    with pytest.raises(ConfigError, match="dele predictor, not 'gcn'"):
        cls(space, predictor="gcn")
    with pytest.raises(ConfigError, match="no low-fidelity table signals for space 'toy'"):
        cls(ToySpace())
    with pytest.raises(ConfigError, match="predictor.signals: unknown nb201 signals acc_13"):
        cls(space, predictor={"signals": ["acc_13"]})   # at construction, not at the first refit


def test_separate_encoders_as_in_the_official_code(data, tmp_path):
    # one encoder per expert, pre-trained on its signal alone; the gate's own encoder is not pre-trained
    pool, y, signals = data
    p = DELEPredictor(seed=0, encoders="separate", **QUICK).pretrain(pool, signals)
    start = p.pretrained_state_
    assert {k.split(".")[0] for k in start} >= {"encoder", "expert_encoders", "expert_heads", "gate"}
    assert all(k.split(".")[0] != "experts" for k in start)
    p.fit(pool[:20], y[:20])
    assert kendall_tau(y[20:], p.predict(pool[20:])) > 0.6
    state = p.networks_[0].state_dict()
    for k in start:   # each member draws its own gate encoder (the experts' encoders: the heads-only fit below)
        if k.startswith("encoder.") and k.endswith("weight"):
            assert not torch.equal(state[k], start[k])
    assert not torch.equal(start["expert_encoders.0.input.weight"], start["expert_encoders.1.input.weight"])
    p.save(tmp_path / "dele")
    again = DELEPredictor.load(tmp_path / "dele")
    assert again.encoders == "separate"
    np.testing.assert_array_equal(again.predict(pool[20:60]), p.predict(pool[20:60]))
    heads = copy.deepcopy(p)
    heads.finetune = "heads"
    heads.fit(pool[:30], y[:30])
    after = heads.networks_[0].state_dict()
    assert all(torch.equal(after[k], start[k]) for k in start if k.startswith("expert_encoders."))
    assert any(not torch.equal(after[k], start[k]) for k in start if k.startswith("encoder."))
    with pytest.raises(ValueError, match="encoders must be one of"):
        DELEPredictor(encoders="per-expert")


@pytest.mark.parametrize("encoders", ["shared", "separate"])
def test_mlp_experts(data, tmp_path, encoders):
    # expert_hidden > 0: each expert is a one-hidden-layer MLP, with its own weights
    pool, y, signals = data
    p = DELEPredictor(seed=0, encoders=encoders, expert_hidden=8, **QUICK).pretrain(pool, signals)
    p.fit(pool[:20], y[:20])
    assert kendall_tau(y[20:], p.predict(pool[20:])) > 0.6
    with torch.no_grad():
        scores = p.networks_[0].expert_scores(GraphBatch.encode(pool[20:60], p.featurizer_))
    assert scores.shape == (40, 2) and torch.isfinite(scores).all()
    assert not torch.allclose(scores[:, 0], scores[:, 1])
    p.save(tmp_path / "dele")
    again = DELEPredictor.load(tmp_path / "dele")
    assert again.expert_hidden == 8
    np.testing.assert_array_equal(again.predict(pool[20:60]), p.predict(pool[20:60]))
    linear = DELEPredictor(seed=0, encoders=encoders, **QUICK).pretrain(pool, signals)
    assert linear.pretrained_state_.keys() != p.pretrained_state_.keys()   # a pre-training of its own
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="expert_hidden must be an integer"):
            DELEPredictor(expert_hidden=bad)


def test_signals_given_as_one_string_are_refused():
    """tuple("acc_12") would have made six experts, one per letter."""
    from flownas.errors import ConfigError
    from flownas.registry import PREDICTORS
    with pytest.raises(ConfigError, match=r"signals is a list of signal names, e.g. \['acc_12'\]"):
        PREDICTORS.create("dele", signals="acc_12")
