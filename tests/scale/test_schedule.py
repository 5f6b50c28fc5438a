"""End to end on a real ``prefect server``: deploy, schedule, run by a worker / serve.

The commands are those of the README's "Run it for real": ``prefect work-pool
create``, ``prefect deploy`` with deployments/prefect.yaml, ``amtune deploy``,
``prefect worker start`` and ``amtune serve``. Durations are printed (run pytest
with -s to see them); nothing here asserts on time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow import MlflowClient

from amtune.flows.schedule import scheduled_name
from tests.scale.objectives import spec
from tests.servers import BIN, ROOT, PrefectServer, Service

POOL = "amtune"
# How often a worker / served runner asks the server for due runs (defaults: 10-15 s).
FAST_POLL = {"PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_RUNNER_POLL_FREQUENCY": "1",
             "PREFECT_WORKER_PREFETCH_SECONDS": "2", "PREFECT_LOGGING_LEVEL": "WARNING"}


def _run(argv: list[str], srv: PrefectServer, cwd: Path = ROOT, **env: str
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=srv.client_env(PWD=str(cwd), **env),
                          capture_output=True, text=True, timeout=300)


def _amtune(srv: PrefectServer, *args: str) -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, "-m", "amtune.flows.cli", *args], srv)


@contextmanager
def _client(srv: PrefectServer) -> Iterator[Any]:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: srv.api_url}), \
            get_client(sync_client=True) as client:
        yield client


@pytest.fixture(scope="module")
def pool(prefect_srv: PrefectServer) -> str:
    done = _run([str(BIN / "prefect"), "work-pool", "create", POOL, "--type", "process"],
                prefect_srv)
    assert done.returncode == 0, done.stdout + done.stderr
    return POOL


def _write_spec(tmp_path: Path, name: str, **extra: Any) -> Path:
    path = tmp_path / f"{name}.yaml"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    path.write_text(yaml.safe_dump(spec(name, uri, **extra)))
    return path


def test_bad_pool_and_missing_schedule_are_clear_errors(prefect_srv: PrefectServer, pool: str,
                                                         tmp_path: Path) -> None:
    path = _write_spec(tmp_path, "errs")
    bad = _amtune(prefect_srv, "deploy", str(path), "--interval", "60", "--pool", "gpu-pool")
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert bad.stderr.startswith("amtune: --pool: 'gpu-pool' — no such work pool")
    assert f"(existing: {pool})" in bad.stderr and "Traceback" not in bad.stderr
    neither = _amtune(prefect_srv, "deploy", str(path))
    assert neither.returncode == 2
    assert "exactly one of --cron EXPR or --interval SECONDS" in neither.stderr


def test_prefect_yaml_deploys_the_example_studies(prefect_srv: PrefectServer, pool: str) -> None:
    done = _run([str(BIN / "prefect"), "--no-prompt", "deploy", "--all",
                 "--prefect-file", "deployments/prefect.yaml"], prefect_srv)
    assert done.returncode == 0, done.stdout + done.stderr
    declared = yaml.safe_load((ROOT / "deployments" / "prefect.yaml").read_text())["deployments"]
    with _client(prefect_srv) as client:
        for d in declared:
            dep = client.read_deployment_by_name(f"amtune-study/{d['name']}")
            assert dep.work_pool_name == pool
            assert dep.entrypoint == "flows/study.py:study_flow"
            assert dep.parameters == {"spec": d["parameters"]["spec"]}
            assert (ROOT / d["parameters"]["spec"]).is_file()
            assert [s.schedule.cron for s in dep.schedules] == [d["schedules"][0]["cron"]]
            step = dep.pull_steps[0]["prefect.deployments.steps.set_working_directory"]
            assert Path(step["directory"]) == ROOT

    one = _amtune(prefect_srv, "deploy", "deployments/svm-nightly.yaml", "--cron", "0 3 * * *",
                  "--pool", pool)
    assert one.returncode == 0, one.stdout + one.stderr
    with _client(prefect_srv) as client:
        dep = client.read_deployment_by_name("amtune-study/svm-nightly")
    assert [s.schedule.cron for s in dep.schedules] == ["0 3 * * *"]
    assert dep.parameters == {"spec": "deployments/svm-nightly.yaml"}
    assert dep.work_pool_name == pool


def _studies(uri: str, experiment: str, trials: int) -> list[Any]:
    """Finished studies of the experiment with all their trials, oldest first."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    parents = client.search_runs([exp.experiment_id], "tags.`amtune.role` = 'study'",
                                 order_by=["attributes.start_time ASC"])
    return [p for p in parents if p.info.status == "FINISHED"
            and len(client.search_runs([exp.experiment_id],
                                       f"tags.`mlflow.parentRunId` = '{p.info.run_id}'"))
            == trials]


