"""Reading back what a study left in MLflow, for assertions."""

from __future__ import annotations

from typing import Any

from mlflow.entities import Run
from mlflow.tracking import MlflowClient


def study_runs(uri: str, experiment: str) -> tuple[list[Run], list[Run]]:
    """(parent runs, child runs) of an experiment."""
    c = MlflowClient(uri)
    exp = c.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment!r}"
    runs = c.search_runs([exp.experiment_id], max_results=10000)
    parents = [r for r in runs if r.data.tags.get("amtune.role") == "study"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


def counted(children: list[Run]) -> list[Run]:
    return [r for r in children if r.info.status in ("FINISHED", "FAILED")]


def spec(name: str, function: str, **over: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "name": name,
        "objective": {"function": function, "metric": "loss"},
        "parameters": {
            "x": {"type": "float", "low": -5.0, "high": 5.0},
            "y": {"type": "int", "low": 0, "high": 3},
            "kind": {"type": "categorical", "values": ["a", "b"]},
        },
        "strategy": {"name": "random"},
        "budget": {"max_trials": 6, "max_parallel": 3},
        "trial": {"retries": 0, "retry_delay_s": 0},
        "seed": 1,
    }
    for k, v in over.items():
        d[k] = {**d[k], **v} if isinstance(d.get(k), dict) and isinstance(v, dict) else v
    return d
