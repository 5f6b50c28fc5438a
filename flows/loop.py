"""The study loop: start rounds while slots are free, until a completion criterion holds.

Asynchronous (the default): a slot that frees gets a new trial at once, and at most
``budget.max_parallel`` trials are in flight across all rounds. The next round's
subflow is always started ahead and waits for its go, so Prefect's cost of a subflow
(~0.25 s, seconds on a busy machine or when its SQLite API makes the client retry) is
paid while trials run. Round size is set by that cost:

- a round keeps the freed slots until it has started ``ROUND_TRIALS x max_parallel``
  trials (another ``load_history`` -> ``propose_batch`` -> trials per go, in the same
  subflow): each subflow start costs CPU beside the running trials, so fewer of them
  shorten every slot's turnaround;
- then a freed slot goes to the next round when it is ready: the round proposes for
  every slot free at that moment (slots that free while a batch is planned wait for it
  and go together), and the round before it is closed;
- while the next round's subflow is still starting, freed slots go to the open round,
  which proposes again (another ``load_history`` -> ``propose_batch`` -> trials in the
  same subflow), so no slot ever waits for Prefect.

With trials longer than a subflow's start-up, each round is ``ROUND_TRIALS x
max_parallel`` trials; with short ones, rounds grow. Rounds still waiting when the
study ends end without trials.

While every slot is busy, the round the next freed slot will go to plans one trial
ahead (``PLAN_AHEAD``: history, proposal) and starts it the moment a slot frees,
opening its MLflow run then, so the slot waits for neither the history read nor the
strategy. The proposal sees the trials then running as pending, the one whose slot
it takes included. No other proposal is made before the planned trial's run exists
(a go starts it first), so no point is proposed twice and no number is given twice.
If the study ends first, the planned trial is dropped: it has no run.
``execution.plan_ahead: false`` turns this off (every proposal then sees every result
in before its slot freed, at the cost of the slot waiting for it).

Barrier (``execution.rounds: barrier``): a round is one batch and starts only once the
previous one has ended, so the same seed gives the same trials. Asynchronous
proposals depend on which trials finished first; each is still a function of the
history it saw.

Once a criterion holds no trial starts; trials in flight finish and count.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future

from amtune.flows.completion import Tally, stop_reason
from amtune.flows.rounds import AHEAD, RoundResult, RoundRunner
from amtune.flows.slots import PLAN_AHEAD, Slots
from amtune.flows.spec import StudySpec
from amtune.strategies import Trial
from amtune.tasks.store.lease import Heartbeat
from amtune.tasks.store.schema import TrialRecord
from amtune.tasks.store.study import StudyStore

OnTrial = Callable[[TrialRecord], None]
# A round starts at least this many times max_parallel trials before the next takes
# over: fewer subflows to start beside the trials (utilisation 0.885 -> 0.899, 7 pairs).
ROUND_TRIALS = 2
_POLL_S = 1.0  # the loop also looks again this often (lease, run time) when nothing ends


def run_rounds(s: StudySpec, store: StudyStore, records: list[TrialRecord],
               prior: tuple[Trial, ...], heartbeat: Heartbeat, on_trial: OnTrial | None = None,
               on_round: Callable[[Tally], None] | None = None,
               ) -> tuple[str, list[TrialRecord]]:
    """Rounds until a completion criterion holds; returns the reason and the history."""
    b, barrier = s.budget, s.execution.rounds == "barrier"
    plan_ahead = not barrier and s.execution.plan_ahead
    start = time.monotonic()
    k = max((r.round for r in records), default=-1) + 1
    slots = Slots()
    ended = _Ended(records, s.sign, on_trial)
    rounds = RoundRunner(s, store, slots, prior)
    running: dict[int, Future[RoundResult]] = {}  # rounds given a go, trials maybe in flight
    ahead: dict[int, Future[RoundResult]] = {}  # the next rounds, started, awaiting a go
    opened: int | None = None  # the round that takes the freed slots until the next is ready
    given: dict[int, int] = {}  # trials the loop has let each round start
    try:
        while True:
            heartbeat.check(s.name)  # another runner took the study over: run nothing twice
            if slots.error is not None:
                raise slots.error
            just_ended, in_flight = slots.drain()
            ended.add(just_ended)
            if _ended(running) and on_round is not None:
                on_round(ended.tally)
            opened = opened if opened in running else None
            reason = stop_reason(ended.tally, max_trials=b.max_trials,
                                 max_runtime_s=b.max_runtime_s,
                                 elapsed_s=time.monotonic() - start, target=b.target,
                                 patience=b.patience, max_failed_trials=b.max_failed_trials)
            if reason is None and slots.exhausted and in_flight == 0:
                reason = "space_exhausted"
            if reason is not None:
                break
            starting = [j for j in ahead if j not in slots.waiting]
            if (not starting and len(ahead) < (1 if barrier else AHEAD)
                    and not slots.exhausted and not (barrier and running)):
                # One subflow starting at a time: on Prefect's SQLite API, concurrent
                # flow-run writes collide, and each collision costs a 2 s client retry.
                ahead[k] = rounds.prepare(k)
                k += 1
            n = _free(s, ended.tally, in_flight)
            if slots.planning or slots.exhausted:
                slots.wait(_POLL_S)  # a trial ends, a batch is planned, a round is ready
                continue
            first = min(ahead, default=None)
            # The open round keeps the freed slots until it has started a full batch.
            fill = opened if (opened is not None and not barrier and opened in slots.waiting
                              and given[opened] < ROUND_TRIALS * b.max_parallel) else None
            if n <= 0:  # every slot busy: the round the next slot goes to plans a trial
                target = fill if fill is not None else first if first in slots.waiting else opened
                if (plan_ahead and slots.held is None and target in slots.waiting
                        and in_flight >= b.max_parallel and _left(s, ended.tally, in_flight) > 0):
                    slots.go(target, PLAN_AHEAD)
                else:
                    slots.wait(_POLL_S)
                continue
            held = slots.held
            if held is not None and held == opened:  # the open round starts its held trial
                slots.go(opened, n)
                given[opened] += n
            elif fill is not None and held is None:
                slots.go(fill, n)
                given[fill] += n
            elif held in ahead or (held is None and first in slots.waiting):
                take = held if held is not None else first  # a fresh round takes over
                if opened is not None:
                    slots.go(opened, 0)
                slots.go(take, n)
                given[take] = n
                running[take], opened = ahead.pop(take), take
                if barrier:  # one batch per round
                    slots.go(take, 0)
                    opened = None
            elif opened in slots.waiting:  # the next round is not ready: no slot waits for it
                slots.go(opened, n)
                given[opened] += n  # type: ignore[index]  # waiting: not None
            else:
                slots.wait(_POLL_S)
    finally:
        for j in [*ahead, *([opened] if opened is not None else [])]:
            slots.go(j, 0)  # no more trials: a round that never had one ends at once
        for fut in [*running.values(), *ahead.values()]:
            fut.exception()  # trials in flight finish and count, whatever stopped the loop
        rounds.close()
    for fut in running.values():
        fut.result()  # an outage or a lost lease in a round stops the study
    if slots.error is not None:
        raise slots.error
    ended.add(slots.drain()[0])
    return reason, ended.records


def _free(s: StudySpec, tally: Tally, in_flight: int) -> int:
    """How many trials may start now: free slots, within the budget and failure limit."""
    return min(s.budget.max_parallel - in_flight, _left(s, tally, in_flight))


def _left(s: StudySpec, tally: Tally, in_flight: int) -> int:
    """How many more trials the budget and the failure limit allow beside those in
    flight, whatever the slots."""
    b = s.budget
    n = b.max_trials - tally.counted - in_flight
    if b.max_failed_trials is not None:  # never run past the failure limit
        n = min(n, b.max_failed_trials - tally.failed - in_flight)
    return n


def _ended(running: dict[int, Future[RoundResult]]) -> list[RoundResult]:
    """Take the rounds that ended out of ``running``; their errors are raised."""
    ended = [j for j, f in running.items() if f.done()]
    return [running.pop(j).result() for j in ended]


class _Ended:
    """The study's finished trials, by run id, and their tally: adding the trials
    that just ended costs the same at trial 5,000 as at trial 5."""

    def __init__(self, records: list[TrialRecord], sign: float,
                 on_trial: OnTrial | None) -> None:
        self._by_id = {r.run_id: r for r in records}
        self.tally = Tally(sign, records)
        self._on_trial = on_trial

    def add(self, ended: list[TrialRecord]) -> None:
        for r in ended:
            if self._on_trial is not None:
                self._on_trial(r)
            self._by_id[r.run_id] = r
        self.tally.add(ended)

    @property
    def records(self) -> list[TrialRecord]:
        return list(self._by_id.values())
