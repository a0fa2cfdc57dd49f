import gzip
import hashlib
import http.server
import threading

import pytest

from flownas.cli import main
from flownas.data import fetch
from flownas.errors import DataError


@pytest.fixture
def server(tmp_path):
    """A local HTTP server on 127.0.0.1 serving tmp_path/www."""
    www = tmp_path / "www"
    www.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(www), **k)

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield www, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_fetch_verifies_and_writes_atomically(server, tmp_path):
    www, url = server
    payload = gzip.compress(b'{"a": 1}\n')
    (www / "t.jsonl.gz").write_bytes(payload)
    sha = hashlib.sha256(payload).hexdigest()
    root = tmp_path / "data"
    path = fetch("mine/t.jsonl.gz", f"{url}/t.jsonl.gz", sha, root=root)
    assert path.read_bytes() == payload
    assert [p.name for p in path.parent.iterdir()] == ["t.jsonl.gz"]   # no temp file left


def test_checksum_mismatch_writes_nothing(server, tmp_path):
    www, url = server
    (www / "t.gz").write_bytes(b"tampered")
    root = tmp_path / "data"
    with pytest.raises(DataError, match="sha256 mismatch"):
        fetch("mine/t.gz", f"{url}/t.gz", "0" * 64, root=root)
    assert list((root / "mine").iterdir()) == []


def test_pinned_checksum_is_used_for_known_tables(server, tmp_path):
    www, url = server
    (www / "x").write_bytes(b"not the real table")
    with pytest.raises(DataError, match="18170f970f0b"):
        fetch("nasbench201/nb201_all.jsonl.gz", f"{url}/x", root=tmp_path)


def test_unreachable_url_and_escaping_names(server, tmp_path):
    _, url = server
    with pytest.raises(DataError, match="download of .* failed"):
        fetch("a/b", f"{url}/does-not-exist", "0" * 64, root=tmp_path)
    with pytest.raises(DataError, match="leaves the data directory"):
        fetch("../evil", f"{url}/x", "0" * 64, root=tmp_path)


def test_cli_fetch(server, tmp_path, monkeypatch, capsys):
    www, url = server
    (www / "f").write_bytes(b"hello")
    monkeypatch.setenv("FLOWNAS_DATA", str(tmp_path))
    sha = hashlib.sha256(b"hello").hexdigest()
    assert main(["data", "fetch", "extra/f", "--url", f"{url}/f", "--sha256", sha]) == 0
    assert (tmp_path / "extra" / "f").read_bytes() == b"hello"
    assert main(["data", "fetch", "extra/g", "--url", f"{url}/f", "--sha256", "1" * 64]) == 1
    assert "mismatch" in capsys.readouterr().err
