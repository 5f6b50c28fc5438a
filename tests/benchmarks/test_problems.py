"""The benchmark problems: valid spaces, and the synthetic optima where they are known."""

from __future__ import annotations

import math

import numpy as np
import pytest
from amtune.strategies import SearchSpace

from benchmarks.problems import PROBLEMS, PUBLIC

MINIMISERS = {
    "branin": [{"x0": -math.pi, "x1": 12.275}, {"x0": math.pi, "x1": 2.275},
               {"x0": 9.42478, "x1": 2.475}],
    "hartmann6": [{f"x{i}": v for i, v in enumerate(
        [0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573])}],
    "ackley5": [{f"x{i}": 0.0 for i in range(5)}],
    "rosenbrock4": [{f"x{i}": 1.0 for i in range(4)}],
    "styblinski_tang4": [{f"x{i}": -2.903534 for i in range(4)}],
    "mixed6": [{"x": 0.7, "lr": 1e-2, "depth": 7, "width": 24, "kernel": "rbf",
                "shrinking": True}],
}


def test_the_public_set_is_complete_and_every_space_is_valid() -> None:
    assert set(PUBLIC) <= set(PROBLEMS)
    assert len(PROBLEMS) > len(PUBLIC)  # at least one of our own
    kinds = set()
    for problem in PROBLEMS.values():
        space = SearchSpace.from_dict(problem.space)
        kinds |= {p.kind for p in space.params}
    assert kinds == {"float", "int", "categorical"}


@pytest.mark.parametrize("name", sorted(MINIMISERS))
def test_known_minimisers_reach_the_optimum(name: str) -> None:
    problem = PROBLEMS[name]
    for params in MINIMISERS[name]:
        assert problem(params) == pytest.approx(problem.optimum, abs=1e-4)


@pytest.mark.parametrize("name", sorted(MINIMISERS))
def test_no_random_point_beats_the_optimum(name: str) -> None:
    problem = PROBLEMS[name]
    space = SearchSpace.from_dict(problem.space)
    rng = np.random.default_rng(0)
    values = [problem(space.decode(u)) for u in rng.random((2000, space.dim))]
    assert min(values) >= problem.optimum - 1e-6
    assert max(values) > problem.optimum + 1.0  # and the objective is not flat


def test_mixed6_categories_change_the_optimum_location() -> None:
    problem = PROBLEMS["mixed6"]
    best = {"x": 0.7, "lr": 1e-2, "depth": 7, "width": 24, "kernel": "rbf", "shrinking": True}
    assert problem({**best, "kernel": "linear"}) > 1.0  # rbf's x is poor for linear
    assert problem({**best, "kernel": "linear", "x": 0.15}) == pytest.approx(0.6)
    assert problem({**best, "shrinking": False, "lr": 1e-3}) == pytest.approx(0.25)
