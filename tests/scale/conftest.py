"""Session-wide real servers for the scale tests.

Starting a Prefect or MLflow server costs seconds of imports and migrations on
two cores, so the tests here share one Prefect server, one MLflow server and one
Dask cluster for the whole session. The three start together, on first use, in
parallel threads (their start-up is mostly waiting on imports in separate
processes); a test that must restart a server restarts the shared one, which
keeps its port and database.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack
from typing import Any

import pytest

from tests.servers import (
    DaskCluster,
    MlflowOnPostgres,
    MlflowServer,
    PostgresServer,
    PrefectServer,
    dask_cluster,
    mlflow_server,
    postgres_bindir,
    postgres_server,
    prefect_server,
)


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    # Temp dirs are made here, not in the threads: pytest's mktemp is not thread-safe.
    dirs = {n: tmp_path_factory.mktemp(n) for n in ("prefect-server", "mlflow-server", "dask")}
    makers: dict[str, Callable[[], AbstractContextManager[Any]]] = {
        "prefect": lambda: prefect_server(dirs["prefect-server"]),
        "mlflow": lambda: mlflow_server(dirs["mlflow-server"]),
        "dask": lambda: dask_cluster(dirs["dask"]),
    }

    def enter(make: Callable[[], AbstractContextManager[Any]]) -> tuple[Any, Any]:
        cm = make()
        return cm, cm.__enter__()

    with ExitStack() as stack, ThreadPoolExecutor(len(makers)) as pool:
        futures = {name: pool.submit(enter, make) for name, make in makers.items()}
        started: dict[str, Any] = {}
        errors = []
        for name, fut in futures.items():
            try:
                cm, value = fut.result()
            except Exception as err:  # the others are still torn down by the stack
                errors.append(err)
                continue
            stack.push(cm.__exit__)
            started[name] = value
        if errors:
            raise errors[0]
        yield started


@pytest.fixture(scope="session")
def prefect_srv(services: dict[str, Any]) -> PrefectServer:
    server: PrefectServer = services["prefect"]
    print(f"\nprefect server healthy after {server.service.startup_s:.1f} s")
    return server


@pytest.fixture(scope="session")
def mlflow_srv(services: dict[str, Any]) -> MlflowServer:
    server: MlflowServer = services["mlflow"]
    print(f"\nmlflow server healthy after {server.starts[0]:.1f} s")
    return server


@pytest.fixture(scope="session")
def dask_srv(services: dict[str, Any]) -> DaskCluster:
    cluster: DaskCluster = services["dask"]
    return cluster


@pytest.fixture(scope="session")
def postgres_srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A PostgreSQL cluster of its own, started from the installed binaries (no network).

    Missing binaries skip the tests on a developer's machine but fail them in CI
    (``CI`` set), where ``.ci/run`` installs Debian's ``postgresql`` package first:
    the production store must not go untested silently.
    """
    bindir = postgres_bindir()
    if bindir is None:
        msg = "PostgreSQL is not installed (Debian/Ubuntu: apt-get install postgresql)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    with postgres_server(tmp_path_factory.mktemp("postgres"), bindir) as server:
        print(f"\npostgres accepting connections after {server.startup_s:.1f} s")
        yield server


@pytest.fixture(scope="session")
def mlflow_pg_srv(postgres_srv: PostgresServer,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """``mlflow server --backend-store-uri postgresql://...``, restartable like ``mlflow_srv``."""
    server = MlflowOnPostgres(tmp_path_factory.mktemp("mlflow-pg"), store_uri=postgres_srv.uri)
    server.start()
    print(f"\nmlflow server on postgres healthy after {server.starts[0]:.1f} s")
    try:
        yield server
    finally:
        server.stop()
