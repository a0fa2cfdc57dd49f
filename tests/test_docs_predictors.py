"""docs/predictors.md, executed: its ``python`` blocks run as written, in order,
in one namespace (as the page says), from a scratch directory. A block whose
first line is ``# sketch`` is not run; the page marks none at present."""
from pathlib import Path

import numpy as np
import pytest

from doc_blocks import fenced_blocks
from flownas.registry import PREDICTORS

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "predictors.md"


def _python_blocks(markdown: str) -> list[str]:
    return [code for lang, code in fenced_blocks(markdown) if lang == "python"]


@pytest.fixture
def scratch_predictors(monkeypatch, tmp_path):
    """PREDICTORS as it is, restored afterwards (the page registers "mynet");
    the working directory is a scratch one (the page saves p.pt); torch on one
    thread, as searches run it (two threads on two busy cores train many times slower)."""
    import torch
    PREDICTORS.names()      # discover the built-in ones first
    monkeypatch.setattr(PREDICTORS, "_entries", dict(PREDICTORS._entries))
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield tmp_path
    torch.set_num_threads(threads)


def test_the_predictors_page_runs(scratch_predictors):
    blocks = _python_blocks(DOC.read_text())
    runnable = [b for b in blocks if not b.lstrip().startswith("# sketch")]
    assert len(runnable) == len(blocks) == 3
    namespace: dict = {"__name__": "predictors_doc"}
    for code in runnable:
        exec(compile(code, str(DOC.relative_to(ROOT)), "exec"), namespace)

    # the first block: fit, predict with a spread, an exact save/load
    mean, std = namespace["mean"], namespace["std"]
    assert mean.shape == std.shape == (len(namespace["candidates"]),) and (std >= 0).all()
    assert (scratch_predictors / "p.pt").is_file()
    # the second: a working predictor around the page's own encoder
    mine = namespace["mine"]
    assert isinstance(mine, namespace["MyNet"]) and "mynet" in PREDICTORS.names()
    assert np.isfinite(mine.predict(namespace["candidates"][:10])).all()
    # the third: FlowerFormer's encoder under other heads
    archs = namespace["archs"]
    assert tuple(namespace["out"].shape) == (len(archs), 12)
    assert namespace["states"].shape[0] == len(archs) and namespace["states"].shape[-1] == 64
