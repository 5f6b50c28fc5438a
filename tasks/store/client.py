"""The study store's MLflow client: outage-guarded, and on SQLite, one writer at a time.

SQLite has a single writer. Trial threads that write at once collide, and the loser
sleeps in SQLite's busy handler (1 ms, 2, 5, ... up to 100 ms a try): four threads
turned a 3 ms write into ~100 ms. Taking turns in the process is cheaper, so every
attempt of a call on a SQLite store holds a lock (the retry pauses do not).
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

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
    lock = threading.Lock() if path is not None else None
    client: Any = Guarded(MlflowClient(tracking_uri=uri), guard, lock=lock)
    if path is not None:
        client.search_experiments(max_results=1)  # creates the schema on first use
        with sqlite3.connect(path, timeout=30) as db:
            db.execute("PRAGMA journal_mode=WAL")
    return client
