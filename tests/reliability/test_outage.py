"""Tracking outages: a real ``mlflow server`` on 127.0.0.1 goes away mid-study.

Two studies run at once against the same server, their trials held on a gate
file. The server is stopped, then the gate opened, so every trial finishes while
nothing can be written. Study A may wait 10 minutes: it rides out the outage and
completes once the server is back, with no trial lost. Study B may wait 3 seconds:
it stops with exit 1 and a message, and a rerun (started as soon as the server is
back, while A finishes) resumes it to completion.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import cli_env
from tests.flows.helpers import counted, spec, study_runs
from tests.servers import MlflowServer


@pytest.fixture(scope="module")
def mlflow_srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-outage"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def running_trials(uri: str, name: str) -> int:
    c = MlflowClient(uri)
    exp = c.get_experiment_by_name(name)
    if exp is None:
        return 0
    return len(
        c.search_runs(
            [exp.experiment_id], "tags.`amtune.trial` != '' and attributes.status = 'RUNNING'"
        )
    )


def user_env(prefect_api: str, gate: Path) -> dict[str, str]:
    """The CLI's own logging defaults (the test session turns Prefect's logs up)."""
    env = cli_env(prefect_api, AMTUNE_TEST_GATE=str(gate))
    env.pop("PREFECT_LOGGING_LEVEL", None)
    return env


def start_study(path: Path, cwd: Path, prefect_api: str, gate: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "amtune.flows.cli", "run", str(path)],
        cwd=cwd,
        env=user_env(prefect_api, gate),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.timeout(1200)  # two server starts and three studies on a busy 2-core machine
def test_outage_is_ridden_out_or_stops_the_study_for_a_rerun(
    mlflow_srv: MlflowServer, prefect_api: str, tmp_path: Path
) -> None:
    uri = mlflow_srv.url
    gate = tmp_path / "gate"
    paths = {}
    for name, limit in (("outage-wait", 600), ("outage-stop", 3)):
        paths[name] = tmp_path / f"{name}.yaml"
        paths[name].write_text(
            yaml.safe_dump(
                spec(
                    name,
                    "tests.reliability.objectives:gated",
                    tracking={"uri": uri, "outage_timeout_s": limit},
                    budget={"max_trials": 4, "max_parallel": 2},
                )
            )
        )
    procs = {name: start_study(path, tmp_path, prefect_api, gate) for name, path in paths.items()}
    try:
        deadline = time.monotonic() + 300
        while any(running_trials(uri, name) < 2 for name in procs):
            for name, proc in procs.items():
                assert proc.poll() is None, (name, proc.communicate())
            assert time.monotonic() < deadline, "the trials never started"
            time.sleep(0.2)

        mlflow_srv.stop()
        gate.touch()  # every running trial now finishes while nothing can be written
        _, err = procs["outage-stop"].communicate(timeout=300)
        assert procs["outage-stop"].returncode == 1, err
        assert "tracking store unreachable" in err and "outage_timeout_s: 3" in err, err
        assert "rerun the same command" in err and "Traceback" not in err
        assert procs["outage-wait"].poll() is None  # still waiting for the server

        mlflow_srv.start()
        # The rerun of the stopped study starts at once, while the waiting one finishes:
        # two studies of their own, on the same server.
        procs["rerun"] = start_study(paths["outage-stop"], tmp_path, prefect_api, gate)
        _, err = procs["outage-wait"].communicate(timeout=600)
        assert procs["outage-wait"].returncode == 0, err
        _, rerun_err = procs["rerun"].communicate(timeout=600)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    _, children = study_runs(uri, "outage-wait")
    assert len(children) == 4, "a trial that finished during the outage was lost or repeated"
    assert all(r.info.status == "FINISHED" for r in children)
    assert sorted(int(r.data.tags["amtune.trial"]) for r in children) == [0, 1, 2, 3]

    assert procs["rerun"].returncode == 0, rerun_err
    parents, children = study_runs(uri, "outage-stop")
    assert parents[0].info.status == "FINISHED"
    done = counted(children)
    assert len(done) == 4 and not [r for r in children if r.info.status == "RUNNING"]
    assert sorted(int(r.data.tags["amtune.trial"]) for r in done) == [0, 1, 2, 3]
