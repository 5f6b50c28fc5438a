"""The study loop: start rounds while slots are free, until a completion criterion holds.

Asynchronous (the default): a new round starts as soon as a slot frees, for every
slot free at that moment, and at most ``budget.max_parallel`` trials are in flight
across all rounds. The next rounds' subflows are always started ahead and wait for
their go, so Prefect's cost of a subflow (~0.2 s) is paid while trials run. Only one
round plans its batch at a time, so slots that free while it plans go to the next
round together: fast trials are batched, slow ones never wait for each other. The
rounds still waiting when the study ends end without trials.

Barrier (``execution.rounds: barrier``): a round starts only once the previous one
has ended, so the same seed gives the same trials. Asynchronous proposals depend
on which trials finished first; each is still a function of the history it saw.

Once a criterion holds no trial starts; trials in flight finish and count.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future

from amtune.flows.completion import stop_reason
from amtune.flows.rounds import AHEAD, RoundResult, RoundRunner, Slots
from amtune.flows.spec import StudySpec
from amtune.strategies import Trial
from amtune.tasks.store.lease import Heartbeat
from amtune.tasks.store.schema import TrialRecord, counted
from amtune.tasks.store.study import StudyStore

OnTrial = Callable[[TrialRecord], None]
_POLL_S = 1.0  # the loop also looks again this often (lease, run time) when nothing ends


def run_rounds(s: StudySpec, store: StudyStore, records: list[TrialRecord],
               prior: tuple[Trial, ...], heartbeat: Heartbeat, on_trial: OnTrial | None = None,
               on_round: Callable[[list[TrialRecord]], None] | None = None,
               ) -> tuple[str, list[TrialRecord]]:
    """Rounds until a completion criterion holds; returns the reason and the history."""
    b, barrier = s.budget, s.execution.rounds == "barrier"
    start = time.monotonic()
    k = max((r.round for r in records), default=-1) + 1
    slots = Slots()
    rounds = RoundRunner(s, store, slots, prior)
    running: list[Future[RoundResult]] = []
    ahead: dict[int, Future[RoundResult]] = {}  # the next rounds, started, awaiting a go
    exhausted = False
    try:
        while True:
            heartbeat.check(s.name)  # another runner took the study over: run nothing twice
            just_ended, in_flight = slots.drain()
            records = _merge(records, just_ended, on_trial)
            running, ended = _split(running)
            exhausted |= any(r.proposed == 0 for r in ended)
            if ended and on_round is not None:
                on_round(records)
            reason = stop_reason(records, sign=s.sign, max_trials=b.max_trials,
                                 max_runtime_s=b.max_runtime_s,
                                 elapsed_s=time.monotonic() - start, target=b.target,
                                 patience=b.patience, max_failed_trials=b.max_failed_trials)
            if reason is None and exhausted and not running:
                reason = "space_exhausted"
            if reason is not None:
                break
            starting = [j for j in ahead if j not in slots.waiting]
            if (not starting and len(ahead) < (1 if barrier else AHEAD) and not exhausted
                    and not (barrier and running)):
                # One subflow starting at a time: on Prefect's SQLite API, concurrent
                # flow-run writes collide, and each collision costs a 2 s client retry.
                ahead[k] = rounds.prepare(k)
                k += 1
            n = _free(s, records, in_flight)
            first = min(ahead, default=None)
            if n > 0 and first in slots.waiting and slots.planning == 0 and not exhausted:
                slots.go(first, n)
                running.append(ahead.pop(first))
            else:
                slots.wait(_POLL_S)
    finally:
        for j, fut in ahead.items():  # never given a go: they end without trials
            _release(slots, j, fut)
        for fut in running:  # trials in flight finish and count, whatever stopped the loop
            fut.exception()
        rounds.close()
    for fut in running:
        fut.result()  # an outage or a lost lease in a round stops the study
    return reason, _merge(records, slots.drain()[0], on_trial)


def _release(slots: Slots, k: int, waiting: Future[RoundResult]) -> None:
    """End round ``k`` that waits for a go: once it waits, a go of 0 ends it at once."""
    while not waiting.done():
        if k in slots.waiting:
            slots.go(k, 0)
            break
        slots.wait(0.05)
    waiting.exception()


def _free(s: StudySpec, records: list[TrialRecord], in_flight: int) -> int:
    """How many trials may start now: free slots, within the budget and failure limit."""
    b = s.budget
    done = counted(records)
    n = min(b.max_parallel - in_flight, b.max_trials - len(done) - in_flight)
    if b.max_failed_trials is not None:  # never run past the failure limit
        n = min(n, b.max_failed_trials - sum(r.status == "failed" for r in done) - in_flight)
    return n


def _split(running: list[Future[RoundResult]]
           ) -> tuple[list[Future[RoundResult]], list[RoundResult]]:
    """Rounds still running, and the results of the ones that ended (their errors raised)."""
    still = [f for f in running if not f.done()]
    return still, [f.result() for f in running if f.done()]


def _merge(records: list[TrialRecord], ended: list[TrialRecord],
           on_trial: OnTrial | None) -> list[TrialRecord]:
    if not ended:
        return records
    if on_trial is not None:
        for r in ended:
            on_trial(r)
    gone = {r.run_id for r in ended}
    return [r for r in records if r.run_id not in gone] + ended
