import json
import subprocess
import sys

import pytest

from flownas.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_spaces_lists_nb201(capsys):
    code, out, _ = run(capsys, "spaces")
    assert code == 0 and "nb201" in out and "15,625" in out
    nb201 = [line for line in out.splitlines() if line.startswith("nb201 ")][0]
    assert nb201.endswith("5 ops on the 6 edges of a 4-node cell, 5**6 = 15,625 cells.")   # a whole sentence


def test_sample_is_seeded_json_lines(capsys):
    _, a, _ = run(capsys, "sample", "nb201", "-n", "3", "--seed", "4")
    _, b, _ = run(capsys, "sample", "nb201", "-n", "3", "--seed", "4")
    lines = a.strip().splitlines()
    assert a == b and len(lines) == 3
    assert json.loads(lines[0])["space"] == "nb201"


def test_lookup_prints_metrics(capsys, data_root):
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
    code, out, _ = run(capsys, "lookup", "nb201", arch)
    assert code == 0 and json.loads(out)["c10_test_acc_200"] > 94


@pytest.mark.parametrize("argv, message", [
    (["sample", "nb999"], "unknown space 'nb999'"),
    (["sample", "resnet"], "unknown space 'resnet'; one of your own must be registered in this process or "
                           "installed as a flownas.spaces plug-in"),   # the guide's space, in a fresh shell
    (["lookup", "nb201", "|bogus~0|"], "not an NB201 string"),
    (["lookup", "nb201", "{nope"], "does not parse"),
    (["lookup", "nb101", "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|"],   # another space's string
     "an NB101 cell is JSON {\"matrix\": ..., \"ops\": ...}, got '|nor_conv_3x3~0|"),
    (["lookup", "fbnet", "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|"],
     "not an FBNet string: 22 block names joined by '-'"),
])
def test_bad_input_is_one_line_error(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("flownas: error:") and message in err


@pytest.mark.parametrize("argv, message", [
    (["sample", "nb201", "--seed", "-5"], "argument --seed: a seed is an integer >= 0, got -5"),
    (["sample", "nb201", "--seed", "x"], "argument --seed: expected an integer, got 'x'"),
    (["search", "--seed", "-2"], "argument --seed: a seed is an integer >= 0, got -2"),
    (["bench", "search", "--first-seed", "-1"], "argument --first-seed: a seed is an integer >= 0"),
    (["bench", "predictors", "--space", "nb201", "--predictor", "mlp", "--train-size", "50", "--seeds", "0,-1"],
     "argument --seeds: a seed is an integer >= 0, got -1"),
    (["bench", "predictors", "--space", "nb201", "--predictor", "mlp", "--train-size", "50", "--threads", "0"],
     "argument --threads: must be at least 1, got 0"),
])
def test_bad_flags_are_argparse_errors_naming_the_flag(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err.splitlines()[-1]


def test_help_everywhere():
    for argv in (["--help"], ["sample", "--help"], ["lookup", "--help"], ["data", "fetch", "--help"]):
        proc = subprocess.run([sys.executable, "-m", "flownas", *argv], capture_output=True, text=True)
        assert proc.returncode == 0 and "usage:" in proc.stdout


def test_missing_data_is_explained(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("FLOWNAS_DATA", str(tmp_path))
    from flownas.benchmarks.base import load_benchmark
    load_benchmark.cache_clear()
    try:
        code, _, err = run(capsys, "lookup", "nb201", "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    finally:
        load_benchmark.cache_clear()
    assert code == 1 and "missing benchmark table" in err and "nb201_all.jsonl.gz" in err and "fetch" in err
    monkeypatch.setenv("FLOWNAS_DATA", str(tmp_path / "nowhere"))
    code, out, err = run(capsys, "data", "list")   # what would be there, then how to get it
    assert code == 1 and out.startswith(f"FLOWNAS_DATA={tmp_path / 'nowhere'} (not a directory)\n")
    assert "MISSING nasbench201/nb201_all.jsonl.gz" in out
    assert err.startswith(f"flownas: error: FLOWNAS_DATA={tmp_path / 'nowhere'} is not a directory") and "fetch" in err
    monkeypatch.delenv("FLOWNAS_DATA")
    code, out, err = run(capsys, "data", "list")
    assert code == 1 and out.startswith("FLOWNAS_DATA=(not set)\n") and "FLOWNAS_DATA is not set" in err
