"""Several amtune processes that open one new SQLite store at once all get a whole schema.

MLflow creates a SQLite store's schema by migrating it on first use; two processes that
migrate one file together leave it broken (half-copied ``_alembic_tmp_*`` tables).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import cli_env

OPEN = """
import sys, time
from amtune.tasks.store.client import connect
from amtune.tasks.store.outage import OutageGuard
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # start together, imports done
connect(sys.argv[1], OutageGuard(60)).search_experiments()
"""


def test_processes_opening_a_new_store_together_all_succeed(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    start = time.time() + 15  # past every process's imports, on a loaded machine too
    procs = [
        subprocess.Popen([sys.executable, "-c", OPEN, f"sqlite:///{db}", str(start)],
                         env=cli_env(), stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    errors = [p.communicate(timeout=240)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errors
    with sqlite3.connect(db) as con:
        tables = {name for (name,) in con.execute("SELECT name FROM sqlite_master")}
    assert "experiments" in tables
    assert not [t for t in tables if t.startswith("_alembic_tmp")], tables
