"""Trials on a real Dask cluster: a ``dask scheduler`` and two ``dask worker`` processes.

Each trial writes its own MLflow run from the worker process that ran it; the
objective reports its pid so the test can tell where every trial ran.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from distributed import Client
from mlflow import MlflowClient

from amtune.flows.study import study_flow
from tests.scale.objectives import spec
from tests.servers import DaskCluster, child_env


def test_trials_run_and_track_on_dask_workers(prefect_api: str, dask_srv: DaskCluster,
                                              tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec(
        "on-dask", uri, budget={"max_trials": 6, "max_parallel": 3},
        execution={"task_runner": "dask", "address": dask_srv.address})))
    done = subprocess.run([sys.executable, "-m", "amtune.flows.cli", "run", str(path)],
                          cwd=tmp_path,
                          env=child_env(PREFECT_API_URL=prefect_api), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "6 trials (0 failed)" in done.stdout

    with Client(dask_srv.address, timeout=30) as client:
        worker_pids = set(client.run(os.getpid).values())
    assert len(worker_pids) == 2 and os.getpid() not in worker_pids

    mlflow = MlflowClient(uri)
    exp_id = mlflow.get_experiment_by_name("on-dask").experiment_id
    kids = [r for r in mlflow.search_runs([exp_id]) if r.data.tags.get("amtune.role") != "study"]
    assert len(kids) == 6
    assert {r.info.status for r in kids} == {"FINISHED"}
    assert sorted(int(r.data.tags["amtune.trial"]) for r in kids) == list(range(6))
    ran_on = {int(r.data.metrics["pid"]) for r in kids}
    assert ran_on <= worker_pids  # every trial, and its MLflow writes, on a Dask worker
    for r in kids:
        x, y = float(r.data.params["x"]), float(r.data.params["y"])
        assert r.data.metrics["loss"] == (x - 0.3) ** 2 + (y + 0.2) ** 2


def test_a_local_cluster_when_no_address_is_given(prefect_api: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a relative SQLite path must reach the worker processes
    result = study_flow(spec=spec(
        "local-dask", "sqlite:///rel.db", budget={"max_trials": 4, "max_parallel": 2},
        execution={"task_runner": "dask"}))
    assert (result.trials, result.failed) == (4, 0)
    mlflow = MlflowClient(f"sqlite:///{tmp_path / 'rel.db'}")
    kids = mlflow.search_runs([result.experiment_id],
                              f"tags.`mlflow.parentRunId` = '{result.parent_run_id}'")
    assert {r.info.status for r in kids} == {"FINISHED"} and len(kids) == 4
    assert os.getpid() not in {int(r.data.metrics["pid"]) for r in kids}
