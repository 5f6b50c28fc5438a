"""A round: read the history from MLflow, propose a batch, run it in parallel.

A round is a Prefect subflow ``round-<k>``. Rounds overlap: the study loop
(``flows/loop.py``) gives a round its go when slots free, and a round stays open for
further gos (another proposal in the same subflow) until the loop closes it, so a
round's slow trial never holds up the others. Each round runs in a thread of its own.
A round may also plan a trial ahead, while every slot is busy, and start it with its
next go (``flows/slots.py``); its MLflow run is opened as it starts.
A failed trial never fails its round: its task run ends Failed (so Prefect and MLflow
agree) and the round records it as a failed trial instead of raising.
"""

from __future__ import annotations

import contextvars
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from prefect import flow, unmapped
from prefect.context import SettingsContext, get_settings_context
from prefect.futures import PrefectFuture
from prefect.logging import get_run_logger
from prefect.states import Completed, State
from prefect.utilities.annotations import opaque, quote

from amtune.flows.execution import make_task_runner
from amtune.flows.slots import PLAN_AHEAD, Slots
from amtune.flows.spec import StudySpec
from amtune.strategies import Trial
from amtune.tasks.context import PlannedTrial
from amtune.tasks.propose import load_history, open_run, propose_batch
from amtune.tasks.runners.failures import TrialFailure
from amtune.tasks.store.lease import LeaseLost
from amtune.tasks.store.outage import TrackingOutage
from amtune.tasks.store.schema import TrialRecord
from amtune.tasks.store.study import StudyStore
from amtune.tasks.trial import trial_task


@dataclass
class RoundResult:
    trials: list[TrialRecord] = field(default_factory=list)


@flow(name="round", validate_parameters=False, persist_result=False, log_prints=False)
def round_flow(spec: StudySpec, store: StudyStore, k: int, slots: Slots,
               prior: tuple[Trial, ...] = ()) -> RoundResult:
    """For each go the loop gives, propose that many trials from the history as MLflow
    holds it (trials in flight in other rounds included) and start them, until the loop
    closes the round; each trial is reported to ``slots`` as it ends."""
    trials = _Trials(store, slots)
    held: _Plan | None = None  # a trial planned ahead, started with the next go
    try:
        n = slots.await_go(k)
        while n != 0:
            if n == PLAN_AHEAD:
                try:
                    held = _plan(spec, store, k, 1, prior, open_runs=False)
                except BaseException as err:  # this round may not have a go yet: the
                    slots.planned_ahead(k, 0, failed=True)  # loop learns it from slots
                    slots.fail(err)
                    raise
                slots.planned_ahead(k, len(held[1]))
                held = held if held[1] else None
            else:
                got = 0
                try:
                    if held is not None:  # started first: its slot waits for nothing
                        got, held = _start(spec, store, k, trials, held), None
                    if n > got:
                        got += _start(spec, store, k, trials, _plan(spec, store, k, n - got,
                                                                    prior))
                except BaseException:
                    slots.planned(n, got, failed=True)
                    raise
                slots.planned(n, got)
            n = slots.await_go(k)
    finally:
        if held is not None:  # the study ended before a slot freed for it: no run
            get_run_logger().info("trial-%04d was planned ahead and not run: the study "
                                  "ended first", held[1][0].number)
        done = trials.wait()  # trials in flight finish and count, whatever happened
    if not done:
        return RoundResult()
    # A returned state is the flow run's final state; the caller gets its data.
    return _ended(k, RoundResult(sorted(done, key=lambda r: r.number)))  # type: ignore[return-value]


_Plan = tuple[State[list[PlannedTrial]], list[PlannedTrial]]


def _plan(spec: StudySpec, store: StudyStore, k: int, n: int, prior: tuple[Trial, ...],
          open_runs: bool = True) -> _Plan:
    """``load_history`` -> ``propose_batch`` for ``n`` trials (with their MLflow runs,
    or, planned ahead, without: opened by ``_start``).

    Run here, not on the trials' task runner (Dask ships tasks to other processes):
    both are quick and use the store's history cache. Their states still wire the
    graph: history -> proposal -> its trials. opaque/quote: Prefect walks every task
    argument looking for futures, which made each proposal cost O(history); the edge
    stays drawn.
    """
    history = load_history(store, quote(spec.space), spec.sign, return_state=True)
    # A failed read (an outage) raises its own error here: given a failed state,
    # propose_batch would not run, and its result would only say it never ran.
    history.result()
    proposal = propose_batch(spec, store, opaque(history), n, k, quote(prior), open_runs,
                             return_state=True)
    return proposal, proposal.result()


