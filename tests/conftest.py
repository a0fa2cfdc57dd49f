"""Shared fixtures. Tests that need the benchmark tables use ``data_root``:
they skip when FLOWNAS_DATA is missing, and fail instead under CI
(FLOWNAS_REQUIRE_DATA=1), so a missing table can never pass silently."""
from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
# one torch thread per test process (read when torch is imported): the suite runs
# on two xdist workers, and spin-waiting OpenMP threads make small nets crawl
os.environ.setdefault("OMP_NUM_THREADS", "1")
# no on-disk cache (flownas.cache) unless a test sets one: each run computes what it checks
os.environ["FLOWNAS_CACHE"] = "off"
_SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if not os.environ.get("FLOWNAS_DATA") and _SHARED.is_dir():
    os.environ["FLOWNAS_DATA"] = str(_SHARED)   # as the Makefile does


def require_data(*files: str) -> Path:
    root = os.environ.get("FLOWNAS_DATA")
    missing = [f for f in files if not root or not (Path(root) / f).is_file()]
    if not root or not Path(root).is_dir() or missing:
        msg = f"benchmark data missing (FLOWNAS_DATA={root!r}; {', '.join(missing) or 'directory'})"
        if os.environ.get("FLOWNAS_REQUIRE_DATA"):
            pytest.fail(msg)
        pytest.skip(msg)
    return Path(root)


@pytest.fixture(scope="session")
def data_root() -> Path:
    return require_data()


@pytest.fixture(scope="session")
def nb201_table():
    require_data("nasbench201/nb201_all.jsonl.gz")
    from flownas.benchmarks import load_benchmark
    return load_benchmark("nb201")


def write_tiny_images(path: Path, n_train: int = 96, n_val: int = 48, size: int = 16, classes: int = 10,
                      seed: int = 0) -> Path:
    """A small synthetic dataset in the cifar10-mini .npz layout: each class
    has its own mean colour, so a network can learn it in an epoch or two."""
    import numpy as np
    rng = np.random.default_rng(seed)
    colours = rng.uniform(40, 215, size=(classes, 3))

    def split(n):
        y = np.arange(n) % classes
        rng.shuffle(y)
        x = colours[y][:, None, None, :] + rng.normal(0, 30, size=(n, size, size, 3))
        return np.clip(x, 0, 255).astype(np.uint8), y.astype(np.int64)

    x_train, y_train = split(n_train)
    x_test, y_test = split(n_val)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
             class_names=np.array([f"class{i}" for i in range(classes)]))
    return path


@pytest.fixture(scope="session")
def tiny_images(tmp_path_factory) -> Path:
    """Path of a 96/48-image, 16x16, 10-class synthetic .npz dataset."""
    return write_tiny_images(tmp_path_factory.mktemp("images") / "tiny.npz")


@pytest.fixture(scope="session")
def ofa_table():
    require_data("ofa_mbv3/ofa_latency_help.jsonl.gz")
    from flownas.benchmarks import load_benchmark
    return load_benchmark("ofa")


@pytest.fixture(scope="session")
def fbnet_table():
    require_data("fbnet_hwnasbench/fbnet_latency_help.jsonl.gz")
    from flownas.benchmarks import load_benchmark
    return load_benchmark("fbnet")


@pytest.fixture(scope="session")
def transnas_table():
    require_data("transnasbench101/tnb101_zc_subset.jsonl.gz")
    from flownas.benchmarks import load_benchmark
    return load_benchmark("transnas")


@pytest.fixture(scope="session")
def count_macs():
    """Multiply-accumulates of a network's convolutions and linear layers for one input."""
    import torch
    from torch import nn

    def count(model, input_shape) -> int:
        total = 0

        def hook(module, _inputs, output):
            nonlocal total
            if isinstance(module, nn.Conv2d):
                k = module.kernel_size[0] * module.kernel_size[1]
                total += output[0].numel() * module.in_channels // module.groups * k
            else:
                total += module.in_features * module.out_features

        handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        model.eval()
        with torch.no_grad():
            model(torch.randn(1, *input_shape))
        for h in handles:
            h.remove()
        return total

    return count


@pytest.fixture(scope="session")
def nb101_table():
    require_data("nasbench101/nb101_subset20k.jsonl.gz", "nasbench101/nb101_zc_subset.jsonl.gz")
    from flownas.benchmarks import load_benchmark
    return load_benchmark("nb101")


