"""docs/search.md, "From Python": its Python blocks run as written, in a scratch directory."""
from __future__ import annotations

from pathlib import Path

from doc_blocks import fenced_blocks

DOC = Path(__file__).resolve().parents[1] / "docs" / "search.md"


def python_blocks_of(section: str) -> list[str]:
    text = DOC.read_text()
    start = text.index(f"## {section}\n")
    end = text.find("\n## ", start + 1)
    return [code for lang, code in fenced_blocks(text[start:end if end > 0 else None]) if lang == "python"]


def test_the_python_section_runs(tmp_path, monkeypatch, capsys, data_root):
    import warnings

    from flownas.registry import EVALUATORS
    monkeypatch.chdir(tmp_path)
    EVALUATORS.names()   # discovered first: the copy below is the whole registry
    monkeypatch.setattr(EVALUATORS, "_entries", dict(EVALUATORS._entries))   # the page registers 'edges'
    blocks = python_blocks_of("From Python")
    assert len(blocks) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the resume says its budget changed, as documented
        for code in blocks:
            exec(compile(code, str(DOC), "exec"), {"__name__": "docs"})
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "nb201: 15,625 members" and out[2] == "30 40" and out[-1] == "20.0"
    assert (tmp_path / "runs" / "py-evolution" / "history.csv").exists()


def test_run_search_takes_a_mapping_or_a_path_and_says_what_it_wants_otherwise(tmp_path, data_root):
    """Python API walkthrough P7: run_search(dict) and run_search(path) were AttributeErrors."""
    import pytest

    from flownas.errors import ConfigError
    from flownas.search.api import check_search, run_search
    config = tmp_path / "evo.yaml"
    config.write_text(f"strategy: evolution\nbudget: 3\nout: {tmp_path / 'evo'}\n")
    assert check_search(config)["config"].budget.evaluations == 3
    assert len(run_search(str(config))[0].records) == 3
    for bad in (None, 3):
        with pytest.raises(ConfigError, match="configuration"):
            run_search(bad)
