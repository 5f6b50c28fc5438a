"""Sobol specifics: it is scipy's scrambled sequence, continued across rounds, unbiased."""

from __future__ import annotations

from collections import Counter

import numpy as np
from scipy.stats import qmc

from amtune.strategies import SearchSpace, Trial, make_strategy

CONTINUOUS = SearchSpace.from_dict({
    "x": {"type": "float", "low": -5, "high": 10},
    "lr": {"type": "float", "low": 1e-4, "high": 1, "log": True},
})


def test_points_are_the_scrambled_sobol_sequence_of_the_seed() -> None:
    expected = qmc.Sobol(d=2, scramble=True, rng=11).random(16)
    got = make_strategy("sobol", CONTINUOUS, seed=11).propose([], 16)
    assert got == [CONTINUOUS.decode(u) for u in expected]
    other = make_strategy("sobol", CONTINUOUS, seed=12).propose([], 16)
    assert other != got


def test_the_sequence_continues_past_the_history_length() -> None:
    strategy = make_strategy("sobol", CONTINUOUS, seed=0)
    whole = strategy.propose([], 100)
    past = [Trial(params=p, value=1.0) for p in whole[:37]]
    assert strategy.propose(past, 63) == whole[37:]


def test_foreign_history_is_skipped_not_repeated() -> None:
    strategy = make_strategy("sobol", CONTINUOUS, seed=0)
    whole = strategy.propose([], 12)
    # Two hand-made trials and the sequence's own point 3 (say, from a resumed study).
    past = [Trial(params={"x": 0.0, "lr": 0.1}, value=1.0),
            Trial(params={"x": 1.0, "lr": 0.2}, value=None, status="failed"),
            Trial(params=whole[3], value=None, status="running")]
    batch = strategy.propose(past, 5)
    assert batch == [whole[i] for i in (4, 5, 6, 7, 8)]


def test_integers_and_categoricals_get_equal_shares() -> None:
    """Cells of equal width: the end values are not halved as naive rounding would."""
    space = SearchSpace.from_dict({
        "k": {"type": "int", "low": 1, "high": 3},
        "c": {"type": "categorical", "values": ["a", "b", "c", "d", "e"]},
        "x": {"type": "float", "low": 0, "high": 1},
    })
    batch = make_strategy("sobol", space, seed=2).propose([], 300)
    ks = Counter(p["k"] for p in batch)
    cs = Counter(p["c"] for p in batch)
    assert all(abs(ks[k] - 100) <= 5 for k in (1, 2, 3)), ks
    assert all(abs(cs[c] - 60) <= 5 for c in "abcde"), cs


def test_log_int_shares_follow_log_width() -> None:
    space = SearchSpace.from_dict({"k": {"type": "int", "low": 1, "high": 100, "log": True}})
    batch = make_strategy("sobol", space, seed=0).propose([], 100)
    # Distinct points only: a log int of 100 values is walked completely, small ones first.
    assert sorted(p["k"] for p in batch) == list(range(1, 101))
    first = [p["k"] for p in batch[:16]]
    assert np.median(first) < 30  # log scale: half of the first points below ~10


def test_small_discrete_space_is_enumerated_without_repeats() -> None:
    space = SearchSpace.from_dict({"k": {"type": "int", "low": 0, "high": 2},
                                   "b": {"type": "categorical", "values": [True, False]}})
    strategy = make_strategy("sobol", space, seed=4)
    batch = strategy.propose([], 10)
    assert len(batch) == 6
    assert len({space.key(p) for p in batch}) == 6
    assert strategy.propose([], 3) + strategy.propose(
        [Trial(params=p, value=0.0) for p in batch[:3]], 3) == batch
