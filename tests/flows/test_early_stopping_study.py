"""Early stopping in whole studies: real Prefect (shared API), real MLflow, real processes.

The curves are built so the decisions do not depend on timing. Trial ``x`` reports
``x + 1/epoch``: under ASHA (rf 2, rungs 1, 2, 4 of 8) the trial with x = 0 is best at
every rung and never stopped, and the one with x = 5 starts after at least four others
reached rung 1 and is stopped there. Under the median rule with one trial at a time,
trials 0 and 1 complete and every later one is worse than their median at step 1.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import mlflow.artifacts
import pytest
import yaml
from mlflow.tracking import MlflowClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterParentFlowRunId,
    TaskRunFilter,
    TaskRunFilterFlowRunId,
)

from amtune.flows.progress import Reporter
from amtune.flows.study import study_flow
from amtune.tasks.runners import TrialStopped
from amtune.tasks.store.schema import TrialRecord
from tests.conftest import Runner
from tests.flows.helpers import counted, study_runs
from tests.tasks.test_early_stopping_trials import survivors

EPOCHS = 8
TRAIN = textwrap.dedent("""
    import json, os, subprocess, sys, time
    x = json.loads(os.environ["AMTUNE_PARAMS"])["x"]
    # a grandchild in the trial's process group, which must not outlive the trial
    child = subprocess.Popen(["sleep", "120"])
    with open(os.path.join(os.environ["ES_PIDS"], str(os.getpid())), "w") as f:
        f.write(str(child.pid))
    for epoch in range(1, {epochs} + 1):
        time.sleep(float(os.environ.get("ES_SLEEP", "0.05")))
        print(f"epoch={{epoch}} loss={{x + 1.0 / epoch}}", flush=True)
""").format(epochs=EPOCHS)


def command_spec(name: str, tmp_path: Path, uri: str, **over: Any) -> dict[str, Any]:
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    d: dict[str, Any] = {
        "name": name,
        "objective": {"command": ["python", str(script)], "metric": "loss",
                      "metrics": [{"name": "loss", "regex": r"loss=([0-9.eE+-]+)"}]},
        "parameters": {"x": {"type": "int", "low": 0, "high": 5}},
        "strategy": {"name": "grid"},
        "budget": {"max_trials": 6, "max_parallel": 2},
        "trial": {"retries": 2, "retry_delay_s": 0},
        "early_stopping": {"rule": "asha", "reduction_factor": 2, "max_steps": EPOCHS},
        "tracking": {"uri": uri},
    }
    d.update(over)
    return d


def by_x(children: list[Any]) -> dict[int, Any]:
    return {int(r.data.params["x"]): r for r in children if r.info.status != "KILLED"}


def trial_states(study: str) -> dict[str, tuple[str, str | None, int]]:
    """Task run name -> (state type, state message, run count), read from Prefect's API."""
    async def read() -> dict[str, tuple[str, str | None, int]]:
        async with get_client() as client:
            flows = await client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["amtune-study"])), limit=200)
            ids = [f.id for f in flows if f.name == study]
            rounds = await client.read_flow_runs(flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=ids)), limit=200)
            runs = await client.read_task_runs(task_run_filter=TaskRunFilter(
                flow_run_id=TaskRunFilterFlowRunId(any_=[r.id for r in rounds])), limit=200)
        return {r.name: (r.state_type.value, r.state.message if r.state else None,
                         r.run_count) for r in runs if r.name.startswith("trial-")}
    return asyncio.run(read())


