"""Bad input to the commands that compute, write or fetch something: a one-line
``flownas: error: ...`` before any work, and computed results never lost
(findings F2, F7, F16, F24, F25, F26 of the bad-input sweep)."""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import stat
import warnings
from pathlib import Path

import pytest
from conftest import require_data

from flownas.cli import main
from flownas.errors import DataError, FlownasError
from cli_run import one_line_error, run


def usage_error(capsys, *argv) -> str:
    """argparse's refusal: exit 2 and its last line names the problem."""
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    assert exc.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.fixture
def no_compute(monkeypatch):
    """Make every computing entry point fail loudly: a bad output path must be refused first."""
    import flownas.evaluators.predicted as predicted
    import flownas.predictors_cli as predictors_cli
    import flownas.search.bench as bench

    def boom(*a, **k):
        raise AssertionError("computed before the output path was checked")
    monkeypatch.setattr(predictors_cli, "run", boom)
    monkeypatch.setattr(predicted, "fit_latency_predictor", boom)
    monkeypatch.setattr(bench, "bench_search", boom)


BENCH_P = ("bench", "predictors", "--space", "nb201", "--predictor", "gbt", "--protocol", "A",
           "--train-size", "50")


# -- F2: an output path that cannot be written is refused before the work ---------------
@pytest.mark.parametrize("argv, flag", [
    (BENCH_P + ("--seeds", "2", "--json"), "--json"),
    (("bench", "search", "--space", "nb201", "--strategy", "random", "--budget", "10", "--seeds", "2", "--json"),
     "--json"),
    (("fit-latency", "--table", "fbnet", "--device", "pixel3", "--train-size", "50", "--epochs", "1", "--out"),
     "--out"),
])
def test_unwritable_output_is_refused_before_computing(argv, flag, tmp_path, capsys, no_compute):
    adir = tmp_path / "adir"
    adir.mkdir()
    afile = tmp_path / "afile"
    afile.write_text("x")
    err = one_line_error(capsys, *argv, adir)
    assert f"cannot write {flag} {adir}: it is a directory" in err
    err = one_line_error(capsys, *argv, afile / "out.json")
    assert f"{afile} is not a directory" in err and afile.read_text() == "x"
    err = one_line_error(capsys, *argv, "/proc/flownas-nowhere/out.json")
    assert f"cannot write {flag} /proc/flownas-nowhere/out.json" in err


def test_check_output_creates_nothing_and_accepts_a_new_folder(tmp_path):
    from flownas.data import check_output
    target = tmp_path / "new" / "deeper" / "r.json"
    assert check_output(target, "--json") == target
    assert list(tmp_path.iterdir()) == []      # the folder is made when the result is written


def test_a_write_that_fails_after_the_check_keeps_the_result(tmp_path):
    from flownas.data import save_output
    target = tmp_path / "gone" / "r.json"
    (tmp_path / "gone").write_text("a file where the folder should be")   # appeared while computing
    with pytest.raises(FlownasError, match=r"cannot write --json .*; the result is saved in (\S+) instead") as exc:
        save_output(target, "--json", lambda p: p.write_text('{"tau": 0.5}'))
    rescue = Path(str(exc.value).rsplit(" saved in ", 1)[1].split(" instead")[0])
    try:
        assert json.loads(rescue.read_text()) == {"tau": 0.5}
    finally:
        rescue.unlink()


def test_bench_predictors_still_writes_a_good_path(tmp_path, capsys, monkeypatch):
    import flownas.predictors_cli as predictors_cli
    monkeypatch.setattr(predictors_cli, "run", lambda *a, **k: {"kendall_tau": 0.5})
    out = tmp_path / "new" / "r.json"
    code, printed, _ = run(capsys, *BENCH_P, "--seeds", "1", "--json", out)
    assert code == 0 and json.loads(out.read_text()) == {"kendall_tau": 0.5} and f"wrote {out}" in printed


