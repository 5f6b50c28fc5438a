"""The benchmark problems: valid spaces, and the synthetic optima where they are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from amtune.strategies import SearchSpace
from benchmarks.mixed import FAMILY6, OPTIM8
from benchmarks.problems import DEV, HELD_OUT, PROBLEMS, PUBLIC

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
    "switch5": [{"x0": 0.8, "x1": 0.2, "x2": 0.0, "x3": 1.0, "mode": "a"}],
    "cond5": [{"model": "tree", "x": 0.6, "alpha": 1e-4, "depth": 14, "k": 50}],
    "intcat4": [{"arch": "medium", "units": 32, "layers": 4, "dropout": 0.2}],
    "optim8": [{"optimizer": "nesterov", "lr": 10**-2.2, "momentum": 0.8, "batch": 128}],
    "family6": [{"family": "f3", "x": 0.85, "y": 0.6}],
    "pair9": [{"first": "c", "second": "z", "u": 0.75, "v": 0.15}],
}
# Synthetic mixed problems: the best point of every other category, and the threshold.
OTHER_BASINS = {
    "switch5": ("mode", [{"x0": 0.3, "x1": 0.2, "x2": 0.3, "x3": 0.6, "mode": "b"},
                         {"x0": 0.3, "x1": 0.2, "x2": 0.7, "x3": 0.2, "mode": "c"}]),
    "cond5": ("model", [{"model": "linear", "x": 0.4, "alpha": 0.1, "depth": 1, "k": 1},
                        {"model": "knn", "x": 0.5, "alpha": 1.0, "depth": 1, "k": 5}]),
    "intcat4": ("arch", [{"arch": a, "units": u, "layers": n, "dropout": d}
                         for a, u, n, d in [("small", 8, 6, 0.1), ("large", 96, 2, 0.3),
                                            ("huge", 200, 1, 0.4)]]),
    "family6": ("family", [{"family": f, "x": bx, "y": by}
                           for f, (_, bx, by, _) in FAMILY6.items() if f != "f3"]),
    "optim8": ("optimizer", [{"optimizer": o, "lr": 10**lr, "momentum": m or 0.5,
                              "batch": 2**b} for o, (_, lr, m, b) in OPTIM8.items()
                             if o != "nesterov"]),
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


@pytest.mark.parametrize("name", sorted(OTHER_BASINS))
def test_every_other_category_is_beyond_the_basin_threshold(name: str) -> None:
    problem = PROBLEMS[name]
    key, others = OTHER_BASINS[name]
    best = MINIMISERS[name][0][key]
    assert problem.basin is not None
    floors = [problem(p) - problem.optimum for p in others]
    assert min(floors) > problem.basin  # ending in another category counts as wrong
    space = SearchSpace.from_dict(problem.space)
    rng = np.random.default_rng(1)
    for u in rng.random((3000, space.dim)):  # no point of another category beats its floor
        p = space.decode(u)
        if p[key] != best:
            assert problem(p) - problem.optimum > problem.basin


def test_sets_are_disjoint_and_every_mixed_problem_has_a_threshold() -> None:
    assert not set(DEV) & set(HELD_OUT)
    assert not (set(DEV) | set(HELD_OUT)) & set(PUBLIC)
    assert len(set(DEV) | set(HELD_OUT)) >= 5
    for name in (*DEV, *HELD_OUT):
        assert PROBLEMS[name].basin is not None
        kinds = {p.kind for p in SearchSpace.from_dict(PROBLEMS[name].space).params}
        assert "categorical" in kinds


def test_pair9_needs_both_categoricals_and_has_a_decoy() -> None:
    problem = PROBLEMS["pair9"]
    assert problem.basin is not None
    at_best = {"first": "c", "second": "z", "u": 0.75, "v": 0.15}
    decoy = {"first": "a", "second": "x", "u": 0.2, "v": 0.3}
    assert problem(decoy) == pytest.approx(0.2)  # the best wrong pair
    assert problem({**at_best, "first": "a"}) > 0.6  # c alone and z alone are poor
    assert problem({**at_best, "second": "x"}) > 0.6
    space = SearchSpace.from_dict(problem.space)
    for u in np.random.default_rng(2).random((3000, space.dim)):
        p = space.decode(u)
        if (p["first"], p["second"]) != ("c", "z"):
            assert problem(p) - problem.optimum > problem.basin


def test_ridge_diabetes_best_known_value_and_trap() -> None:
    problem = PROBLEMS["ridge_diabetes"]
    best = {"scaler": "none", "degree": 2, "interaction_only": True, "alpha": 10**-2.577}
    assert problem(best) == pytest.approx(problem.optimum, abs=2e-6)
    # the standardised, linear pipeline (the obvious first choice) is a wrong basin
    linear = {"scaler": "standard", "degree": 1, "interaction_only": False, "alpha": 1.5}
    assert problem(linear) - problem.optimum > problem.basin
