"""Where a study's trials run: Prefect's thread pool, or a Dask cluster.

``execution: {task_runner: dask, address: tcp://host:8786}`` sends every trial of
every round to an existing Dask scheduler through prefect-dask's task runner;
without an address one local cluster is started and kept for the process (one
per round, prefect-dask's default, would pay the cluster start-up every round).
Trials on Dask run in other processes, possibly on other machines, so they reach
MLflow by URI alone: a relative SQLite path is made absolute here, and a cluster
spanning machines needs an MLflow server (``tracking.uri: http://...``).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
from functools import cache
from pathlib import Path
from typing import Any


def absolute_tracking_uri(uri: str) -> str:
    """``sqlite:///rel.db`` -> ``sqlite:////abs/rel.db``, so every process finds one file."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return uri
    rest = uri[len(prefix):]
    path, sep, query = rest.partition("?")
    if path in ("", ":memory:") or Path(path).is_absolute():
        return uri
    return f"{prefix}{Path(path).resolve()}{sep}{query}"


@cache
def local_cluster(n_workers: int) -> str:
    """A Dask cluster on this machine, started once per process and shared by its rounds.

    One single-threaded worker process per parallel trial (at most one per core), so
    trials run side by side without sharing a GIL. Closed at exit, before
    distributed's own finalizer would log its shutdown to a console already gone.
    """
    from distributed import LocalCluster

    n = max(1, min(n_workers, os.cpu_count() or 1))
    # Every listener on loopback: without an address Dask's HTTP routes bind all interfaces.
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address="127.0.0.1:0", worker_dashboard_address="127.0.0.1:0")
    atexit.register(_close_quietly, cluster)
    return str(cluster.scheduler_address)


def _close_quietly(cluster: Any) -> None:
    logging.disable(logging.CRITICAL)  # interpreter exit: nothing left to log to
    with contextlib.suppress(Exception):
        cluster.close()


def make_task_runner(task_runner: str, address: str | None, max_parallel: int) -> Any:
    """A round's task runner: a thread pool, or the study's Dask cluster."""
    if task_runner == "dask":
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=address or local_cluster(max_parallel))
    from prefect.task_runners import ThreadPoolTaskRunner

    # The loop's slots bound the trials in flight; the pool has room for more, as a
    # trial's slot frees (and the next trial is submitted, maybe to the same round)
    # while Prefect is still ending its task run in its thread.
    return ThreadPoolTaskRunner(max_workers=2 * max_parallel)
