"""A study tracked on an ``mlflow server`` over HTTP, resumed across a server restart.

The study process is killed mid-round (SIGKILL, like a crashed machine), the
tracking server is restarted on the same port and database, and the same command
resumes the study: exactly ``max_trials`` trials, none duplicated, none left RUNNING.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml
from mlflow import MlflowClient

from tests.scale.objectives import spec
from tests.servers import MlflowServer, child_env


def _trials(client: MlflowClient, name: str) -> list:
    exp = client.get_experiment_by_name(name)
    if exp is None:
        return []
    runs = client.search_runs([exp.experiment_id])
    return [r for r in runs if r.data.tags.get("amtune.role") != "study"]


def test_resume_across_a_tracking_server_restart(prefect_api: str, mlflow_srv: MlflowServer,
                                                 tmp_path: Path) -> None:
    data = spec("over-http", mlflow_srv.url, budget={"max_trials": 6, "max_parallel": 2})
    data["objective"]["function"] = "tests.scale.objectives:slow_quad"
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    argv = [sys.executable, "-m", "amtune.flows.cli", "run", str(path)]
    env = child_env(PREFECT_API_URL=prefect_api)
    client = MlflowClient(mlflow_srv.url)

    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while sum(r.info.status == "FINISHED" for r in _trials(client, "over-http")) < 2:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert time.monotonic() < deadline, "no trial finished"
        time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    before = _trials(client, "over-http")
    assert 2 <= sum(r.info.status == "FINISHED" for r in before) < 6

    mlflow_srv.restart()
    client = MlflowClient(mlflow_srv.url)
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "6 trials (0 failed)" in done.stdout

    after = _trials(client, "over-http")
    finished = [r for r in after if r.info.status == "FINISHED"]
    numbers = sorted(int(r.data.tags["amtune.trial"]) for r in finished)
    assert numbers == list(range(6))  # none duplicated, none missing
    assert not [r for r in after if r.info.status == "RUNNING"]
    # trials finished before the kill were kept, not re-run
    kept = {r.info.run_id for r in before if r.info.status == "FINISHED"}
    assert kept <= {r.info.run_id for r in finished}
    study = client.search_runs([after[0].info.experiment_id], "tags.`amtune.role` = 'study'")
    assert [s.info.status for s in study] == ["FINISHED"]