@pytest.fixture(scope="session")
def nb301_table():
    require_data("nasbench301_darts/nb301_zc_subset.jsonl.gz")
    from flownas.benchmarks import load_benchmark
    return load_benchmark("nb301")


@pytest.fixture(scope="session", autouse=True)
def torch_one_thread():
    """One torch thread in every test (OMP_NUM_THREADS above does it for a
    fresh process; this also covers a torch imported before conftest): small
    networks gain nothing from a second thread, and on a busy machine OpenMP
    threads that spin-wait for each other make them many times slower."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def nni_import_warnings():
    """nni, imported once per session through the NNI adapter (seconds). The
    warnings that leaked out of that import, or None when something imported
    nni before (then they could not be observed)."""
    import sys
    import warnings
    from flownas.spaces import nni_adapter
    fresh = "nni" not in sys.modules
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        nni_adapter._nni()
    return list(caught) if fresh else None


# -- throwaway database servers -----------------------------------------------------
# For the server ledgers (test_store_servers, test_ray): PostgreSQL and MariaDB.
# Each needs its server binaries and its Python driver; without them those tests
# skip, and fail under CI (FLOWNAS_REQUIRE_POSTGRES=1, FLOWNAS_REQUIRE_MARIADB=1).
# Each module using one starts its own server on a Unix socket in a temporary
# directory (no TCP port, nothing left behind), with password authentication,
# as on a cluster. Both offer url, password, other_url (another database of
# the same server), password_env (where a client finds the password when the
# URL has none), restart() and remove().
def _need(variable: str, reason: str):
    if os.environ.get(variable):
        pytest.fail(reason)
    pytest.skip(reason)


def _need_postgres(reason: str):
    _need("FLOWNAS_REQUIRE_POSTGRES", reason)


def _started(make, what: str, need):
    """The server ``make()`` builds, started; one that cannot be set up or
    started is removed and ``need``'s skip (or failure under CI)."""
    server = None
    try:
        server = make()
        server.start()
    except subprocess.CalledProcessError as exc:
        if server is not None:
            server.remove()
        need(f"{what} did not start: {(exc.stderr or b'').decode().strip()[-300:]}")
    return server


def _bindir() -> Path | None:
    for d in [os.environ.get("FLOWNAS_POSTGRES_BIN"), *sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]:
        if d and (Path(d) / "initdb").is_file():
            return Path(d)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