# -- F24: --seeds and --task ---------------------------------------------------------------
@pytest.mark.parametrize("seeds, message", [
    ("-1", "a count must be >= 1, got -1"),
    ("0", "a count must be >= 1, got 0"),
    ("1,,2", "an empty item"),
    (",1", "an empty item"),
    ("1,1", "seed 1 appears more than once"),
    ("3,0,3", "seed 3 appears more than once"),
])
def test_bad_seeds_are_refused(seeds, message, capsys):
    assert message in usage_error(capsys, *BENCH_P, f"--seeds={seeds}")


def test_seed_lists_that_stay_valid():
    from flownas.predictors_cli import parse_seeds
    assert parse_seeds("3,") == [3]          # BENCHMARKS.md names one seed this way
    assert parse_seeds(" 2, 0 ") == [2, 0]
    assert parse_seeds("2") == [0, 1]


def test_task_outside_transnas_is_refused(capsys, no_compute):
    err = one_line_error(capsys, *BENCH_P, "--seeds", "1", "--task", "segmentsemantic")
    assert "--task segmentsemantic applies to --space transnas only" in err


def test_task_defaults_to_class_scene_on_transnas(capsys, monkeypatch):
    import flownas.predictors_cli as predictors_cli
    seen = {}
    monkeypatch.setattr(predictors_cli, "run", lambda *a, **k: seen.setdefault("args", a) and {})
    assert main(["bench", "predictors", "--space", "transnas", "--predictor", "gbt", "--train-size", "50",
                 "--seeds", "1"]) == 0
    assert seen["args"][-1] == "class_scene"


