"""Session-wide real servers for the scale tests.

Starting a Prefect or MLflow server costs seconds of import and migration time on
two cores, so every test module here shares one of each (started on first use,
torn down at the end of the session). A test that must restart a server does it
on the shared one: a restart keeps the port and the database.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import (
    DaskCluster,
    MlflowServer,
    PrefectServer,
    dask_cluster,
    mlflow_server,
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