@pytest.mark.parametrize("rounds", ["async", "barrier"])
def test_command_trials_stopped_by_asha(prefect_api: str, tracking_uri: str, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch, rounds: str) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    monkeypatch.setenv("ES_PIDS", str(pids))
    name = f"es-command-{rounds}"
    result = study_flow(spec=command_spec(name, tmp_path, tracking_uri,
                                          execution={"rounds": rounds}))
    assert (result.reason, result.trials, result.failed) == ("max_trials", 6, 0)
    assert result.stopped >= 1 and result.best_params == {"x": 0}

    (parent,), children = study_runs(tracking_uri, name)
    assert len(counted(children)) == 6 and all(r.info.status == "FINISHED" for r in children)
    runs = by_x(children)
    csv_path = mlflow.artifacts.download_artifacts(
        run_id=parent.info.run_id, artifact_path="trials.csv", tracking_uri=tracking_uri,
        dst_path=str(tmp_path / "csv"))
    rows = {int(row["param.x"]): row
            for row in csv.DictReader(io.StringIO(Path(csv_path).read_text()))}
    assert (rows[5]["status"], rows[5]["stopped_at_step"]) == ("stopped", "1")
    assert (rows[0]["status"], rows[0]["stopped_at_step"]) == ("completed", "")
    assert "amtune.stopped_at_step" not in runs[0].data.tags  # the best is never stopped
    worst = runs[5]
    assert worst.data.tags["amtune.stopped_at_step"] == "1"
    assert worst.data.tags["amtune.attempts"] == "1"  # retries: 2, never retried
    assert not [k for k in worst.data.tags if k.startswith("amtune.attempt.")]
    history = MlflowClient(tracking_uri).get_metric_history(worst.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 6.0)]  # up to the stop, no further
    full = MlflowClient(tracking_uri).get_metric_history(runs[0].info.run_id, "loss")
    assert [m.step for m in full] == list(range(EPOCHS))

    states = trial_states(name)
    stopped = {f"trial-{int(r.data.tags['amtune.trial']):04d}": r.data.tags[
        "amtune.stopped_at_step"] for r in children if "amtune.stopped_at_step" in r.data.tags}
    assert len(stopped) == result.stopped
    for task_name, step in stopped.items():
        assert states[task_name] == ("COMPLETED", f"stopped at step {step}", 1)

    groups = [int(p.name) for p in pids.iterdir()]
    assert len(groups) == 6
    for pgid in groups:  # leaders and their grandchildren: nothing left behind
        assert survivors(pgid) == []


def swallowing(params: dict[str, Any], report: Any) -> float:
    """A trial that catches exceptions broadly: its stop holds all the same."""
    for epoch in range(1, EPOCHS + 1):
        try:
            report(epoch, loss=params["x"] + 1.0 / epoch)
        except Exception:  # what careless trials do
            continue
    return params["x"] + 1.0 / EPOCHS


def propagating(params: dict[str, Any], report: Any) -> float:
    for epoch in range(1, EPOCHS + 1):
        report(epoch, loss=params["x"] + 1.0 / epoch)
    return params["x"] + 1.0 / EPOCHS


def catching_stop(params: dict[str, Any], report: Any) -> float:
    """Catches the exported exception, cleans up and re-raises it, as documented."""
    try:
        return propagating(params, report)
    except TrialStopped:
        raise


@pytest.mark.parametrize("fn", ["swallowing", "propagating", "catching_stop"])
def test_function_trials_stopped_by_the_median_rule(prefect_api: str, tracking_uri: str,
                                                     fn: str) -> None:
    name = f"es-function-{fn}"
    result = study_flow(spec={
        "name": name,
        "objective": {"function": f"tests.flows.test_early_stopping_study:{fn}",
                      "metric": "loss"},
        "parameters": {"x": {"type": "int", "low": 0, "high": 5}},
        "strategy": {"name": "grid"},
        "budget": {"max_trials": 6, "max_parallel": 1},
        "trial": {"retries": 2, "retry_delay_s": 0},
        "early_stopping": {"rule": "median", "min_trials": 2},
        "tracking": {"uri": tracking_uri},
    })
    assert (result.trials, result.failed, result.stopped) == (6, 0, 4)
    assert result.best_params == {"x": 0}
    _, children = study_runs(tracking_uri, name)
    runs = by_x(children)
    c = MlflowClient(tracking_uri)
    for x in range(2, 6):
        r = runs[x]
        assert r.info.status == "FINISHED" and r.data.tags["amtune.stopped_at_step"] == "1"
        assert r.data.tags["amtune.attempts"] == "1"
        history = c.get_metric_history(r.info.run_id, "loss")
        assert [(m.step, m.value) for m in history] == [(1, x + 1.0)]
        assert r.data.metrics["loss"] == x + 1.0
    for x in (0, 1):
        assert "amtune.stopped_at_step" not in runs[x].data.tags


SLOW_EPOCHS, EPOCH_S = 12, 0.5  # a full trial: 6 s


def paced(params: dict[str, Any], report: Any) -> float:
    """x = 0 reports at once, then every 0.5 s, and is the best at every step; the others
    report their first (worse) epoch after 0.3 s, when x = 0's is known, and are stopped
    there under ASHA (rf 2). Not stopped, every trial would take 6 s."""
    x = params["x"]
    for epoch in range(1, SLOW_EPOCHS + 1):
        if x and epoch == 1:
            time.sleep(0.3)
        report(epoch, loss=x + 1.0 / epoch)
        time.sleep(EPOCH_S)
    return x + 1.0 / SLOW_EPOCHS


