"""Smoke tests of the real services the scale tests rely on."""

from __future__ import annotations

import json
import os
import socket
import urllib.request
from pathlib import Path

from tests.servers import ROOT, DaskCluster, MlflowServer, PrefectServer


def _pid_group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_prefect_server_answers_its_api(prefect_srv: PrefectServer) -> None:
    with urllib.request.urlopen(f"{prefect_srv.api_url}/health", timeout=10) as resp:
        assert json.load(resp) is True
    req = urllib.request.Request(
        f"{prefect_srv.api_url}/work_pools/filter",
        data=b"{}",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert isinstance(json.load(resp), list)
    assert (prefect_srv.home / "prefect.db").exists()


def test_mlflow_server_keeps_runs_across_a_restart(mlflow_srv: MlflowServer) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_srv.url)
    exp = client.create_experiment("smoke-restart")
    run = client.create_run(exp)
    client.log_metric(run.info.run_id, "loss", 0.25, step=3)
    client.log_text(run.info.run_id, "hello", "note.txt")

    assert mlflow_srv.service is not None
    old_pgid = mlflow_srv.service.proc.pid  # type: ignore[union-attr]
    port = mlflow_srv.port
    mlflow_srv.restart()
    assert not _pid_group_alive(old_pgid), "the old server's processes must be gone"
    assert mlflow_srv.port == port

    client = MlflowClient(tracking_uri=mlflow_srv.url)
    got = client.get_run(run.info.run_id)
    assert got.data.metrics["loss"] == 0.25
    assert client.get_metric_history(run.info.run_id, "loss")[0].step == 3
    local = client.download_artifacts(run.info.run_id, "note.txt", str(mlflow_srv.workdir))
    assert Path(local).read_text() == "hello"


def _where_am_i() -> tuple[int, str]:
    import amtune.strategies

    return os.getpid(), str(Path(amtune.strategies.__file__).resolve())


def test_dask_workers_import_the_project(dask_srv: DaskCluster) -> None:
    from distributed import Client

    with Client(dask_srv.address, timeout=30) as client:
        workers = list(client.scheduler_info(n_workers=-1)["workers"])
        assert len(workers) == 2
        answers = [client.submit(_where_am_i, workers=[w], pure=False).result() for w in workers]
    pids = {pid for pid, _ in answers}
    assert len(pids) == 2 and os.getpid() not in pids
    assert {path for _, path in answers} == {str(ROOT / "strategies" / "__init__.py")}
    host, port = dask_srv.address.removeprefix("tcp://").split(":")
    assert host == "127.0.0.1"
    with socket.create_connection((host, int(port)), timeout=5):
        pass
