"""The Prefect task that runs one trial: Prefect retries it, MLflow records it.

The task decides for itself whether a failure is final (last attempt, or a cause
that ``trial.retry_on`` does not cover) and says so on the exception it raises, so
Prefect's retry hook needs no shared state and the MLflow run and the Prefect
task-run state always agree: a retried attempt leaves a tag and the run RUNNING;
the final failure makes the run FAILED with its reason and the task run Failed.

Early stopping (``early_stopping:`` in the spec, ``tasks/stopping.py``): a trial the
rule stops is no failure. Its run is FINISHED with ``amtune.stopped_at_step`` and its
metrics as reported up to the stop, it counts against ``max_trials``, is never
retried, and its task run ends Completed with the message "stopped at step k".
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from mlflow.exceptions import MlflowException
from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.context import TaskRunContext
from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger
from prefect.states import Completed, State
from prefect.tasks import exponential_backoff

from amtune.tasks.runners.failures import TrialFailure
from amtune.tasks.runners.objective import run_objective
from amtune.tasks.runners.outcome import Report
from amtune.tasks.stopping import StoppingReport, board
from amtune.tasks.store.outage import TrackingOutage
from amtune.tasks.store.schema import TrialRecord
from amtune.tasks.store.study import StudyStore

if TYPE_CHECKING:
    from amtune.flows.spec import StudySpec


def _retry_decided_by_task(task: Task[..., Any], task_run: TaskRun, state: State) -> bool:
    """Prefect's retry hook: the decision the attempt put on its exception."""
    return bool(getattr(state.data, "retry", False))


def _attempt() -> int:
    ctx = TaskRunContext.get()
    return 1 if ctx is None else max(1, ctx.task_run.run_count)


@task(name="run_trial", task_run_name="trial-{number:04d}", cache_policy=NO_CACHE,
      persist_result=False, retry_condition_fn=_retry_decided_by_task)
def run_trial(spec: StudySpec, store: StudyStore, number: int, round_: int, run_id: str,
              params: dict[str, Any]) -> TrialRecord | State[TrialRecord]:
    """Run one attempt; record success, an early stop or failure on the trial's MLflow run."""
    attempt = _attempt()
    record = TrialRecord(number, round_, "running", run_id, dict(params), attempts=attempt)
    buffer = store.buffer(run_id)
    stopper = _stopper(spec, store, number, buffer)
    start = time.monotonic()
    try:
        try:
            outcome = run_objective(spec.objective, params, report=stopper or buffer,
                                    timeout_s=spec.trial.timeout_s,
                                    on_start=lambda p: store.mark_process(run_id, p),
                                    stop=stopper.stopped if stopper else None)
        except MlflowException as exc:  # an intermediate flush failed
            raise TrialFailure("tracking_error", f"{type(exc).__name__}: {exc}") from exc
        record.duration_s = time.monotonic() - start
        record.status, record.metrics = "completed", dict(outcome.metrics)
        if outcome.stopped_at is not None:  # the values as logged up to the stop
            record.status, record.stopped_at = "stopped", outcome.stopped_at
            record.metrics = {k: v for k, (_, v) in buffer.last.items()}
        record.value = record.metrics.get(spec.objective.metric)
        try:
            store.finish_trial(record, buffer, output=outcome.output,
                               stopped_at=record.stopped_at)
        except MlflowException as exc:  # a permanent write error: the trial cannot count
            raise TrialFailure("tracking_error", f"{type(exc).__name__}: {exc}") from exc
        if stopper is not None:
            stopper.board.end(number, record.status)
    except TrackingOutage:
        raise  # the study stops; the run stays RUNNING and is run again on resume
    except Exception as exc:
        failure = exc if isinstance(exc, TrialFailure) else TrialFailure(
            "exception", f"internal error: {type(exc).__name__}: {exc}")
        record.duration_s = time.monotonic() - start
        retry = attempt <= spec.trial.retries and (
            spec.trial.retry_on is None or failure.matches(spec.trial.retry_on))
        record.status, record.metrics, record.value = "failed", {}, None
        record.reason = (f"{failure.cause}: {failure.detail}" if failure.detail
                         else failure.cause)
        failure.retry = retry  # read by _retry_decided_by_task
        # One line per attempt for the Prefect UI (the console stays quiet: defaults.py).
        _log("attempt %d of %d failed after %.2f s, %s: %s with %s", attempt,
             spec.trial.retries + 1, record.duration_s, "retrying" if retry else "final",
             record.reason, params)
        store.fail_attempt(record, buffer, failure_tags=failure.as_tags(), final=not retry,
                           output=failure.output)
        if stopper is not None:
            stopper.board.end(number, None if retry else "failed")
        raise failure from None if failure is exc else exc
    _log("%s=%.6g in %.2f s (attempt %d%s) with %s", spec.objective.metric,
         record.value if record.value is not None else float("nan"), record.duration_s,
         attempt, f", stopped at step {record.stopped_at}" if record.stopped_at is not None
         else "", params)
    if record.status == "stopped":  # Completed, and Prefect's UI says why it ended early
        return Completed(data=record, message=f"stopped at step {record.stopped_at}")
    return record


def _log(msg: str, *args: object) -> None:
    """One INFO line to the Prefect API (the console stays quiet: flows/defaults.py);
    nothing outside a run, so logging can never fail a trial."""
    try:
        logger = get_run_logger()
    except MissingContextError:
        return
    logger.info(msg, *args)


def _stopper(spec: StudySpec, store: StudyStore, number: int,
             buffer: Report) -> StoppingReport | None:
    """The attempt's report callback under the spec's rule (None: no early stopping)."""
    if spec.early_stopping is None:
        return None
    offset = 1 if spec.objective.command is not None else 0  # command steps count from 0
    shared = board(store, spec.objective.metric, spec.sign, offset)
    return StoppingReport(buffer, spec.early_stopping.make(), shared, number)


def trial_task(spec: StudySpec) -> Task[..., TrialRecord]:
    """``run_trial`` with the spec's retries and exponential backoff (with jitter)."""
    t = spec.trial
    if t.retries == 0:
        return run_trial
    return run_trial.with_options(
        retries=t.retries,
        retry_delay_seconds=exponential_backoff(backoff_factor=t.retry_delay_s),
        retry_jitter_factor=0.2 if t.retry_delay_s > 0 else None,
    )
