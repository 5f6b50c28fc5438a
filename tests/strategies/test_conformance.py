"""The strategy contract, checked for every registered strategy.

A new strategy joins by registering; keep the budgets here small, since model-based
strategies fit a model per proposal.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from amtune.strategies import (
    Categorical,
    SearchSpace,
    Strategy,
    Trial,
    make_strategy,
    strategy_names,
)

MIXED = SearchSpace.from_dict({
    "lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
    "x": {"type": "float", "low": -2.0, "high": 3.0},
    "momentum": {"type": "float", "low": 0.0, "high": 0.999, "scale": "reverse_log"},
    "depth": {"type": "int", "low": 1, "high": 6},
    "width": {"type": "int", "low": 2, "high": 256, "log": True},
    "kind": {"type": "categorical", "values": ["a", True, 3]},
})
FINITE = SearchSpace.from_dict({
    "k": {"type": "int", "low": 1, "high": 4},
    "c": {"type": "categorical", "values": ["a", "b", "c"]},
})
OPTIONS: dict[str, dict[str, Any]] = {"grid": {"points": 2}}  # grid needs points for floats
SPLITTABLE = [n for n in ("grid", "random", "sobol") if n in strategy_names()]


def make(name: str, space: SearchSpace = MIXED, seed: int = 0) -> Strategy:
    return make_strategy(name, space, seed=seed, **OPTIONS.get(name, {}))


def objective(p: dict[str, Any]) -> float:
    return (
        (math.log10(p["lr"]) + 2) ** 2 + (p["x"] - 1) ** 2 + p["momentum"]
        + abs(p["depth"] - 3) / 3 + abs(math.log2(p["width"]) - 5) / 4
        + (0.0 if p["kind"] is True else 0.5)
    )


def history(space: SearchSpace = MIXED, completed: int = 14) -> list[Trial]:
    """Completed trials (enough for a model-based strategy to fit), two failed, two running."""
    points = make_strategy("random", space, seed=123).propose([], completed + 4)
    trials = [Trial(params=p, value=objective(p) if space is MIXED else float(i))
              for i, p in enumerate(points[:completed])]
    trials += [Trial(params=p, value=None, status="failed") for p in points[completed:-2]]
    trials += [Trial(params=p, value=None, status="running") for p in points[-2:]]
    return trials


def assert_valid(space: SearchSpace, params: dict[str, Any]) -> None:
    assert set(params) == set(space.names)
    for p in space.params:
        v = params[p.name]
        if isinstance(p, Categorical):
            assert any(v == c and type(v) is type(c) for c in p.values), (p.name, v)
        elif p.kind == "int":
            assert type(v) is int, (p.name, v)
            assert p.low <= v <= p.high, (p.name, v)
        else:
            assert type(v) is float, (p.name, v)
            assert p.low <= v <= p.high, (p.name, v)


def keys(space: SearchSpace, points: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [space.key(p) for p in points]


names = pytest.mark.parametrize("name", strategy_names())


@names
def test_proposals_are_in_bounds_with_declared_types(name: str) -> None:
    for past in ([], history()):
        batch = make(name).propose(past, 5)
        assert len(batch) == 5
        for params in batch:
            assert_valid(MIXED, params)


@names
def test_categoricals_come_from_the_list_with_their_types(name: str) -> None:
    space = SearchSpace.from_dict({"c": {"type": "categorical", "values": ["one", 2, True, 2.5]},
                                   "y": {"type": "float", "low": 0, "high": 1}})
    strategy = make_strategy(name, space, seed=1, **OPTIONS.get(name, {}))
    past: list[Trial] = []
    for _ in range(3):
        batch = strategy.propose(past, 4)
        for params in batch:
            assert_valid(space, params)
        past += [Trial(params=p, value=float(p["y"])) for p in batch]


@names
@pytest.mark.parametrize("n", [1, 3, 7])
def test_exactly_n_points(name: str, n: int) -> None:
    assert len(make(name).propose([], n)) == n
    assert len(make(name).propose(history(), n)) == n


@names
def test_n_zero_gives_an_empty_batch(name: str) -> None:
    assert make(name).propose([], 0) == []
    assert make(name).propose(history(), 0) == []


@names
def test_same_seed_and_history_give_the_same_batch(name: str) -> None:
    for past in ([], history()):
        strategy = make(name, seed=7)
        first = strategy.propose(past, 4)
        assert make(name, seed=7).propose(past, 4) == first
        assert strategy.propose(past, 4) == first  # no state kept between calls


@names
def test_no_duplicates_within_a_batch_or_with_the_history(name: str) -> None:
    past = history()
    batch = make(name).propose(past, 6)
    got = keys(MIXED, batch)
    assert len(set(got)) == len(got)
    assert not set(got) & set(keys(MIXED, [t.params for t in past]))


@names
@pytest.mark.parametrize("status", ["completed", "failed", "running"])
def test_finite_space_is_walked_without_repeats_until_exhausted(name: str, status: str) -> None:
    """Every status blocks its point; asking for more than remain gives what remains."""
    strategy = make_strategy(name, FINITE, seed=3)
    past: list[Trial] = []
    while len(past) < 7:  # a first part of the space, in the strategy's own order
        for params in strategy.propose(past, 2):
            value = 1.0 if status == "completed" else None
            past.append(Trial(params=params, value=value, status=status))
    rest = strategy.propose(past, 10)
    assert len(rest) == FINITE.size() - len(past)
    every = keys(FINITE, [t.params for t in past] + rest)
    assert len(set(every)) == FINITE.size()
    for params in rest:
        assert_valid(FINITE, params)
    assert strategy.propose([*past, *(Trial(params=p, value=0.0) for p in rest)], 3) == []
    assert strategy.size() == FINITE.size()


@names
def test_size_is_unbounded_in_a_continuous_space_except_for_grid(name: str) -> None:
    # grid with 2 points: 2 values for each of the five numeric parameters, 3 categories
    assert make(name).size() == (2**5 * 3 if name == "grid" else None)


@names
def test_history_read_back_as_text_still_blocks_its_points(name: str) -> None:
    """Params come back from tracking as strings; coerced, they are the same points."""
    strategy = make_strategy(name, FINITE, seed=0)
    first = strategy.propose([], 11)
    past = [Trial(params=FINITE.coerce({k: str(v) for k, v in p.items()}), value=1.0)
            for p in first]
    last = strategy.propose(past, 5)
    assert len(last) == 1
    assert FINITE.key(last[0]) not in set(keys(FINITE, first))


@pytest.mark.parametrize("name", SPLITTABLE)
@pytest.mark.parametrize("split", [(4, 4), (1, 3, 4), (5, 3)])
def test_split_rounds_equal_one_round(name: str, split: tuple[int, ...]) -> None:
    whole = make(name, seed=5).propose([], sum(split))
    past: list[Trial] = []
    for i, n in enumerate(split):
        for params in make(name, seed=5).propose(past, n):
            status = "running" if i == len(split) - 2 else "completed"
            value = None if status == "running" else objective(params)
            past.append(Trial(params=params, value=value, status=status))
    assert [t.params for t in past] == whole


def test_unknown_strategy_lists_the_valid_names() -> None:
    with pytest.raises(ValueError, match="'nope'") as info:
        make_strategy("nope", MIXED)
    for name in strategy_names():
        assert name in str(info.value)


@names
def test_unknown_option_lists_the_valid_ones(name: str) -> None:
    with pytest.raises(ValueError, match=r"strategy\.options\.bogus: 1 is not an option"):
        make_strategy(name, MIXED, bogus=1)