class Server:
    """A throwaway PostgreSQL server on a Unix socket in a temporary directory."""

    name = "postgresql"

    def __init__(self, bindir: Path):
        self.root = Path(tempfile.mkdtemp(prefix="flownas-pg-"))
        self.as_server_user = []
        if os.geteuid() == 0:   # PostgreSQL refuses to run as root
            shutil.chown(self.root, "postgres")
            self.as_server_user = ["runuser", "-u", "postgres", "--"]
        self.pg_ctl = [*self.as_server_user, str(bindir / "pg_ctl"), "-D", str(self.root / "data")]
        self.password = "s3cret-" + os.urandom(4).hex()   # password authentication, as on a cluster
        (self.root / "pw").write_text(self.password + "\n")
        if self.as_server_user:
            shutil.chown(self.root / "pw", "postgres")
        subprocess.run(self.as_server_user + [str(bindir / "initdb"), "-D", str(self.root / "data"),
                                              "--auth=scram-sha-256", f"--pwfile={self.root / 'pw'}",
                                              "-U", "flownas", "--no-sync", "-E", "UTF8"],
                       check=True, capture_output=True)
        self.url = f"postgresql://flownas:{self.password}@/postgres?host={self.root}"
        self.other_url = self.url.replace("/postgres?", "/template1?")
        self.password_env = {"PGPASSWORD": self.password}

    def start(self) -> None:
        subprocess.run(self.pg_ctl + ["-l", str(self.root / "log"), "-w", "-o",
                                      f"-k {self.root} -c listen_addresses='' -F", "start"],
                       check=True, capture_output=True)

    def restart(self) -> None:
        """As an administrator would: every connection is ended."""
        subprocess.run(self.pg_ctl + ["-m", "fast", "-w", "stop"], check=True, capture_output=True)
        self.start()

    def remove(self) -> None:
        subprocess.run(self.pg_ctl + ["-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres():
    if importlib.util.find_spec("psycopg") is None:   # SQLAlchemy's driver for postgresql:// URLs
        _need_postgres("psycopg is not installed (pip install 'psycopg[binary]', part of the test extra)")
    bindir = _bindir()
    if bindir is None:
        _need_postgres("no PostgreSQL server binaries (initdb): apt-get install postgresql, or set FLOWNAS_POSTGRES_BIN")
    server = _started(lambda: Server(bindir), "PostgreSQL", _need_postgres)
    yield server
    server.remove()


@pytest.fixture
def postgres_url(postgres):
    return postgres.url


def _mariadb_binaries() -> tuple[str, str] | None:
    """(mariadb-install-db, mariadbd), from FLOWNAS_MARIADB_BIN, PATH or /usr/sbin."""
    path = os.pathsep.join(p for p in [os.environ.get("FLOWNAS_MARIADB_BIN"), os.environ.get("PATH"),
                                       "/usr/sbin", "/usr/local/sbin"] if p)
    install, server = shutil.which("mariadb-install-db", path=path), shutil.which("mariadbd", path=path)
    return (install, server) if install and server else None


class MariaDBServer:
    """A throwaway MariaDB server on a Unix socket in a temporary directory,
    reached through PyMySQL (``mysql+pymysql://``)."""

    name = "mariadb"

    def __init__(self, install_db: str, mariadbd: str):
        self.root = Path(tempfile.mkdtemp(prefix="flownas-mariadb-"))
        self.as_user = []
        if os.geteuid() == 0:   # mariadbd refuses to run as root
            shutil.chown(self.root, "mysql")
            self.as_user = ["--user=mysql"]
        self.mariadbd = mariadbd
        self.socket = self.root / "sock"
        self.process = None
        subprocess.run([install_db, "--no-defaults", f"--datadir={self.root / 'data'}", *self.as_user,
                        "--auth-root-authentication-method=normal", "--skip-test-db"],
                       check=True, capture_output=True)
        self.password = "s3cret-" + os.urandom(4).hex()
        self.url = f"mysql+pymysql://flownas:{self.password}@localhost/flownas?unix_socket={self.socket}"
        self.other_url = self.url.replace("/flownas?", "/flownas_other?")
        self.password_env = {}   # PyMySQL reads no environment variable (an option file: read_default_file=)

    def start(self) -> None:
        import time
        import pymysql
        self.process = subprocess.Popen(
            [self.mariadbd, "--no-defaults", f"--datadir={self.root / 'data'}", f"--socket={self.socket}",
             "--skip-networking", f"--pid-file={self.root / 'pid'}", f"--log-error={self.root / 'log'}",
             "--innodb-flush-log-at-trx-commit=2", *self.as_user],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                root = pymysql.connect(unix_socket=str(self.socket), user="root")
                break
            except pymysql.err.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = (self.root / "log").read_text()[-300:] if (self.root / "log").exists() else ""
                    raise subprocess.CalledProcessError(1, self.mariadbd, stderr=log.encode())
                time.sleep(0.1)
        with root.cursor() as cursor:   # once: a restart keeps them
            for sql in ["CREATE DATABASE IF NOT EXISTS flownas", "CREATE DATABASE IF NOT EXISTS flownas_other",
                        f"CREATE USER IF NOT EXISTS flownas@localhost IDENTIFIED BY '{self.password}'",
                        "GRANT ALL ON flownas.* TO flownas@localhost",
                        "GRANT ALL ON flownas_other.* TO flownas@localhost"]:
                cursor.execute(sql)
        root.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()   # a clean shutdown: every connection is ended
            self.process.wait(60)

    def restart(self) -> None:
        """As an administrator would: every connection is ended."""
        self.stop()
        self.start()

    def remove(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def mariadb():
    def need(reason):
        _need("FLOWNAS_REQUIRE_MARIADB", reason)
    if importlib.util.find_spec("pymysql") is None:
        need("pymysql is not installed (pip install pymysql, part of the test extra)")
    binaries = _mariadb_binaries()
    if binaries is None:
        need("no MariaDB server binaries (mariadb-install-db, mariadbd): apt-get install mariadb-server, "
             "or set FLOWNAS_MARIADB_BIN")
    server = _started(lambda: MariaDBServer(*binaries), "MariaDB", need)
    yield server
    server.remove()


@pytest.fixture(scope="module", params=[pytest.param("postgres", marks=pytest.mark.xdist_group("postgres")),
                                        pytest.param("mariadb", marks=pytest.mark.xdist_group("mariadb"))])
def server(request):
    """Each server ledger in turn (a test module's own server of each kind)."""
    return request.getfixturevalue(request.param)
