"""The loop's slot accounting while a trial's result is written (pure: no Prefect)."""

from __future__ import annotations

from amtune.flows.completion import Tally, stop_reason
from amtune.flows.loop import _free
from amtune.flows.slots import Slots
from amtune.flows.spec import validate_spec
from amtune.tasks.store.schema import TrialRecord
from tests.flows.helpers import spec


def study(max_trials: int, max_parallel: int = 2):  # type: ignore[no-untyped-def]
    return validate_spec(spec("slots", "tests.flows.objectives:quadratic",
                              budget={"max_trials": max_trials, "max_parallel": max_parallel}))


def test_a_trial_being_written_frees_its_slot_but_still_counts_against_the_budget() -> None:
    slots, tally = Slots(), Tally(1.0, [])
    slots.go(0, 2)
    slots.planned(2, 2)
    assert _free(study(10), tally, 2, 2) == 0  # both slots busy
    a = TrialRecord(0, 0, "completed", "a", value=1.0)
    slots.writing(a)
    _, in_flight, writing = slots.drain()
    assert (in_flight, writing) == (2, [a])
    assert _free(study(10), tally, in_flight, in_flight - len(writing)) == 1  # slot free
    assert _free(study(2), tally, in_flight, in_flight - len(writing)) == 0  # budget spent
    slots.writing(a, started=False)  # the write failed: the trial takes its slot again
    assert slots.drain()[1:] == (2, [])
    slots.writing(a)
    slots.ended_trial(a)
    ended, in_flight, writing = slots.drain()
    assert ended == [a] and (in_flight, writing) == (1, [])


def test_a_result_being_written_meets_the_target_before_it_is_recorded() -> None:
    tally = Tally(1.0, [TrialRecord(0, 0, "completed", "a", value=5.0)])
    writing = [TrialRecord(1, 0, "completed", "b", value=0.5)]
    assert stop_reason(tally, max_trials=10, target=1.0) is None
    assert stop_reason(tally.plus(writing), max_trials=10, target=1.0) == "target"
    assert (tally.counted, tally.best.run_id) == (1, "a")  # the tally itself is unchanged
    worse = [TrialRecord(n, 0, "completed", f"w{n}", value=9.0) for n in (2, 3)]
    assert stop_reason(tally.plus(worse), max_trials=10, patience=2) == "patience"
    assert tally.since_best == 0