def _start(spec: StudySpec, store: StudyStore, k: int, trials: _Trials, plan: _Plan) -> int:
    """Start the planned trials as tasks wired to their proposal; how many there were.

    wait_for: the edges proposal -> trials. Prefect may add a stray one: it links plain
    values to earlier task results by id() alone (prefect#20558). Quoting the mapped
    values avoids that on threads but breaks the Dask runner, which names the task run
    before it unquotes ``number``.
    """
    proposal, planned = plan
    planned = [open_run(spec, store, p) for p in planned]
    if planned:
        futures = trial_task(spec).map(
            unmapped(spec), unmapped(store), [p.number for p in planned], unmapped(k),
            [p.run_id for p in planned], [p.params for p in planned], wait_for=[proposal])
        for fut, p in zip(futures, planned, strict=True):
            trials.watch(fut, p)
    return len(planned)


class _Trials:
    """A round's trials in flight: each is recorded, and its slot freed, the moment it
    ends, whichever round or batch it belongs to: told by the store when the trial's
    end is written in this process, else by a callback on its future (a Dask worker,
    a failed task run)."""

    def __init__(self, store: StudyStore, slots: Slots) -> None:
        self.store, self.slots = store, slots
        self._cond = threading.Condition()
        self._running = 0
        self._told: set[str] = set()
        self.done: list[TrialRecord] = []

    def watch(self, fut: PrefectFuture[TrialRecord], plan: PlannedTrial) -> None:
        with self._cond:
            self._running += 1
        self.store.on_end(plan.run_id, self._tell)
        fut.add_done_callback(lambda f: self._ended(f, plan))

    def _tell(self, rec: TrialRecord) -> None:
        with self._cond:
            if rec.run_id in self._told:
                return
            self._told.add(rec.run_id)
            self.done.append(rec)
        self.slots.ended_trial(rec)

    def _ended(self, fut: PrefectFuture[TrialRecord], plan: PlannedTrial) -> None:
        try:
            rec = _record(fut, plan)
        except BaseException as err:  # an outage or a lost lease: the study stops
            self.slots.fail(err)
        else:
            self.store.remember(rec)  # tells _tell, unless the store already did
            self._tell(rec)
        finally:
            with self._cond:
                self._running -= 1
                self._cond.notify_all()

    def wait(self) -> list[TrialRecord]:
        """Block until every trial started in the round has ended and been recorded."""
        with self._cond:
            while self._running:
                self._cond.wait()
            return list(self.done)


def _ended(k: int, result: RoundResult) -> State[RoundResult]:
    """Completed with a message saying how many trials failed, so a round with failures
    does not look like any other green round in Prefect's UI; callers still get the data."""
    failed = [r for r in result.trials if r.status == "failed"]
    n = len(result.trials)
    message = f"{len(failed)} of {n} trials failed" if failed else f"{n} trials completed"
    get_run_logger().info("round %d: %s%s", k, message, "".join(
        f"; trial-{r.number:04d} {r.reason}" for r in failed))
    return Completed(message=message, data=result)


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


def without_heartbeat() -> SettingsContext:
    """The current Prefect settings with the flow heartbeat off, as a context to enter.

    Prefect joins the heartbeat thread at the end of every flow run, and the thread
    sleeps in 1 s steps, so each round paid up to a second (an empty subflow: ~1.2 s
    with it, ~0.35 s without). Heartbeats detect crashed flow runs; the study flow
    around the rounds keeps its own. Building the copy costs ~40 ms, so a study
    builds it once (``RoundRunner``); entering it costs ~0.1 ms.
    """
    ctx = get_settings_context()
    return SettingsContext(profile=ctx.profile, settings=ctx.settings.copy_with_update(
        updates={"flows.heartbeat_frequency": None}))


AHEAD = 2  # round subflows started ahead, waiting for their go (one may still be starting)


class RoundRunner:
    """Starts one study's round subflows, each in a thread of its own."""

    def __init__(self, spec: StudySpec, store: StudyStore, slots: Slots,
                 prior: tuple[Trial, ...] = ()) -> None:
        self.spec, self.store, self.slots, self.prior = spec, store, slots, prior
        self._quiet = without_heartbeat()
        ex = spec.execution
        self._runner = make_task_runner(ex.task_runner, ex.address, spec.budget.max_parallel)
        # Up to max_parallel rounds with a trial in flight, as many finishing their
        # subflow, and the ones waiting for their go.
        self._pool = ThreadPoolExecutor(max_workers=2 * spec.budget.max_parallel + AHEAD,
                                        thread_name_prefix="amtune-round")

    def prepare(self, k: int) -> Future[RoundResult]:
        """Round ``k``, started in the background; it waits for ``slots.go``."""
        ctx = contextvars.copy_context()  # the study's flow run: rounds are its subflows
        fut = self._pool.submit(ctx.run, self._run, k)
        fut.add_done_callback(lambda _: self.slots.notify())
        return fut

    def _run(self, k: int) -> RoundResult:
        sub = round_flow.with_options(flow_run_name=f"round-{k}", task_runner=self._runner)
        q = self._quiet  # a context object is entered once at a time: one per round
        with SettingsContext(profile=q.profile, settings=q.settings):
            return sub(self.spec, self.store, k, self.slots, self.prior)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