def _wait_for_studies(uri: str, experiment: str, n: int, service: Service,
                      timeout_s: float = 300) -> list[Any]:
    deadline = time.monotonic() + timeout_s
    while len(found := _studies(uri, experiment, 3)) < n:
        assert service.running, service.tail()
        assert time.monotonic() < deadline, service.tail()
        time.sleep(1)
    return found


def test_a_deployed_schedule_retunes_with_warm_start(prefect_srv: PrefectServer, pool: str,
                                                      tmp_path: Path) -> None:
    """Two scheduled runs, two studies named after their slots; the second is warm-started."""
    path = _write_spec(tmp_path, "retune", strategy={"name": "gp_ei"}, warm_start="previous",
                       budget={"max_trials": 3, "max_parallel": 3})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    t0 = time.monotonic()
    # Slots 5 s apart: the second is due before the first study ends, so the worker
    # (limit 1) starts it as soon as the first is done, warm-started from it.
    done = _amtune(prefect_srv, "deploy", str(path), "--interval", "5", "--pool", pool)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "deployment amtune-study/retune" in done.stdout
    t_deployed = time.monotonic()
    worker = Service("prefect worker",
                     [str(BIN / "prefect"), "worker", "start", "--pool", pool, "--limit", "1"],
                     prefect_srv.client_env(**FAST_POLL), tmp_path / "worker.log", cwd=tmp_path)
    worker.start(lambda: True)
    try:
        first = _wait_for_studies(uri, "retune", 1, worker)
        t_first = time.monotonic()
        studies = _wait_for_studies(uri, "retune", 2, worker)[:2]
        t_second = time.monotonic()
    finally:
        with _client(prefect_srv) as client:
            dep = client.read_deployment_by_name("amtune-study/retune")
            client.pause_deployment(dep.id)
            runs = client.read_flow_runs()
        worker.stop()
    print(f"\nschedule e2e: deploy {t_deployed - t0:.1f} s, first scheduled study done "
          f"{t_first - t_deployed:.1f} s after deploying, second {t_second - t_deployed:.1f} s")

    slots = sorted(r.expected_start_time for r in runs if r.deployment_id == dep.id
                   and r.state is not None and r.state.is_completed())
    names = [s.data.tags["amtune.study"] for s in studies]
    assert names == [scheduled_name("retune", when) for when in slots[:2]]
    assert first[0].data.tags["amtune.study"] == names[0]
    assert json.loads(studies[0].data.tags["amtune.warm_start.studies"]) == []
    assert json.loads(studies[1].data.tags["amtune.warm_start.studies"]) == [names[0]]
    assert studies[1].data.tags["amtune.warm_start.trials"] == "3"


def test_serve_runs_a_study_on_its_schedule(prefect_srv: PrefectServer, tmp_path: Path) -> None:
    path = _write_spec(tmp_path, "served", budget={"max_trials": 3, "max_parallel": 3})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    t0 = time.monotonic()
    serve = Service("amtune serve",
                    [sys.executable, "-m", "amtune.flows.cli", "serve", str(path),
                     "--interval", "5"],
                    prefect_srv.client_env(**FAST_POLL), tmp_path / "serve.log", cwd=tmp_path)
    serve.start(lambda: True)
    try:
        studies = _wait_for_studies(uri, "served", 1, serve)
    finally:
        serve.stop()
    print(f"\nserve e2e: first scheduled study done {time.monotonic() - t0:.1f} s after "
          "starting `amtune serve`")
    assert studies[0].data.tags["amtune.study"].startswith("served-")
