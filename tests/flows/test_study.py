"""The study flow in-process on real Prefect (shared ephemeral API) and real MLflow."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from prefect import tags
from prefect.artifacts import Artifact

from amtune.flows.study import study_flow
from amtune.flows.summary import artifact_key
from tests.flows.helpers import counted, spec, study_runs
from tests.flows.objectives import loss


def test_function_study_tracks_every_trial(prefect_api: str, tracking_uri: str) -> None:
    s = spec("fn-study", "tests.flows.objectives:quadratic",
             tracking={"uri": tracking_uri})
    result = study_flow(spec=s)
    assert (result.reason, result.trials, result.failed) == ("max_trials", 6, 0)

    parents, children = study_runs(tracking_uri, "fn-study")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    assert len(children) == 6
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}
    assert sorted(int(r.data.tags["amtune.trial"]) for r in children) == list(range(6))
    assert sorted(r.info.run_name for r in children) == [f"trial-{i:04d}" for i in range(6)]
    c = MlflowClient(tracking_uri)
    for r in children:
        assert r.info.status == "FINISHED"
        p = r.data.params
        params = {"x": float(p["x"]), "y": int(p["y"]), "kind": p["kind"]}
        assert -5 <= params["x"] <= 5 and 0 <= params["y"] <= 3 and params["kind"] in "ab"
        assert math.isclose(r.data.metrics["loss"], loss(params))
        steps = [(m.step, m.value) for m in c.get_metric_history(r.info.run_id, "progress")]
        assert [s for s, _ in sorted(steps)] == [0, 1, 2]
        assert r.data.tags["amtune.attempts"] == "1"
        assert r.data.tags["amtune.strategy"] == "random"
    best = min(r.data.metrics["loss"] for r in children)
    assert math.isclose(parent.data.metrics["best_loss"], best)
    assert math.isclose(result.best_value, best)

    # Prefect artifacts, under keys of this study's own: the top trials and the progress.
    top = Artifact.get(artifact_key("top", "fn-study"))
    assert top is not None and top.type == "table"
    rows = json.loads(top.data) if isinstance(top.data, str) else top.data
    assert rows[0]["trial"] == int(parent.data.tags["amtune.best_trial"])
    assert math.isclose(rows[0]["value"], best)
    assert [r["value"] for r in rows] == sorted(r.data.metrics["loss"] for r in children)
    progress = Artifact.get(artifact_key("progress", "fn-study"))
    assert progress is not None and float(progress.data) == 100.0
    assert parent.data.tags["amtune.completion_reason"] == "max_trials"
    arts = {a.path for a in c.list_artifacts(parent.info.run_id)}
    assert {"trials.csv", "plots", "report.html", "spec.json"} <= arts
    exp = c.get_experiment_by_name("fn-study")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"


def task_run_states(tag: str, expected: int) -> dict[str, str]:
    """Final task-run state per trial task name, read from the Prefect API.

    Task-run states reach the API as events, so they are polled until every
    expected trial task has a final state (the wait is bounded, not asserted on).
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterTags

    deadline = time.monotonic() + 60
    states: dict[str, str] = {}
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_task_runs(
                task_run_filter=TaskRunFilter(tags=TaskRunFilterTags(all_=[tag])))
            states = {r.name: r.state.type.value for r in runs
                      if r.name.startswith("trial-") and r.state and r.state.is_final()}
            if len(states) >= expected:
                break
            time.sleep(0.5)
    return states


def test_retry_once_then_succeed(prefect_api: str, tracking_uri: str, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMTUNE_TEST_DIR", str(tmp_path))
    s = spec("flaky", "tests.flows.objectives:flaky_once", tracking={"uri": tracking_uri},
             budget={"max_trials": 3, "max_parallel": 3}, trial={"retries": 1})
    with tags("flaky-study"):
        result = study_flow(spec=s)
    assert (result.trials, result.failed) == (3, 0)
    _, children = study_runs(tracking_uri, "flaky")
    assert len(children) == 3
    for r in children:
        assert r.info.status == "FINISHED"
        assert r.data.tags["amtune.attempts"] == "2"
        assert r.data.tags["amtune.attempt.1.cause"] == "exception"
        assert "transient failure" in r.data.tags["amtune.attempt.1.detail"]
    # Prefect agrees: each trial task run ends Completed (after one retry)
    assert task_run_states("flaky-study", 3) == {f"trial-{i:04d}": "COMPLETED" for i in range(3)}


def test_always_failing_trials_fail_but_study_completes(prefect_api: str,
                                                        tracking_uri: str) -> None:
    s = spec("broken", "tests.flows.objectives:always_fails", tracking={"uri": tracking_uri},
             budget={"max_trials": 4, "max_parallel": 2}, trial={"retries": 1})
    with tags("broken-study"):
        result = study_flow(spec=s)
    assert (result.reason, result.trials, result.failed) == ("max_trials", 4, 4)
    parents, children = study_runs(tracking_uri, "broken")
    assert parents[0].info.status == "FINISHED"
    assert len(counted(children)) == 4
    for r in children:
        assert r.info.status == "FAILED"
        assert r.data.tags["amtune.attempts"] == "2"
        assert r.data.tags["amtune.reason"].startswith("exception: ValueError")
        assert r.data.tags["amtune.attempt.1.cause"] == "exception"
        assert r.data.tags["amtune.attempt.2.cause"] == "exception"
    # Prefect agrees: every trial task run ends Failed, the study flow itself completed
    assert task_run_states("broken-study", 4) == {f"trial-{i:04d}": "FAILED" for i in range(4)}
