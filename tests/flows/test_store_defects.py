"""Defects of the old tracking layer, each checked end to end on real Prefect and MLflow."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from csv import DictReader
from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient

from amtune.flows.study import space_change, study_flow
from tests.conftest import ROOT, Runner, cli_env
from tests.flows.helpers import spec, study_runs


def test_an_unreachable_server_stops_after_its_outage_timeout(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec("unreachable", "tests.flows.objectives:loss", tracking={
        "uri": "http://127.0.0.1:9", "outage_timeout_s": 3})))
    env = cli_env()
    env.pop("PREFECT_LOGGING_LEVEL", None)  # the CLI's own defaults, as a user runs it
    r = subprocess.run([sys.executable, "-m", "amtune.flows.cli", "run", str(path)],
                       cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=120)  # 300 s of silence would time this out
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "tracking.outage_timeout_s: 3" in lines[0], r.stderr
    assert lines[0].startswith("amtune: tracking store unreachable")


def test_the_failure_limit_is_not_overshot(prefect_api: str, tracking_uri: str) -> None:
    s = spec("fail-limit", "tests.flows.objectives:always_fails", tracking={"uri": tracking_uri},
             budget={"max_trials": 10, "max_parallel": 2, "max_failed_trials": 3})
    result = study_flow(spec=s)
    assert (result.reason, result.failed, result.trials) == ("max_failed_trials", 3, 3)


def test_a_permanent_tracking_error_fails_the_trial_and_keeps_its_number(
        prefect_api: str, tracking_uri: str) -> None:
    s = spec("bad-write", "tests.store.objectives:long_metric_name",
             tracking={"uri": tracking_uri}, budget={"max_trials": 4, "max_parallel": 2})
    result = study_flow(spec=s)
    assert (result.trials, result.failed) == (4, 4)
    _, children = study_runs(tracking_uri, "bad-write")
    assert sorted(r.info.status for r in children) == ["FAILED"] * 4  # none left RUNNING
    assert sorted(int(r.data.tags["amtune.trial"]) for r in children) == [0, 1, 2, 3]
    assert all(r.data.tags["amtune.reason"].startswith("tracking_error") for r in children)


def test_a_study_run_from_python_is_quiet(tmp_path: Path) -> None:
    """No Prefect INFO lines and no telemetry traceback, as from the CLI."""
    code = (
        "from amtune.flows.study import study_flow\n"
        "from tests.flows.helpers import spec\n"
        f"r = study_flow(spec=spec('py-quiet', 'tests.flows.objectives:loss', "
        f"tracking={{'uri': 'sqlite:///{tmp_path / 'mlflow.db'}'}}))\n"
        "print('done', r.trials)\n")
    env = {k: v for k, v in cli_env().items()
           if not k.startswith(("PREFECT_", "MLFLOW_", "DO_NOT_TRACK"))}
    env["PREFECT_HOME"] = tempfile.mkdtemp(dir=tmp_path)
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines() == ["done 6"]
    noise = [line for line in r.stderr.splitlines() if line.strip()]
    assert noise == [], noise


def test_running_and_killed_trials_keep_their_params(amtune: Runner, prefect_api: str,
                                                    tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec("gated", "tests.store.objectives:gated",
                                        tracking={"uri": uri},
                                        budget={"max_trials": 4, "max_parallel": 2})))
    gate = tmp_path / "gate"
    MlflowClient(uri).search_experiments()  # the schema first: no two processes migrate it
    env = cli_env(prefect_api, AMTUNE_TEST_GATE=str(gate))
    proc = subprocess.Popen([sys.executable, "-m", "amtune.flows.cli", "run", str(path)],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        running = []
        deadline = time.monotonic() + 120
        # A run's params follow its create_run by one write: wait for both.
        while time.monotonic() < deadline and not (len(running) == 2 and all(
                set(r.data.params) == {"x", "y", "kind"} for r in running)):
            time.sleep(0.5)
            running = [r for r in study_runs_safe(uri, "gated") if r.info.status == "RUNNING"]
        assert len(running) == 2
        assert all(set(r.data.params) == {"x", "y", "kind"} for r in running)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    gate.touch()
    r = amtune("run", str(path), prefect_api=prefect_api, AMTUNE_TEST_GATE=str(gate))
    assert r.returncode == 0, r.stderr
    _, children = study_runs(uri, "gated")
    killed = [c for c in children if c.info.status == "KILLED"]
    assert len(killed) == 2 and all(set(c.data.params) == {"x", "y", "kind"} for c in killed)
    assert sorted(c.info.status for c in children if c not in killed) == ["FINISHED"] * 4
    csv = tmp_path / "t.csv"
    assert amtune("results", "gated", "--tracking-uri", uri, "--csv", str(csv)).returncode == 0
    with csv.open(encoding="utf-8") as f:
        rows = list(DictReader(f))
    killed_rows = [row for row in rows if row["status"] == "killed"]
    assert len(killed_rows) == 2  # marked as such, with their params
    assert all(row["param.x"] and row["param.kind"] for row in killed_rows)


def study_runs_safe(uri: str, name: str) -> list:
    c = MlflowClient(uri)
    exp = c.get_experiment_by_name(name)
    return [] if exp is None else c.search_runs([exp.experiment_id], "tags.`amtune.trial` != ''")


def test_a_changed_space_is_described_in_one_key_order() -> None:
    old = {"x": {"type": "float", "low": 0.0, "high": 1.0, "log": False}}
    new = {"x": {"high": 2.0, "log": False, "low": 0.0, "type": "float"}}
    message = space_change(old, new)
    assert message == ('parameters.x changed from {"high": 1.0, "log": false, "low": 0.0, '
                       '"type": "float"} to {"high": 2.0, "log": false, "low": 0.0, '
                       '"type": "float"}')
