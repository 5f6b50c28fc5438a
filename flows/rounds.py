"""One round: read the history from MLflow, propose a batch, run it in parallel.

A failed trial never fails its round: its task run ends Failed (so Prefect and
MLflow agree) and the round records it as a failed trial instead of raising.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from amtune.flows import progress
from amtune.flows.execution import make_task_runner
from amtune.tasks.context import PlannedTrial, StudyHandle
from amtune.tasks.propose import load_history, propose_batch
from amtune.tasks.runners.failures import TrialFailure
from amtune.tasks.store.lease import LeaseLost
from amtune.tasks.store.outage import TrackingOutage
from amtune.tasks.store.tracking import TrialRecord
from amtune.tasks.trial import trial_task
from prefect import flow, unmapped
from prefect.context import SettingsContext, get_settings_context
from prefect.futures import PrefectFuture, as_completed
from prefect.settings import Settings


@dataclass
class RoundResult:
    history: list[TrialRecord]  # as read at the start of the round, plus this round's trials
    proposed: int
    trials: list[TrialRecord] = field(default_factory=list)


@flow(name="round", validate_parameters=False, persist_result=False, log_prints=False)
def round_flow(handle: StudyHandle, k: int, n: int) -> RoundResult:
    history = load_history(handle)
    planned = propose_batch(handle, history, n, k)
    if not planned:
        return RoundResult(history, 0)
    futures = trial_task(handle).map(
        unmapped(handle), [p.number for p in planned], unmapped(k),
        [p.run_id for p in planned], [p.params for p in planned])
    by_future = {id(f): p for f, p in zip(futures, planned, strict=True)}
    done: list[TrialRecord] = []
    for fut in as_completed(list(futures)):
        rec = _record(fut, by_future[id(fut)])
        done.append(rec)
        progress.trial_done(rec)
    done.sort(key=lambda r: r.number)
    return RoundResult(history + done, len(planned), done)


def _record(fut: PrefectFuture[TrialRecord], plan: PlannedTrial) -> TrialRecord:
    """The trial's record; a finally failed task run becomes a failed trial, not an error."""
    try:
        return fut.result()
    except (TrackingOutage, LeaseLost):  # the study cannot go on; the trial is not at fault
        raise
    except Exception as err:  # the task run is Failed; MLflow already has the FAILED run
        reason = str(err) if isinstance(err, TrialFailure) else f"{type(err).__name__}: {err}"
    return TrialRecord(number=plan.number, round=plan.round, status="failed", run_id=plan.run_id,
                       params=dict(plan.params), reason=reason)


def run_round(handle: StudyHandle, k: int, n: int, max_parallel: int) -> RoundResult:
    """Run round ``k`` as a subflow named ``round-<k>`` with at most ``max_parallel`` trials.

    Without its flow-run heartbeat: Prefect joins the heartbeat thread at the end of
    every flow run, and the thread sleeps in 1 s steps, so each round paid up to a
    second (an empty subflow: ~1.2 s with it, ~0.35 s without). Heartbeats detect
    crashed flow runs; the study flow around the rounds keeps its own.
    """
    runner = make_task_runner(handle.task_runner, handle.dask_address, max_parallel)
    sub = round_flow.with_options(flow_run_name=f"round-{k}", task_runner=runner)
    with without_heartbeat():
        return sub(handle, k, n)


_quiet: dict[int, tuple[Settings, Settings]] = {}  # id(settings) -> (settings, copy without)


def without_heartbeat() -> SettingsContext:
    """The current Prefect settings with the flow heartbeat off, as a context to enter.

    The copy is made once per settings object: building one (``temporary_settings``)
    costs ~40 ms, entering a ready one ~0.1 ms.
    """
    ctx = get_settings_context()
    cached = _quiet.get(id(ctx.settings))
    if cached is None or cached[0] is not ctx.settings:
        copy = ctx.settings.copy_with_update(updates={"flows.heartbeat_frequency": None})
        cached = _quiet[id(ctx.settings)] = (ctx.settings, copy)
    return SettingsContext(profile=ctx.profile, settings=cached[1])
