"""End to end: a search whose candidates are really trained (issue 5's
acceptance test): 5 NB201 candidates, each a small network trained for one
epoch on the shared cifar10-mini images, through ``run_search`` as
``flownas search`` runs it."""
import numpy as np

from conftest import require_data
from flownas.search.api import run_search
from flownas.search.config import SearchConfig

CHANCE = 100 / 10   # percent, ten classes


def test_five_trained_candidates_learn_more_than_chance(tmp_path):
    require_data("cifar10-mini/cifar10_mini.npz")
    config = SearchConfig.from_dict({
        "space": "nb201", "strategy": "evolution", "budget": 5, "seed": 0, "executor": "inline",
        "evaluator": {"name": "training", "dataset": "cifar10-mini", "epochs": 1, "seed": 0, "num_threads": 1,
                      "model_options": {"C": 8, "N": 1}},
        "out": str(tmp_path / "run")})
    result, run, files = run_search(config)
    records = result.records
    assert [r.state for r in records] == ["complete"] * 5
    assert len({r.arch.key for r in records}) == 5
    acc = np.array([r.value for r in records])
    assert np.all(acc > CHANCE + 5), acc
    assert all(r.metrics["epochs"] == 1 and r.metrics["params"] > 0 and r.cost_s > 0 for r in records)
    # what the run directory holds is the same search, recorded
    ledger = run.open_ledger()
    try:
        assert sorted(r.value for r in ledger.records()) == sorted(acc)
    finally:
        ledger.close()
