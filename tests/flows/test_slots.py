"""The loop's slot accounting while a trial's result is written (pure: no Prefect)."""

from __future__ import annotations

from amtune.flows.completion import Tally
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
    assert _free(study(10), tally, *slots.drain()[1:]) == 0  # both slots busy
    slots.writing("a")
    _, in_flight, busy = slots.drain()
    assert (in_flight, busy) == (2, 1)
    assert _free(study(10), tally, in_flight, busy) == 1  # its slot is free
    assert _free(study(2), tally, in_flight, busy) == 0  # but the budget is spent
    slots.writing("a", started=False)  # the write failed: the trial takes its slot again
    assert slots.drain()[1:] == (2, 2)
    slots.writing("a")
    slots.ended_trial(TrialRecord(0, 0, "completed", "a", value=1.0))
    ended, in_flight, busy = slots.drain()
    assert [r.run_id for r in ended] == ["a"] and (in_flight, busy) == (1, 1)
