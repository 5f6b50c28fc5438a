"""The Prefect task that runs one trial: Prefect retries it, MLflow records it.

The task decides for itself whether a failure is final (last attempt, or a cause
that ``trial.retry_on`` does not cover) so the MLflow run and the Prefect task-run
state always agree: a retried attempt leaves a tag and the run RUNNING; the final
failure makes the run FAILED with its reason and the task run Failed.
"""

from __future__ import annotations

import threading
import time
from typing import Any
from uuid import UUID

from amtune.tasks.context import StudyHandle
from amtune.tasks.runners.failures import TrialFailure
from amtune.tasks.runners.objective import run_objective
from amtune.tasks.store import tracking
from amtune.tasks.store.tracking import TrialRecord
from mlflow.exceptions import MlflowException
from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.context import TaskRunContext
from prefect.states import State
from prefect.tasks import exponential_backoff

_will_retry: dict[UUID, bool] = {}
_lock = threading.Lock()


def _retry_decided_by_task(task: Task[..., Any], task_run: TaskRun, state: State) -> bool:
    """Prefect's retry hook: repeat the decision the task recorded for this attempt."""
    with _lock:
        return _will_retry.pop(task_run.id, False)


def _decide_retry(task_run_id: UUID | None, retry: bool) -> None:
    """Record this attempt's retry decision for ``_retry_decided_by_task``.

    A function of its own, not inline: ``run_trial`` is pickled by value to run on
    Dask workers, and a function that names the lock directly cannot be pickled.
    """
    if task_run_id is not None:
        with _lock:
            _will_retry[task_run_id] = retry


def _attempt() -> tuple[UUID | None, int]:
    ctx = TaskRunContext.get()
    if ctx is None:  # called outside Prefect (unit use): a single attempt
        return None, 1
    return ctx.task_run.id, max(1, ctx.task_run.run_count)


@task(name="run_trial", task_run_name="trial-{number:04d}", cache_policy=NO_CACHE,
      persist_result=False, retry_condition_fn=_retry_decided_by_task)
def run_trial(handle: StudyHandle, number: int, round_: int, run_id: str,
              params: dict[str, Any]) -> TrialRecord:
    """Run one attempt; record success or failure on the trial's MLflow run."""
    task_run_id, attempt = _attempt()
    buffer = tracking.MetricBuffer(handle.uri, run_id)
    start = time.monotonic()
    try:
        try:
            outcome = run_objective(handle.objective, params, report=buffer,
                                    timeout_s=handle.timeout_s)
        except MlflowException as exc:  # an intermediate flush failed
            raise TrialFailure("tracking_error", f"{type(exc).__name__}: {exc}") from exc
        duration = time.monotonic() - start
        tracking.finish_trial(buffer, params, outcome.metrics, attempts=attempt,
                              duration_s=duration, output=outcome.output)
    except TrialFailure as failure:
        duration = time.monotonic() - start
        retry = attempt <= handle.retries and (
            handle.retry_on is None or failure.matches(handle.retry_on))
        _decide_retry(task_run_id, retry)
        tracking.record_failure(buffer, params, attempt=attempt, failure_tags=failure.as_tags(),
                                duration_s=duration, final=not retry, output=failure.output)
        raise
    return TrialRecord(
        number=number, round=round_, status="completed", run_id=run_id, params=dict(params),
        metrics=dict(outcome.metrics), value=outcome.metrics.get(handle.objective.metric),
        attempts=attempt, duration_s=duration)


def trial_task(handle: StudyHandle) -> Task[..., TrialRecord]:
    """``run_trial`` with the spec's retries and exponential backoff (with jitter)."""
    if handle.retries == 0:
        return run_trial
    return run_trial.with_options(
        retries=handle.retries,
        retry_delay_seconds=exponential_backoff(backoff_factor=handle.retry_delay_s),
        retry_jitter_factor=0.2 if handle.retry_delay_s > 0 else None,
    )
