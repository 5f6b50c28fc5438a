"""The study store's MLflow client: outage-guarded, and on SQLite, one writer at a time.

SQLite has a single writer. Trial threads that write at once collide, and the loser
sleeps in SQLite's busy handler (1 ms, 2, 5, ... up to 100 ms a try): four threads
turned a 3 ms write into ~100 ms. Taking turns in the process is cheaper, so every
attempt of a call on a SQLite store holds a lock (the retry pauses do not).

A new SQLite store gets its schema from MLflow's migrations on first use. Two processes
that migrate one file at once leave it broken for good (half-copied ``_alembic_tmp_*``
tables, a revision between two steps: measured with four processes, every try), so
amtune processes take turns on a lock file beside the store while they open it.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from filelock import FileLock
from mlflow.tracking import MlflowClient

from amtune.tasks.store.outage import Guarded, OutageGuard, limit_http_retries


def sqlite_path(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    rest = uri[len("sqlite:///"):].split("?")[0]
    return None if rest in ("", ":memory:") else Path(rest)


def check_uri(uri: str) -> str | None:
    """What is wrong with a tracking URI that no wait can fix, or None."""
    path = sqlite_path(uri)
    if path is not None and not path.parent.is_dir():
        return (f"tracking.uri: {uri!r} — the folder {str(path.parent)!r} does not exist; "
                "allowed: a SQLite file in an existing folder")
    return None


def connect(uri: str, guard: OutageGuard) -> Any:
    """An MLflow client for ``uri`` whose every call rides out outages through ``guard``.

    A SQLite store is switched to WAL (persistent, ~10x cheaper commits) on first use.
    """
    limit_http_retries()
    path = sqlite_path(uri)
    if path is None:
        return Guarded(MlflowClient(tracking_uri=uri), guard)
    with FileLock(f"{path}.lock"):
        inner = MlflowClient(tracking_uri=uri)  # creates (migrates) the schema on first use
        with sqlite3.connect(path, timeout=30) as db:
            db.execute("PRAGMA journal_mode=WAL")
    return Guarded(inner, guard, lock=threading.Lock())
