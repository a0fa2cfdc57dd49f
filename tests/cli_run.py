"""Calling the command line in-process, for the CLI tests."""
from flownas.cli import main


def run(capsys, *argv):
    """``flownas ARGV``: (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(capsys, *argv) -> str:
    """``flownas ARGV`` fails with exit 1 and one ``flownas: error: ...`` line, which it returns."""
    code, out, err = run(capsys, *argv)
    assert code == 1 and err.startswith("flownas: error: ") and err.count("\n") == 1, (code, out, err)
    return err
