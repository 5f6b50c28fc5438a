"""Grid specifics: axes, size, order, resumption, and what a grid cannot do."""

from __future__ import annotations

import itertools
import math

import pytest

from amtune.strategies import SearchSpace, SpaceError, Trial, make_strategy
from amtune.strategies.grid import grid_axes


def test_axes_follow_each_parameters_scale_and_include_the_bounds() -> None:
    space = SearchSpace.from_dict({
        "lin": {"type": "float", "low": -1, "high": 1},
        "lr": {"type": "float", "low": 1e-3, "high": 1, "log": True},
        "m": {"type": "float", "low": 0, "high": 0.999, "scale": "reverse_log"},
    })
    lin, lr, m = grid_axes(space, points=4)
    assert lin == pytest.approx([-1, -1 / 3, 1 / 3, 1])
    assert lr == pytest.approx([1e-3, 1e-2, 1e-1, 1])
    assert lr[0] == 1e-3 and lr[-1] == 1  # exact bounds, not exp(log(x))
    assert [-math.log1p(-v) for v in m] == pytest.approx(
        [i * -math.log(0.001) / 3 for i in range(4)])


def test_ints_with_few_values_use_them_all_others_get_points() -> None:
    space = SearchSpace.from_dict({
        "few": {"type": "int", "low": 2, "high": 4},
        "many": {"type": "int", "low": 0, "high": 100},
        "logint": {"type": "int", "low": 1, "high": 1000, "log": True},
        "ten": {"type": "int", "low": 0, "high": 9},
    })
    few, many, logint, ten = grid_axes(space, points=5)
    assert few == [2, 3, 4]
    assert many == [0, 25, 50, 75, 100]
    assert logint == [1, 6, 32, 178, 1000]
    assert ten == [0, 2, 5, 7, 9]  # 0, 2.25, 4.5, 6.75, 9 rounded
    assert grid_axes(SearchSpace.from_dict({"k": {"type": "int", "low": 0, "high": 9}})) == [
        list(range(10))]


def test_log_int_axis_merges_neighbours_that_round_together() -> None:
    space = SearchSpace.from_dict({"k": {"type": "int", "low": 1, "high": 20, "log": True}})
    (axis,) = grid_axes(space, points=12)
    assert axis == sorted(set(axis))
    assert axis[0] == 1 and axis[-1] == 20
    assert len(axis) < 12


def test_parameter_points_override_the_option() -> None:
    space = SearchSpace.from_dict({"x": {"type": "float", "low": 0, "high": 1, "points": 3},
                                   "y": {"type": "float", "low": 0, "high": 1}})
    strategy = make_strategy("grid", space, points=2)
    assert strategy.size() == 6
    assert {p["x"] for p in strategy.propose([], 6)} == {0.0, 0.5, 1.0}


def test_size_is_the_product_of_axes_and_the_walk_covers_it_once() -> None:
    space = SearchSpace.from_dict({
        "x": {"type": "float", "low": 0, "high": 1},
        "k": {"type": "int", "low": 1, "high": 4},
        "c": {"type": "categorical", "values": ["a", False, 2]},
    })
    strategy = make_strategy("grid", space, points=3)
    assert strategy.size() == 3 * 3 * 3  # k has 4 values > 3 points
    past: list[Trial] = []
    while batch := strategy.propose(past, 5):
        past += [Trial(params=p, value=0.0) for p in batch]
    assert len(past) == strategy.size()
    assert len({space.key(t.params) for t in past}) == strategy.size()


def test_order_is_the_product_order_and_ignores_the_seed() -> None:
    space = SearchSpace.from_dict({"x": {"type": "float", "low": 0, "high": 2},
                                   "c": {"type": "categorical", "values": ["u", "v"]}})
    expected = [{"x": x, "c": c} for x, c in itertools.product([0.0, 1.0, 2.0], ["u", "v"])]
    assert make_strategy("grid", space, seed=0, points=3).propose([], 6) == expected
    assert make_strategy("grid", space, seed=9, points=3).propose([], 6) == expected


def test_history_points_are_skipped_wherever_they_are() -> None:
    space = SearchSpace.from_dict({"k": {"type": "int", "low": 0, "high": 5}})
    past = [Trial(params={"k": 4}, value=None, status="failed"),
            Trial(params={"k": 1}, value=None, status="running"),
            Trial(params={"k": 0}, value=2.0)]
    assert make_strategy("grid", space).propose(past, 10) == [{"k": 2}, {"k": 3}, {"k": 5}]


def test_exhausted_grid_returns_what_is_left() -> None:
    space = SearchSpace.from_dict({"c": {"type": "categorical", "values": ["a", "b", "c"]}})
    strategy = make_strategy("grid", space)
    assert strategy.propose([Trial(params={"c": "b"}, value=1.0)], 5) == [{"c": "a"}, {"c": "c"}]
    full = [Trial(params={"c": v}, value=1.0) for v in "abc"]
    assert strategy.propose(full, 5) == []


def test_a_float_without_points_is_an_error_naming_it() -> None:
    space = SearchSpace.from_dict({"k": {"type": "int", "low": 0, "high": 3},
                                   "lr": {"type": "float", "low": 1e-3, "high": 1, "log": True}})
    with pytest.raises(SpaceError) as info:
        make_strategy("grid", space)
    message = str(info.value)
    assert "parameters.lr.points" in message
    assert "None" in message
    assert "whole number >= 2" in message and "grid option points" in message


@pytest.mark.parametrize("bad", [1, 0, 2.5, "3", True])
def test_points_option_must_be_a_whole_number_of_at_least_two(bad: object) -> None:
    space = SearchSpace.from_dict({"x": {"type": "float", "low": 0, "high": 1}})
    with pytest.raises(ValueError, match=r"strategy\.options\.points: .* whole number >= 2"):
        make_strategy("grid", space, points=bad)
