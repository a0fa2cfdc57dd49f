import numpy as np
import pytest
import torch

from flownas.errors import ArchitectureError, NotInSpaceError, NotInTableError
from flownas.spaces.nb201 import NB201Space

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def test_string_round_trip_and_node_form():
    s = NB201Space()
    a = s.from_string(BEST)
    assert a.num_nodes == 8 and a.ops[0] == "input" and a.ops[-1] == "output"
    assert s.to_string(a) == BEST
    assert s.to_string(a.relabel([7, 6, 5, 4, 3, 2, 1, 0])) == BEST


@pytest.mark.parametrize("text", ["", "|nor_conv_3x3~0|", "|x~0|+|none~0|none~1|+|none~0|none~1|none~2|",
                                  "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|"])
def test_bad_strings(text):
    with pytest.raises(ArchitectureError):
        NB201Space().from_string(text)


def test_wrong_structure_is_named():
    s = NB201Space()
    a = s.from_string(BEST)
    edges = [e for e in a.edges if e != (1, 3)] + [(2, 3)]
    from flownas.arch import Architecture
    b = Architecture.from_edges(a.ops, edges, "nb201")
    with pytest.raises(NotInSpaceError, match="nb201.*not the NB201 cell"):
        s.validate(b)


def test_enumeration_is_complete():
    archs = list(NB201Space().enumerate())
    assert len(archs) == 15625
    assert len({NB201Space().to_string(a) for a in archs}) == 15625


@pytest.mark.parametrize("classes", [10, 100, 120])
def test_network_classes_and_params(classes):
    s = NB201Space()
    m = s.to_model(s.from_string(BEST), num_classes=classes)
    with torch.no_grad():
        assert m(torch.randn(2, 3, 32, 32)).shape == (2, classes)


def test_network_params_match_the_table(nb201_table):
    s = NB201Space()
    rng = np.random.default_rng(0)
    for _ in range(5):
        a = s.sample(rng)
        params = sum(p.numel() for p in s.to_model(a).parameters()) / 1e6
        assert params == pytest.approx(nb201_table.row(a)["params_m_c10"], abs=1e-6)


def test_table_lookup(nb201_table):
    s = NB201Space()
    rec = nb201_table.query(s.from_string(BEST).relabel([0, 2, 1, 3, 4, 5, 6, 7]))
    assert rec["c10_valid_val_acc_200"] == pytest.approx(91.6067, abs=1e-3)
    assert rec["c10_test_acc_200"] > 94
    assert set(rec["latency_ms"]) >= {"pixel3", "gold_6226", "1080ti_1"}
    assert len(nb201_table) == 15625
    assert max(r["c10_test_acc_200"] for r in nb201_table._rows.values()) == pytest.approx(94.3733, abs=1e-3)


def test_table_rejects_foreign_archs(nb201_table):
    from flownas.arch import Architecture
    with pytest.raises(NotInTableError, match="nb201"):
        nb201_table.query(Architecture(["input", "output"], [[0, 1], [0, 0]], space="nb101"))
