"""How long a vanished driver keeps its search locked: the driver holds the
PostgreSQL ledger's driver lock over TCP from a network namespace (another
machine, as far as the server can tell), then its link goes down, so its
packets are dropped without a word, as when a node is lost; the script then
tries to take the lock once a second and prints when it could.

Needs root (network namespaces, iproute2) and PostgreSQL's server binaries;
it starts its own server on 10.77.0.1 and removes everything it made.

    sudo PYTHONPATH=. .venv/bin/python benchmarks/check_vanished_driver.py [--limit 400]
"""
from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flownas.errors import FlownasError
from flownas.store import Ledger

HOLD = ("import sys, time; from flownas.store import Ledger; "
        "Ledger.open(sys.argv[1], sys.argv[2], drive=True); print('held', flush=True); time.sleep(3600)")
HOST, DRIVER, PORT, NS = "10.77.0.1", "10.77.0.2", 55433, "flownas-drv"


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=float, default=400, help="give up after this many seconds")
    args = ap.parse_args(argv)
    bindir = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1])
    root = Path(tempfile.mkdtemp(prefix="flownas-vanish-"))
    shutil.chown(root, "postgres")
    server = ["runuser", "-u", "postgres", "--", str(bindir / "pg_ctl"), "-D", str(root / "data")]
    holder = None
    try:
        sh("ip", "netns", "add", NS)
        sh("ip", "link", "add", "fl-vh", "type", "veth", "peer", "name", "fl-vd")
        sh("ip", "link", "set", "fl-vd", "netns", NS)
        sh("ip", "addr", "add", f"{HOST}/24", "dev", "fl-vh")
        sh("ip", "link", "set", "fl-vh", "up")
        sh("ip", "netns", "exec", NS, "ip", "addr", "add", f"{DRIVER}/24", "dev", "fl-vd")
        sh("ip", "netns", "exec", NS, "ip", "link", "set", "fl-vd", "up")
        sh("runuser", "-u", "postgres", "--", str(bindir / "initdb"), "-D", str(root / "data"), "--auth=trust",
           "-U", "flownas", "--no-sync")
        with open(root / "data" / "pg_hba.conf", "a") as fh:
            fh.write(f"host all all {DRIVER}/32 trust\n")
        sh(*server, "-l", str(root / "log"), "-w", "-o", f"-k {root} -p {PORT} -c listen_addresses={HOST} -F",
           "start")
        local = f"postgresql://flownas@/postgres?host={root}&port={PORT}"
        Ledger.create(local, "vanish", {}).close()

        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        holder = subprocess.Popen(["ip", "netns", "exec", NS, sys.executable, "-c", HOLD,
                                   f"postgresql://flownas@{HOST}:{PORT}/postgres", "vanish"],
                                  env=env, stdout=subprocess.PIPE, text=True)
        assert holder.stdout.readline().strip() == "held"
        try:
            Ledger.open(local, "vanish", drive=True)
            print("the lock was not held: nothing to measure")
            return 1
        except FlownasError as exc:
            print(f"before: {exc}")
        sh("ip", "netns", "exec", NS, "ip", "link", "set", "fl-vd", "down")   # its packets are dropped from now on
        start = time.monotonic()
        while time.monotonic() - start < args.limit:
            try:
                Ledger.open(local, "vanish", drive=True).close()
                print(f"the driver's link went down; the lock was free {time.monotonic() - start:.1f} s later")
                return 0
            except FlownasError:
                time.sleep(1)
        print(f"still held {args.limit:.0f} s after the driver's link went down")
        return 1
    finally:
        if holder is not None:
            holder.kill()
        subprocess.run(["ip", "netns", "del", NS], capture_output=True)
        subprocess.run(["ip", "link", "del", "fl-vh"], capture_output=True)
        subprocess.run([*server, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