# -- F25: graph --png says the file it wrote ------------------------------------------------
def test_graph_png_reports_the_file_it_wrote(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    code, out, _ = run(capsys, "graph", "torch.nn:ReLU", "--png", tmp_path / "pic")
    assert code == 0 and out.startswith(f"wrote {tmp_path / 'pic.png'} (")
    assert (tmp_path / "pic.png").stat().st_size > 0 and not (tmp_path / "pic").exists()
    code, out, _ = run(capsys, "graph", "torch.nn:ReLU", "--png", tmp_path / "named.png")
    assert code == 0 and out.startswith(f"wrote {tmp_path / 'named.png'} (")


def test_graph_png_into_a_directory_is_an_error(tmp_path, capsys):
    err = one_line_error(capsys, "graph", "torch.nn:ReLU", "--png", tmp_path)
    assert f"--png {tmp_path} is a directory" in err
    assert list(tmp_path.iterdir()) == [] and not Path(f"{tmp_path}.png").exists()


# -- F16, F26: data fetch --------------------------------------------------------------------
def test_fetch_url_without_scheme_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FLOWNAS_DATA", str(tmp_path))
    err = one_line_error(capsys, "data", "fetch", "nasbench201/nb201_all.jsonl.gz", "--url", "notaurl")
    assert "'notaurl' is not a URL (unknown URL type)" in err
    assert list(tmp_path.iterdir()) == []


def _source(tmp_path, payload=b"hello\n"):
    src = tmp_path / "src.txt"
    src.write_bytes(payload)
    return src, hashlib.sha256(payload).hexdigest()


def test_fetched_table_is_readable_by_others(tmp_path, monkeypatch, capsys):
    src, sha = _source(tmp_path)
    monkeypatch.setenv("FLOWNAS_DATA", str(tmp_path / "data"))
    old = os.umask(0o022)
    try:
        code, _, _ = run(capsys, "data", "fetch", "extra/t.txt", "--url", src.as_uri(), "--sha256", sha)
    finally:
        os.umask(old)
    assert code == 0
    assert stat.S_IMODE((tmp_path / "data" / "extra" / "t.txt").stat().st_mode) == 0o644


@pytest.mark.parametrize("bad", ["xyz", "0" * 63, "g" * 64, "0" * 65])
def test_fetch_sha256_must_be_64_hex_digits(bad, tmp_path, monkeypatch, capsys):
    src, _ = _source(tmp_path)
    monkeypatch.setenv("FLOWNAS_DATA", str(tmp_path / "data"))
    err = one_line_error(capsys, "data", "fetch", "extra/t.txt", "--url", src.as_uri(), "--sha256", bad)
    assert "is not a sha256 (64 hexadecimal digits)" in err and not (tmp_path / "data").exists()


def test_fetch_creates_a_missing_data_folder(tmp_path, monkeypatch, capsys):
    src, sha = _source(tmp_path)
    monkeypatch.setenv("FLOWNAS_DATA", str(tmp_path / "new" / "data"))
    code, out, _ = run(capsys, "data", "fetch", "extra/t.txt", "--url", src.as_uri(), "--sha256", sha.upper())
    assert code == 0 and (tmp_path / "new" / "data" / "extra" / "t.txt").read_bytes() == b"hello\n"


def test_fetch_names_what_is_wrong_with_flownas_data(tmp_path, monkeypatch, capsys):
    src, sha = _source(tmp_path)
    monkeypatch.setenv("FLOWNAS_DATA", str(src))
    err = one_line_error(capsys, "data", "fetch", "extra/t.txt", "--url", src.as_uri(), "--sha256", sha)
    assert f"FLOWNAS_DATA={src} is not a directory" in err
    monkeypatch.delenv("FLOWNAS_DATA")
    err = one_line_error(capsys, "data", "fetch", "extra/t.txt", "--url", src.as_uri(), "--sha256", sha)
    assert "FLOWNAS_DATA is not set" in err


# -- F7: a table that is not the pinned one --------------------------------------------------
def _nb201_subset(root: Path, rows: int) -> Path:
    """The first ``rows`` records of the real NB201 table (or fake ones without it)."""
    path = root / "nasbench201" / "nb201_all.jsonl.gz"
    path.parent.mkdir(parents=True)
    real = Path(os.environ.get("FLOWNAS_DATA", "/nonexistent")) / "nasbench201" / "nb201_all.jsonl.gz"
    if real.is_file():
        with gzip.open(real, "rt") as fh:
            lines = [next(fh) for _ in range(rows)]
    else:
        lines = [json.dumps({"arch": f"a{i}"}) + "\n" for i in range(rows)]
    with gzip.open(path, "wt") as fh:
        fh.writelines(lines)
    return path


def test_a_table_with_the_wrong_record_count_warns_at_load(tmp_path):
    from flownas.benchmarks.base import TableWarning, read_jsonl_gz
    path = _nb201_subset(tmp_path, 300)
    with pytest.warns(TableWarning, match=r"nasbench201/nb201_all.jsonl.gz .* holds 300 records, "
                                          r"the pinned table 15,625"):
        assert len(list(read_jsonl_gz(path))) == 300
    empty = tmp_path / "transnasbench101" / "tnb101_zc_subset.jsonl.gz"
    empty.parent.mkdir()
    with gzip.open(empty, "wt"):
        pass
    with pytest.warns(TableWarning, match="holds 0 records, the pinned table 9,926"):
        assert list(read_jsonl_gz(empty)) == []


def test_the_nb201_loader_warns_on_a_subset(tmp_path, monkeypatch):
    from flownas.benchmarks.base import TableWarning
    from flownas.benchmarks.nb201 import NB201Table
    require_data("nasbench201/nb201_all.jsonl.gz")
    _nb201_subset(tmp_path, 300)
    monkeypatch.setenv("FLOWNAS_DATA", str(tmp_path))
    with pytest.warns(TableWarning, match="holds 300 records"):
        assert len(NB201Table()) == 300


def test_unpinned_tables_and_the_real_ones_do_not_warn(tmp_path):
    from flownas.benchmarks.base import RECORDS, read_jsonl_gz
    other = tmp_path / "mine" / "t.jsonl.gz"
    other.parent.mkdir()
    with gzip.open(other, "wt") as fh:
        fh.write('{"a": 1}\n')
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert list(read_jsonl_gz(other)) == [{"a": 1}]
    assert RECORDS["nasbench201/nb201_all.jsonl.gz"] == 15_625


def test_data_status_verifies_the_pinned_sha256(tmp_path):
    from flownas.data import status, status_lines
    _nb201_subset(tmp_path, 30)
    rows = {r["table"]: r for r in status(tmp_path, verify=True)}
    assert rows["nasbench201/nb201_all.jsonl.gz"]["state"] == "DIFFERS"
    assert rows["nasbench101/nb101_subset20k.jsonl.gz"]["state"] == "MISSING"
    line = next(l for l in status_lines(tmp_path) if "nb201_all" in l)
    assert line.startswith("DIFFERS nasbench201/nb201_all.jsonl.gz") and "differs from the pinned sha256" in line
    unverified = {r["table"]: r for r in status(tmp_path)}
    assert unverified["nasbench201/nb201_all.jsonl.gz"]["state"] == "present"


def test_data_status_says_ok_for_the_pinned_table(tmp_path, monkeypatch):
    import flownas.data as data
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "mine.bin").write_bytes(b"pinned")
    monkeypatch.setattr(data, "TABLES", {"x/mine.bin": hashlib.sha256(b"pinned").hexdigest()})
    assert [r["state"] for r in data.status(tmp_path, verify=True)] == ["ok"]
    assert data.status_lines(tmp_path)[0].startswith("ok      x/mine.bin ")


