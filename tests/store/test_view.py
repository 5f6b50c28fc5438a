"""The strategy's history kept as records arrive (pure: no MLflow)."""

from __future__ import annotations

import random

from amtune.strategies import SearchSpace, make_strategy
from amtune.strategies.base import KeyedTrials
from amtune.tasks.store.known import Known
from amtune.tasks.store.schema import TrialRecord, to_trials

SPACE = SearchSpace.from_dict({"x": {"type": "int", "low": 0, "high": 9},
                               "c": {"type": "categorical", "values": ["a", "b"]}})


def rec(number: int, status: str, run_id: str, x: int, value: float = 1.0) -> TrialRecord:
    return TrialRecord(number, 0, status, run_id, {"x": x, "c": "ab"[number % 2]},
                       value=value if status in ("completed", "stopped") else None,
                       start_ms=number)


def test_the_kept_history_is_to_trials_of_every_record_with_its_keys() -> None:
    rng = random.Random(0)
    k = Known()
    k.trials(SPACE, -1.0)  # kept from now on, record by record
    for step in range(1500):
        status = rng.choice(["running", "running", "completed", "failed", "stopped", "killed"])
        k.put(rec(rng.randrange(40), status, f"r{rng.randrange(50)}", rng.randrange(10),
                  rng.random()))
        if step % 50:
            continue
        got, want = k.trials(SPACE, -1.0), to_trials(k.in_order(), -1.0)
        assert [(t.params, t.value, t.status) for t in got] == \
            [(t.params, t.value, t.status) for t in want]
        assert got.keys == {SPACE.key(t.params) for t in want}


def test_a_snapshot_does_not_change_as_records_arrive() -> None:
    k = Known()
    k.put(rec(0, "completed", "r0", 1))
    snap = k.trials(SPACE, 1.0)
    k.put(rec(1, "running", "r1", 2))
    assert len(snap) == 1 and len(snap.keys) == 1
    assert len(k.trials(SPACE, 1.0)) == 2


def test_a_strategy_uses_the_keys_it_is_given_only_for_its_own_space() -> None:
    trials = to_trials([rec(n, "completed", f"r{n}", n) for n in range(4)], 1.0)
    strategy = make_strategy("random", SPACE, seed=0)
    sig = strategy._space_sig
    assert strategy._seen(KeyedTrials(trials, {("given",)}, sig)) == {("given",)}
    assert strategy._seen(KeyedTrials(trials, {("given",)}, "another space")) == \
        {SPACE.key(t.params) for t in trials}
    both = KeyedTrials(trials[2:], {SPACE.key(t.params) for t in trials[2:]}, sig) \
        .after(trials[:2], SPACE)
    assert list(both) == trials and both.keys == {SPACE.key(t.params) for t in trials}


def test_random_proposes_the_same_from_a_kept_history_as_from_a_plain_one() -> None:
    k = Known()
    for n in range(15):
        k.put(rec(n, "completed" if n % 3 else "running", f"r{n}", n % 10))
    kept, plain = k.trials(SPACE, 1.0), to_trials(k.in_order(), 1.0)
    strategy = make_strategy("random", SPACE, seed=3)
    assert strategy.propose(kept, 4) == strategy.propose(plain, 4)
