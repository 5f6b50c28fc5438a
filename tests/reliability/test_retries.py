"""Cause-aware retries end to end: real Prefect retries, every attempt visible in MLflow."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from amtune.flows.spec import validate_spec
from amtune.flows.study import study_flow
from amtune.tasks.trial import trial_task

SCRIPT = Path(__file__).with_name("planned_trial.py")


def planned_study(
    name: str, tmp: Path, uri: str, plan: dict[str, list[str]], **trial: Any
) -> dict[str, Any]:
    plan_path = tmp / f"{name}.json"
    plan_path.write_text(json.dumps(plan))
    return {
        "name": name,
        "objective": {
            "command": [sys.executable, str(SCRIPT), str(plan_path)],
            "metric": "loss",
            "metrics": [{"name": "loss", "regex": r"loss=(\S+)"}],
        },
        "parameters": {"mode": {"type": "categorical", "values": sorted(plan)}},
        "strategy": {"name": "random"},
        "budget": {"max_trials": len(plan), "max_parallel": 2},
        "trial": {"retry_delay_s": 0, "timeout_s": 1.0, **trial},
        "seed": 3,
        "tracking": {"uri": uri},
    }


def trials_by_mode(uri: str, name: str) -> dict[str, Any]:
    c = MlflowClient(uri)
    exp = c.get_experiment_by_name(name)
    runs = c.search_runs([exp.experiment_id], "tags.`amtune.trial` != ''")
    by_mode: dict[str, Any] = {}
    for r in runs:
        assert r.data.params["mode"] not in by_mode, "a point was proposed twice"
        by_mode[r.data.params["mode"]] = r
    return by_mode


def causes(run: Any) -> list[str]:
    n = int(run.data.tags["amtune.attempts"])
    return [run.data.tags.get(f"amtune.attempt.{k}.cause", "-") for k in range(1, n + 1)]


def durations(run: Any) -> list[float]:
    tags = run.data.tags
    keys = sorted(k for k in tags if k.startswith("amtune.attempt.") and k.endswith(".duration_s"))
    return [float(tags[k]) for k in keys]


def test_every_cause_is_retried_and_recorded(
    prefect_api: str, tracking_uri: str, tmp_path: Path
) -> None:
    plan = {
        "a": ["timeout", "exit3", "ok"],  # recovers on the third attempt
        "b": ["exit3"],  # fails the same way every time
        "c": ["nan", "ok"],
        "d": ["nometric", "sigkill", "raise"],
    }
    s = planned_study("retry-all", tmp_path, tracking_uri, plan, retries=2)
    result = study_flow(spec=s)
    assert (result.trials, result.failed) == (4, 2)
    runs = trials_by_mode(tracking_uri, "retry-all")
    assert sorted(runs) == ["a", "b", "c", "d"]  # the failed points were not proposed again
    status = {m: r.info.status for m, r in runs.items()}
    assert status == {"a": "FINISHED", "b": "FAILED", "c": "FINISHED", "d": "FAILED"}
    # a completed run keeps the causes of the attempts that failed before it
    assert causes(runs["a"]) == ["timeout", "exit_code", "-"]
    assert runs["a"].data.tags["amtune.attempt.2.exit_code"] == "3"
    assert causes(runs["c"]) == ["invalid_metric", "-"]
    # a FAILED run carries the cause of every attempt, and its final reason
    assert causes(runs["b"]) == ["exit_code"] * 3
    assert runs["b"].data.tags["amtune.reason"].startswith("exit_code")
    assert causes(runs["d"]) == ["metric_missing", "signal", "exit_code"]
    assert runs["d"].data.tags["amtune.attempt.2.signal"] == "SIGKILL"
    assert runs["d"].data.tags["amtune.reason"].startswith("exit_code")
    for mode, n_failed in (("a", 2), ("b", 3), ("c", 1), ("d", 3)):
        assert len(durations(runs[mode])) == n_failed
        assert all(d >= 0 for d in durations(runs[mode]))
    assert float(runs["a"].data.tags["amtune.attempt.1.duration_s"]) >= 1.0  # the timeout
    assert runs["a"].data.metrics["loss"] == pytest.approx(0.1)


def test_retry_on_narrows_what_is_retried(
    prefect_api: str, tracking_uri: str, tmp_path: Path
) -> None:
    plan = {
        "a": ["exit3", "ok"],  # exit code 3 is not listed: fails at once
        "b": ["timeout", "ok"],  # listed cause
        "c": ["exit4", "ok"],  # listed exit code
        "d": ["sigkill", "ok"],  # not listed
    }
    s = planned_study(
        "retry-some", tmp_path, tracking_uri, plan, retries=3, retry_on=["timeout", "exit_code:4"]
    )
    result = study_flow(spec=s)
    assert (result.trials, result.failed) == (4, 2)
    runs = trials_by_mode(tracking_uri, "retry-some")
    assert {m: (r.info.status, causes(r)) for m, r in runs.items()} == {
        "a": ("FAILED", ["exit_code"]),
        "b": ("FINISHED", ["timeout", "-"]),
        "c": ("FINISHED", ["exit_code", "-"]),
        "d": ("FAILED", ["signal"]),
    }
    for mode in "ad":  # one attempt only: the attempt log of the trial agrees
        assert len((tmp_path / f"attempts-{mode}.log").read_text().splitlines()) == 1


def test_retries_back_off_exponentially_with_jitter(tmp_path: Path) -> None:
    s = validate_spec(planned_study("backoff", tmp_path, "sqlite:///unused.db", {"a": ["ok"]},
                                    retries=3, retry_delay_s=2.0))
    task = trial_task(s)
    assert task.retries == 3
    assert task.retry_delay_seconds == [2.0, 4.0, 8.0]
    assert task.retry_jitter_factor is not None and task.retry_jitter_factor > 0
