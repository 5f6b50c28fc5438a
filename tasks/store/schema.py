"""The MLflow layout of a study, named once: tag keys, statuses, and how a run decodes.

Layout (DESIGN.md): one experiment per study, a parent run tagged ``amtune.study`` /
``amtune.role=study``, and one child run per trial whose ``mlflow.parentRunId`` tag
is set explicitly (``nested=True`` inside worker threads silently makes top-level
runs). Every ``amtune.*`` key that any module reads or writes is defined here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from amtune.strategies import SearchSpace, Trial

P = "amtune."
PARENT = "mlflow.parentRunId"
STUDY = P + "study"
ROLE = P + "role"
SPACE = P + "space"
STRATEGY = P + "strategy"
METRIC = P + "metric"
DIRECTION = P + "direction"
TRIAL = P + "trial"
ROUND = P + "round"
ATTEMPTS = P + "attempts"
DURATION = P + "duration_s"
REASON = P + "reason"
STOPPED_AT = P + "stopped_at_step"
PID = P + "pid"
HOST = P + "host"
TOKEN = P + "trial_token"  # tells a trial's process group from one that reused its id
LEASE = P + "lease"
COMPLETION = P + "completion_reason"
N_TRIALS = P + "trials"
N_FAILED = P + "failed"
BEST_TRIAL = P + "best_trial"
BEST_TRIAL_RUN = "best_trial"  # the best trial's run id, to follow in the UI
BEST_PARAMS = P + "best_params"
BEST_PARAM = "best."  # + parameter name: one tag per best param
WARM_SOURCE = P + "warm_start"
WARM_STUDIES = P + "warm_start.studies"
WARM_TRIALS = P + "warm_start.trials"
# Marks a model-training experiment for MLflow 3 UIs that read it. 3.17's UI ignores it and
# follows its GenAI / Model training switch instead: the CLI prints a link that sets it.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def attempt_tag(attempt: int, key: str) -> str:
    """``amtune.attempt.<k>.<key>``: why attempt k failed, kept even if a retry succeeds."""
    return f"{P}attempt.{attempt}.{key}"


STATUS = {"FINISHED": "completed", "FAILED": "failed", "RUNNING": "running",
          "KILLED": "killed", "SCHEDULED": "running"}
COUNTED = ("completed", "failed", "stopped")  # statuses that use the trial budget


@dataclass
class TrialRecord:
    """One trial as MLflow holds it, params decoded to their declared types."""

    number: int
    round: int
    status: str  # completed | failed | stopped | running | killed
    run_id: str
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    value: float | None = None  # the objective metric as the user sees it
    attempts: int = 1
    duration_s: float | None = None
    reason: str | None = None
    stopped_at: int | None = None  # early stopping: the last step it reached
    start_ms: int | None = None
    # to_trials' (sign, Trial), made once: a finished record never changes, and a
    # study's history is converted for every proposal (7 ms at 5,000 trials, made anew)
    _trial: tuple[float, Trial | None] | None = field(default=None, init=False, repr=False,
                                           compare=False)

    @property
    def finished(self) -> bool:
        return self.status in COUNTED


@dataclass(frozen=True)
class StudyRun:
    run_id: str
    experiment_id: str
    status: str
    tags: Mapping[str, str]
    start_ms: int = 0

    @property
    def name(self) -> str:
        return self.tags.get(STUDY, self.run_id)

    @property
    def space(self) -> dict[str, Any] | None:
        raw = self.tags.get(SPACE)
        return None if raw is None else json.loads(raw)

    @property
    def sign(self) -> float:
        return -1.0 if self.tags.get(DIRECTION) == "maximize" else 1.0


def study_run(run: Any) -> StudyRun:
    return StudyRun(run.info.run_id, run.info.experiment_id, run.info.status,
                    dict(run.data.tags), int(run.info.start_time or 0))


def study_filter(study: str) -> str:
    return f"tags.`{STUDY}` = '{study}' and tags.`{ROLE}` = 'study'"


def decode(run: Any, space: SearchSpace, metric: str) -> TrialRecord:
    """A trial run as a record. Params are logged when a trial starts, so every run has them."""
    tags, info = run.data.tags, run.info
    status = STATUS.get(info.status, "killed")
    if status == "completed" and STOPPED_AT in tags:
        status = "stopped"
    params: dict[str, Any] = {}
    if set(space.names) <= set(run.data.params):
        params = space.coerce(run.data.params)
    metrics = dict(run.data.metrics)
    value = metrics.get(metric) if status in ("completed", "stopped") else None
    return TrialRecord(
        number=int(tags.get(TRIAL, -1)), round=int(tags.get(ROUND, 0)),
        status=status, run_id=info.run_id, params=params, metrics=metrics, value=value,
        attempts=int(tags.get(ATTEMPTS, 1)),
        duration_s=float(tags[DURATION]) if DURATION in tags else None,
        reason=tags.get(REASON),
        stopped_at=int(tags[STOPPED_AT]) if STOPPED_AT in tags else None,
        start_ms=info.start_time)


def counted(records: list[TrialRecord]) -> list[TrialRecord]:
    """Trials that use budget: completed, failed and stopped (killed runs never finished)."""
    return [r for r in records if r.status in COUNTED]


def best_trial(records: list[TrialRecord], sign: float) -> TrialRecord | None:
    """The one definition of "best": the lowest ``sign * value`` among completed trials.

    Stopped trials are left out: their value is where they were stopped, not a result.
    Ties go to the earlier trial.
    """
    done = [r for r in records if r.status == "completed" and r.value is not None]
    if not done:
        return None
    return min(done, key=lambda r: (sign * r.value, r.number))  # type: ignore[operator]


def ranked(records: list[TrialRecord], sign: float) -> list[TrialRecord]:
    """Completed trials, best first (ties: earlier trial first), as ``best_trial`` orders them."""
    done = [r for r in records if r.status == "completed" and r.value is not None]
    return sorted(done, key=lambda r: (sign * r.value, r.number))  # type: ignore[operator]


def to_trials(records: list[TrialRecord], sign: float) -> list[Trial]:
    """MLflow records to the strategy's minimised ``Trial`` history, in trial order.

    Running trials are included as pending, so a strategy never proposes them again.
    A finished record's Trial is made once and kept on the record, so proposals
    see the same Trial objects round after round (strategies key them once too).
    """
    out: list[Trial] = []
    for r in records:
        memo = r._trial
        if memo is not None and memo[0] == sign:
            t = memo[1]
        else:
            t = _trial(r, sign)
            if r.finished:
                r._trial = (sign, t)
        if t is not None:
            out.append(t)
    return out


def _trial(r: TrialRecord, sign: float) -> Trial | None:
    meta = {"number": r.number}
    if r.status == "completed" and r.value is not None:
        return Trial(r.params, sign * r.value, "completed", meta)
    if not r.params:
        return None
    if r.status == "stopped" and r.value is not None:
        return Trial(r.params, sign * r.value, _stopped(), meta)
    if r.status in ("failed", "stopped"):
        return Trial(r.params, None, "failed", meta)
    if r.status == "running":
        return Trial(r.params, None, "running", meta)
    return None


def _stopped() -> Any:
    """``stopped`` where the strategies know it, else ``failed`` (a point not to repeat)."""
    from amtune.strategies.base import STATUSES

    return "stopped" if "stopped" in STATUSES else "failed"
