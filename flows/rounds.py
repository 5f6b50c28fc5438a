"""One round: read the history from MLflow, propose a batch, run it in parallel.

A failed trial never fails its round: its task run ends Failed (so Prefect and
MLflow agree) and the round records it as a failed trial instead of raising.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from prefect import flow, unmapped
from prefect.context import SettingsContext, get_settings_context
from prefect.futures import PrefectFuture, as_completed

from amtune.flows.execution import make_task_runner
from amtune.flows.spec import StudySpec
from amtune.strategies import Trial
from amtune.tasks.context import PlannedTrial
from amtune.tasks.propose import load_history, propose_batch
from amtune.tasks.runners.failures import TrialFailure
from amtune.tasks.store.lease import LeaseLost
from amtune.tasks.store.outage import TrackingOutage
from amtune.tasks.store.schema import TrialRecord
from amtune.tasks.store.study import StudyStore
from amtune.tasks.trial import trial_task


@dataclass
class RoundResult:
    history: list[TrialRecord]  # as read at the start of the round, plus this round's trials
    proposed: int
    trials: list[TrialRecord] = field(default_factory=list)


OnTrial = Callable[[TrialRecord], None]


@flow(name="round", validate_parameters=False, persist_result=False, log_prints=False)
def round_flow(spec: StudySpec, store: StudyStore, k: int, n: int,
               prior: tuple[Trial, ...] = (), on_trial: OnTrial | None = None) -> RoundResult:
    history = load_history(store)
    planned = propose_batch(spec, store, history, n, k, prior)
    if not planned:
        return RoundResult(history, 0)
    futures = trial_task(spec).map(
        unmapped(spec), unmapped(store), [p.number for p in planned], unmapped(k),
        [p.run_id for p in planned], [p.params for p in planned])
    by_future = {id(f): p for f, p in zip(futures, planned, strict=True)}
    done: list[TrialRecord] = []
    for fut in as_completed(list(futures)):
        rec = _record(fut, by_future[id(fut)])
        store.remember(rec)
        done.append(rec)
        if on_trial is not None:
            on_trial(rec)
    done.sort(key=lambda r: r.number)
    ran = {r.run_id for r in done}
    return RoundResult([r for r in history if r.run_id not in ran] + done, len(planned), done)


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


class RoundRunner:
    """Starts round subflows for one study, each named ``round-<k>``.

    Rounds run without their flow-run heartbeat: Prefect joins the heartbeat thread
    at the end of every flow run, and the thread sleeps in 1 s steps, so each round
    paid up to a second (an empty subflow: ~1.2 s with it, ~0.35 s without).
    Heartbeats detect crashed flow runs; the study flow around the rounds keeps its
    own. The settings copy is built once per study: ``temporary_settings`` costs
    ~40 ms, entering a ready copy ~0.1 ms.
    """

    def __init__(self, spec: StudySpec, store: StudyStore, prior: tuple[Trial, ...] = (),
                 on_trial: OnTrial | None = None) -> None:
        self.spec, self.store, self.prior, self.on_trial = spec, store, prior, on_trial
        ctx = get_settings_context()
        self._quiet = SettingsContext(profile=ctx.profile, settings=ctx.settings.copy_with_update(
            updates={"flows.heartbeat_frequency": None}))
        ex = spec.execution
        self._runner = make_task_runner(ex.task_runner, ex.address, spec.budget.max_parallel)

    def run(self, k: int, n: int) -> RoundResult:
        sub = round_flow.with_options(flow_run_name=f"round-{k}", task_runner=self._runner)
        with self._quiet:
            return sub(self.spec, self.store, k, n, self.prior, self.on_trial)
