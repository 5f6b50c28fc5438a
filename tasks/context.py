"""What the study flow hands its tasks: small, picklable, no live clients."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from amtune.strategies import SearchSpace, Trial
from amtune.tasks.store.tracking import TrialRecord


@dataclass(frozen=True)
class StudyHandle:
    """Where a study lives in MLflow and how its trials run."""

    uri: str
    experiment_id: str
    parent_id: str
    study: str
    space: dict[str, Any]  # canonical SearchSpace dict
    metric: str
    sign: float  # 1.0 to minimise, -1.0 to maximise (see StudySpec.sign)
    strategy: str
    strategy_options: dict[str, Any]
    seed: int
    objective: Any  # the spec's Objective model (duck-typed by run_objective)
    retries: int = 0
    retry_delay_s: float = 1.0
    retry_on: tuple[str, ...] | None = None
    timeout_s: float | None = None
    prior: tuple[Trial, ...] = ()  # warm-start history: given to the strategy, never counted
    task_runner: str = "threads"  # threads | dask (flows/execution.py)
    dask_address: str | None = None

    @property
    def search_space(self) -> SearchSpace:
        return SearchSpace.from_dict(self.space)


@dataclass(frozen=True)
class PlannedTrial:
    number: int
    round: int
    params: dict[str, Any]
    run_id: str


def counted(records: list[TrialRecord]) -> list[TrialRecord]:
    """Trials that use budget: completed and failed (killed runs were never finished)."""
    return [r for r in records if r.status in ("completed", "failed")]


def to_trials(records: list[TrialRecord], sign: float) -> list[Trial]:
    """MLflow records to the strategy's minimised ``Trial`` history, in trial order."""
    out: list[Trial] = []
    for r in counted(records):
        if r.status == "completed" and r.value is not None:
            out.append(Trial(r.params, sign * r.value, "completed", {"number": r.number}))
        elif r.params:
            out.append(Trial(r.params, None, "failed", {"number": r.number}))
    return out