def test_fetch_api_error_is_a_data_error(tmp_path):
    from flownas.data import fetch
    with pytest.raises(DataError, match="not a URL"):
        fetch("a/b", "notaurl", "0" * 64, root=tmp_path)


def test_data_list_and_a_command_on_a_subset_say_so_in_one_line(tmp_path, monkeypatch, capsys):
    require_data("nasbench201/nb201_all.jsonl.gz")
    _nb201_subset(tmp_path, 300)
    monkeypatch.setenv("FLOWNAS_DATA", str(tmp_path))
    code, out, _ = run(capsys, "data", "list")
    assert code == 0
    assert [l for l in out.splitlines() if "nb201_all" in l][0].startswith("DIFFERS nasbench201/nb201_all.jsonl.gz")
    code, out, err = run(capsys, "sample", "nb201", "-n", "1", "--seed", "0")
    lookup = json.loads(out.splitlines()[0])
    code, out, err = run(capsys, "lookup", "nb201", json.dumps(lookup))
    warned = [l for l in err.splitlines() if "holds 300 records" in l]
    assert warned and warned[0].startswith("flownas: warning: benchmark table nasbench201/nb201_all.jsonl.gz")


# -- argparse's own refusals are one line too (README: "bad input gives a one-line flownas: error") --
@pytest.mark.parametrize("argv, line", [
    (["search", "--budget", "abc"], "flownas: error: argument --budget: expected an integer, got 'abc' "
                                    "(see flownas search --help)"),
    (["serch"], "flownas: error: argument COMMAND: unknown 'serch'; did you mean 'search'? (see flownas --help)"),
    (["data", "xyz"], "flownas: error: argument ACTION: unknown 'xyz'; known: list, fetch (see flownas data --help)"),
    ([], "flownas: error: the following arguments are required: COMMAND (see flownas --help)"),
    (["search", "--budgt=5"], "flownas: error: unrecognized arguments: --budgt=5; did you mean --budget? "
                                 "(see flownas search --help)"),
    (["sample", "nb201", "extra"], "flownas: error: unrecognized arguments: extra (see flownas sample --help)"),
])
def test_usage_errors_are_one_line_naming_the_help(capsys, argv, line):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    assert exc.value.code == 2 and err == line + "\n" and out == ""