@pytest.mark.parametrize("rounds", ["async", "barrier"])
def test_a_stopped_trial_frees_its_slot_at_once(prefect_api: str, tracking_uri: str,
                                                rounds: str) -> None:
    name = f"es-slots-{rounds}"
    result = study_flow(spec={
        "name": name,
        "objective": {"function": "tests.flows.test_early_stopping_study:paced",
                      "metric": "loss"},
        "parameters": {"x": {"type": "int", "low": 0, "high": 5}},
        "strategy": {"name": "grid"},
        "budget": {"max_trials": 6, "max_parallel": 2},
        "trial": {"retries": 0},
        "execution": {"rounds": rounds},
        "early_stopping": {"rule": "asha", "reduction_factor": 2, "max_steps": SLOW_EPOCHS},
        "tracking": {"uri": tracking_uri},
    })
    assert (result.trials, result.stopped, result.best_params) == (6, 5, {"x": 0})
    runs = by_x(study_runs(tracking_uri, name)[1])
    start = {x: r.info.start_time / 1000 for x, r in runs.items()}
    end = {x: r.info.end_time / 1000 for x, r in runs.items()}
    full = SLOW_EPOCHS * EPOCH_S
    for x in range(1, 6):
        assert runs[x].data.tags["amtune.stopped_at_step"] == "1"
        assert end[x] - start[x] < full / 2  # the trial itself ended at the stop
    if rounds == "async":
        # trial 1's slot went to trial 2 while trial 0 was still running
        assert start[2] < end[0], (start, end)
    else:
        # barrier: trials 2 and 3 wait for trial 0, and their round, stopped at once,
        # hands over to trials 4 and 5 well before a full trial's time
        assert min(start[2], start[3]) >= end[0] - 0.05
        assert min(start[4], start[5]) - max(start[2], start[3]) < full, (start, end)


def test_the_progress_line_shows_stops() -> None:
    def rec(n: int, status: str, value: float, at: int | None = None) -> TrialRecord:
        return TrialRecord(n, 0, status, f"r{n}", {"x": n}, value=value, stopped_at=at)

    plain = io.StringIO()
    with Reporter("loss", 1.0, total=3, stream=plain, live=False) as r:
        r.trial(rec(0, "completed", 0.5))
        r.trial(rec(1, "stopped", 0.9, at=3))
    lines = plain.getvalue().splitlines()
    assert lines[-1] == "trial-0001 stopped at step 3 (loss=0.9)  [2/3, best 0.5]"
    live = io.StringIO()
    with Reporter("loss", 1.0, total=4, stream=live, live=True) as r:
        r.begin([rec(0, "completed", 0.5), rec(1, "stopped", 0.9, at=3)])  # a resume
        r.trial(rec(2, "stopped", 0.1, at=1))  # a stopped trial is never the best
    assert "trials 3/4  failed 0  stopped 2  best loss 0.5" in live.getvalue()


def test_study_killed_while_stopping_resumes_with_exactly_max_trials(
        prefect_api: str, tracking_uri: str, tmp_path: Path, amtune: Runner) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    name = "es-killed"
    path = tmp_path / "spec.yaml"
    spec = command_spec(name, tmp_path, tracking_uri,
                        parameters={"x": {"type": "int", "low": 0, "high": 9}},
                        budget={"max_trials": 8, "max_parallel": 2})
    path.write_text(yaml.safe_dump(spec))
    env = {"ES_PIDS": str(pids), "ES_SLEEP": "0.3"}
    from tests.conftest import cli_env

    MlflowClient(tracking_uri).search_experiments()  # the schema first: no two processes migrate it
    proc = subprocess.Popen([sys.executable, "-m", "amtune.flows.cli", "run", str(path)],
                            cwd=tmp_path, env=cli_env(prefect_api, **env),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = MlflowClient(tracking_uri)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            exp = client.get_experiment_by_name(name)
            runs = client.search_runs([exp.experiment_id]) if exp else []
            stopped = [r for r in runs if "amtune.stopped_at_step" in r.data.tags]
            if stopped and any(r.info.status == "RUNNING" for r in runs):
                break
        assert proc.poll() is None, "the study ended before a trial was stopped"
        os.kill(proc.pid, signal.SIGKILL)  # mid-study: trials in flight, some stopped
    finally:
        proc.wait()
    out = amtune("run", str(path), prefect_api=prefect_api, **env)
    assert out.returncode == 0, out.stderr
    _, children = study_runs(tracking_uri, name)
    assert len(counted(children)) == 8
    assert any(r.info.status == "KILLED" for r in children)
    assert any("amtune.stopped_at_step" in r.data.tags for r in counted(children))
    for pgid in (int(p.name) for p in pids.iterdir()):
        assert survivors(pgid) == []
