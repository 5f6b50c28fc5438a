"""Read a study back from MLflow in the layout of DESIGN.md, independently of amtune.

The chaos checks deliberately do not reuse amtune's own reader: a bug there would
hide the very inconsistency the checks look for. Only MLflow's client is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

METRIC = "loss"


@dataclass(frozen=True)
class TrialRun:
    number: int
    status: str
    params_key: tuple[tuple[str, str], ...]
    value: float | None
    cause: str | None  # the final reason of a FAILED trial
    attempts: int
    attempt_causes: dict[int, str]  # attempt number -> cause, for every failed attempt
    tags: dict[str, str]


@dataclass(frozen=True)
class StudyRecord:
    parent_status: str
    parent_tags: dict[str, str]
    best_value: float | None
    trials: list[TrialRun]


def _number(run: Any) -> int:
    if "amtune.trial" in run.data.tags:
        return int(run.data.tags["amtune.trial"])
    return int((run.info.run_name or "").removeprefix("trial-"))


def _attempt_causes(tags: dict[str, str]) -> dict[int, str]:
    out: dict[int, str] = {}
    for key, value in tags.items():
        parts = key.split(".")  # amtune.attempt.<k>.cause
        if len(parts) == 4 and parts[:2] == ["amtune", "attempt"] and parts[3] == "cause":
            out[int(parts[2])] = value
    return out


def _best(parent: Any) -> float | None:
    metrics, params, tags = parent.data.metrics, parent.data.params, parent.data.tags
    for source in (metrics, params, tags):
        for key in (
            f"best_{METRIC}",
            "best_value",
            "amtune.best_value",
            "best.value",
            f"best.{METRIC}",
            f"amtune.best.{METRIC}",
        ):
            if key in source and source[key] not in ("", "None"):
                return float(source[key])
    return None


def read_study(tracking_uri: str, name: str) -> StudyRecord | None:
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return None
    runs = client.search_runs(
        [experiment.experiment_id], run_view_type=ViewType.ALL, max_results=50000
    )
    parents = [
        r for r in runs if "amtune.study" in r.data.tags and "mlflow.parentRunId" not in r.data.tags
    ]
    if len(parents) != 1:
        return None
    parent = parents[0]
    trials = [
        TrialRun(
            number=_number(r),
            status=r.info.status,
            params_key=tuple(sorted(r.data.params.items())),
            value=r.data.metrics.get(METRIC),
            cause=r.data.tags.get("amtune.reason") or None,
            attempts=int(r.data.tags.get("amtune.attempts", 1)),
            attempt_causes=_attempt_causes(r.data.tags),
            tags=dict(r.data.tags),
        )
        for r in runs
        if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
    ]
    return StudyRecord(
        parent.info.status,
        dict(parent.data.tags),
        _best(parent),
        sorted(trials, key=lambda t: t.number),
    )
