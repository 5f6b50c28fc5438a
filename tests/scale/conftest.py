"""Session-wide real servers for the scale tests.

Starting a Prefect or MLflow server costs seconds of imports and migrations on
two cores, so the tests here share one Prefect server, one MLflow server and one
Dask cluster for the whole session. Each starts on first use, and the tests using
it run on one xdist worker (``SHARED_SERVER_GROUPS`` in tests/conftest.py): three
groups, so the Prefect server's long schedule tests do not hold up the MLflow and
Dask ones. A test that must restart a server restarts the shared one, which keeps
its port and database.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

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
def prefect_srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    with prefect_server(tmp_path_factory.mktemp("prefect-server")) as server:
        print(f"\nprefect server healthy after {server.service.startup_s:.1f} s")
        yield server


@pytest.fixture(scope="session")
def mlflow_srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    with mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as server:
        print(f"\nmlflow server healthy after {server.starts[0]:.1f} s")
        yield server


@pytest.fixture(scope="session")
def dask_srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCluster]:
    with dask_cluster(tmp_path_factory.mktemp("dask")) as cluster:
        yield cluster


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
