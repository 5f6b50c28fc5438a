"""The store's record keeping for incremental reads (pure: no MLflow)."""

from __future__ import annotations

import random

from amtune.tasks.store.known import Known
from amtune.tasks.store.schema import TrialRecord


def rec(number: int, status: str = "completed", start_ms: int | None = None,
        run_id: str | None = None) -> TrialRecord:
    return TrialRecord(number, 0, status, run_id or f"r{number}", {"x": 0.5},
                       start_ms=1000 * number if start_ms is None else start_ms)


def test_records_come_back_in_trial_order_whatever_order_they_arrive_in() -> None:
    k = Known()
    numbers = list(range(200))
    random.Random(0).shuffle(numbers)
    for n in numbers:
        k.put(rec(n, "running"))
    k.put(rec(7, "killed", run_id="again7"))  # a killed trial's number, given out again
    for n in numbers:
        k.put(rec(n))  # replaced as the trials end: no duplicate, same place
    got = [(r.number, r.run_id) for r in k.in_order()]
    assert got == sorted([(n, f"r{n}") for n in range(200)] + [(7, "again7")])
    assert all(r.status == "completed" for r in k.in_order() if r.run_id != "again7")
    assert len(k) == 201


def test_running_runs_before_a_time_and_finished_runs_since() -> None:
    k = Known()
    for n in range(10):
        k.put(rec(n, "running" if n in (2, 8) else "completed"))
    assert sorted(k.running_before(5000)) == ["r2"]
    assert sorted(k.running_before(10_000)) == ["r2", "r8"]
    assert sorted(k.settled_since(6000, 2000)) == ["r6", "r7", "r9"]
    k.put(rec(8))  # it ended
    assert k.running_before(10_000) == ["r2"]
    assert sorted(k.settled_since(6000, 2000)) == ["r6", "r7", "r8", "r9"]


def test_runs_started_here_are_not_read_again_until_they_end() -> None:
    k = Known()
    for n in range(10):
        k.put(rec(n, "running"), local=n in (3, 7))  # 3 and 7: started by this process
    assert sorted(k.running_before(10_000)) == [f"r{n}" for n in range(10) if n not in (3, 7)]
    assert sorted(k.settled_since(6000, 2000)) == ["r7"]  # left out of the read by id
    k.put(rec(7, "running"))  # a read's copy, still running: still told here
    assert "r7" not in k.running_before(10_000)
    k.put(rec(7))  # it ended; if a stale read puts it back as running, it is read again
    k.put(rec(7, "running"))
    assert "r7" in k.running_before(10_000) and "r7" not in k.settled_since(6000, 2000)


def test_settled_since_tolerates_runs_known_a_little_out_of_start_order() -> None:
    k = Known()
    for n, start in [(0, 1000), (1, 9000), (2, 8500), (3, 7000), (4, None)]:
        k.put(rec(n, start_ms=start) if start is not None else
              TrialRecord(4, 0, "completed", "r4", {"x": 0.5}))
    # r3 started before r2 but became known after it: within the slack, still found.
    assert sorted(k.settled_since(7000, 2000)) == ["r1", "r2", "r3"]


def test_free_numbers_reuse_killed_slots() -> None:
    k = Known()
    for r in [rec(0), rec(1, "killed"), rec(2), rec(3, "failed")]:
        k.put(r)
    assert k.free_numbers(3) == [1, 4, 5]
    k.put(rec(4, "running"))  # in flight: taken
    assert k.free_numbers(2) == [1, 5]
    k.put(rec(1, "running", run_id="again1"))
    assert k.free_numbers(1) == [5]
    k.put(rec(4, "killed"))  # a run marked killed gives its number back
    assert k.free_numbers(2) == [4, 5]


def test_free_numbers_are_the_lowest_unheld_under_any_order() -> None:
    rng = random.Random(1)
    k, held = Known(), {}
    for step in range(2000):
        n = rng.randrange(60)
        status = rng.choice(["running", "completed", "killed", "failed"])
        rid = f"r{rng.randrange(80)}"
        k.put(rec(n, status, run_id=rid))
        held[rid] = None if status == "killed" else n
        used = {v for v in held.values() if v is not None}
        want = sorted(set(range(len(used) + 3)) - used)[:3]
        assert k.free_numbers(3) == want, step
