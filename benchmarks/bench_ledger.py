"""The ledger's cost per candidate: what recording a candidate (its dispatch,
then its outcome) costs the driver, on SQLite, PostgreSQL and (with
``--mysql``) MySQL / MariaDB.

Protocol: for each storage and each repeat, a new study receives
``--candidates`` candidates of the toy space, each ``Ledger.start`` (a
RUNNING trial with the architecture) then ``Ledger.finish`` (the result, then
the state), one after the other, as the search loop writes them; reported:
the median over the repeats of the milliseconds per candidate. Rows:

* ``sqlite``: the default ledger, a file in a temporary directory (WAL,
  ``synchronous=NORMAL``);
* ``postgresql, as before``: the storage as flownas opened it until
  2026-12-07 (no pre-ping, no driver lock);
* ``postgresql, pre-ping``: a reader's or a non-driving ledger's storage;
* ``postgresql, driver``: what a search runs with (pre-ping, and the driver
  lock checked before each dispatch and each outcome);
* ``mysql, pre-ping`` and ``mysql, driver``: the same on MySQL (its driver
  lock is ``GET_LOCK``; added 2026-12-07).

The PostgreSQL server is the caller's (``--postgres URL``); a throwaway one
on a Unix socket, as the tests start it:

    initdb -D /tmp/pg/data --auth=trust -U flownas --no-sync   # as a non-root user
    pg_ctl -D /tmp/pg/data -l /tmp/pg/log -w -o "-k /tmp/pg -c listen_addresses='' -F" start
    PYTHONPATH=. python benchmarks/bench_ledger.py --postgres "postgresql://flownas@/postgres?host=/tmp/pg" \\
        --candidates 200 --repeats 5 --seed 0

and a MariaDB one, as conftest.py starts it (``--mysql
"mysql+pymysql://flownas:PW@localhost/flownas?unix_socket=/tmp/mdb/sock"``):

    mariadb-install-db --no-defaults --datadir=/tmp/mdb/data --auth-root-authentication-method=normal
    mariadbd --no-defaults --datadir=/tmp/mdb/data --socket=/tmp/mdb/sock --skip-networking \
        --innodb-flush-log-at-trx-commit=2 &
    mariadb -S /tmp/mdb/sock -u root -e "CREATE DATABASE flownas; CREATE USER flownas@localhost \
        IDENTIFIED BY 'PW'; GRANT ALL ON flownas.* TO flownas@localhost"
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from flownas.store import Ledger, Record, storage_url
from flownas.toys import ToySpace


def archs(n: int, seed: int) -> list:
    space, rng = ToySpace(), np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)]


def old_postgres_ledger(url: str, name: str) -> Ledger:
    """The storage as flownas opened it before pre-ping and the driver lock."""
    import optuna
    storage = optuna.storages.RDBStorage(url)
    study_id = storage.create_new_study([optuna.study.StudyDirection.MAXIMIZE], name)
    storage.set_study_user_attr(study_id, "flownas", {"format": "flownas.ledger", "version": 1})
    return Ledger(storage, study_id, name, url)


def ms_per_candidate(ledger: Ledger, candidates: list) -> float:
    start = time.perf_counter()
    for seq, arch in enumerate(candidates):
        rec = Record(seq, ledger.start(seq, arch, {"origin": "random"}), arch, {"origin": "random"})
        rec.state, rec.value, rec.metrics = "complete", float(seq), {"val": float(seq)}
        rec.done, rec.cost_s, rec.wall_s = seq, 1.0, 0.01
        ledger.finish(rec)
    elapsed = time.perf_counter() - start
    ledger.close()
    return 1000 * elapsed / len(candidates)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--postgres", required=True, help="a PostgreSQL URL the benchmark may create studies in")
    ap.add_argument("--mysql", help="a MySQL / MariaDB URL (mysql+pymysql://...) the benchmark may create studies in")
    ap.add_argument("--candidates", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args(argv)
    candidates = archs(args.candidates, args.seed)
    print(f"protocol: {args.candidates} candidates (start + finish each), {args.repeats} repeats, "
          f"toy space seed {args.seed}; median ms per candidate")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        makers = {
            "sqlite": lambda name: Ledger.create(storage_url(Path(tmp) / f"{name}.db"), name, {}),
            "postgresql, as before": lambda name: old_postgres_ledger(args.postgres, name),
            "postgresql, pre-ping": lambda name: Ledger.create(args.postgres, name, {}),
            "postgresql, driver": lambda name: Ledger.create(args.postgres, name, {}, drive=True),
        }
        if args.mysql:
            makers["mysql, pre-ping"] = lambda name: Ledger.create(args.mysql, name, {})
            makers["mysql, driver"] = lambda name: Ledger.create(args.mysql, name, {}, drive=True)
        for repeat in range(args.repeats):   # interleaved, so a slow spell of the machine hits every row
            for label, make in makers.items():
                rows.setdefault(label, []).append(ms_per_candidate(make(f"bench-{uuid.uuid4().hex[:8]}"),
                                                                   candidates))
    base = statistics.median(rows["postgresql, as before"])
    print("| storage | ms per candidate (median) | runs | vs PostgreSQL as before |\n|---|---|---|---|")
    for label, values in rows.items():
        med = statistics.median(values)
        print(f"| {label} | {med:.2f} | {', '.join(f'{v:.2f}' for v in values)} | {med / base:.2f}x |")
    if args.json:
        Path(args.json).write_text(json.dumps({"protocol": {"candidates": args.candidates, "repeats": args.repeats,
                                                            "seed": args.seed}, "ms_per_candidate": rows},
                                              indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
