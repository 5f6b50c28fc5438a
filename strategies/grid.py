"""Grid search: every combination of a few values per parameter, in a fixed order."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from amtune.strategies.base import Strategy, Trial, register
from amtune.strategies.space import Categorical, Numeric, SearchSpace, SpaceError


def _numeric_axis(p: Numeric, points: int | None) -> list[Any]:
    """``points`` values evenly spaced in the parameter's scale, both bounds included.

    An int whose range has no more values than ``points`` (or that has no
    ``points`` at all) uses every value; rounding a log-spaced int axis can
    merge neighbours, which are then kept once.
    """
    k = p.points or points
    if p.kind == "int":
        n_values = p.n_values or 1
        if k is None or n_values <= k:
            return list(range(int(p.low), int(p.high) + 1))
    if k is None:
        raise SpaceError(
            f"parameters.{p.name}.points", None,
            "grid needs a number of points (a whole number >= 2) for a float parameter: "
            "set points on the parameter or the grid option points",
        )
    ends = p._warp(np.array([p.low, p.high], dtype=float))
    values = p._unwarp(np.linspace(ends[0], ends[1], k))
    values[0], values[-1] = p.low, p.high  # exact bounds despite exp(log(x))
    if p.kind == "int":
        return list(dict.fromkeys(int(v) for v in np.floor(values + 0.5)))
    return [float(v) for v in values]


def grid_axes(space: SearchSpace, points: int | None = None) -> list[list[Any]]:
    """The values of each parameter, in the space's parameter order."""
    return [
        list(p.values) if isinstance(p, Categorical) else _numeric_axis(p, points)
        for p in space.params
    ]


def iter_grid(space: SearchSpace, points: int | None = None) -> Iterator[dict[str, Any]]:
    """Every grid point, first parameter slowest (the order ``itertools.product`` gives)."""
    for combo in itertools.product(*grid_axes(space, points)):
        yield dict(zip(space.names, combo, strict=True))


@register
class GridSearch(Strategy):
    """Walks the grid in order and proposes the first ``n`` points not in the history.

    Skipping history points (of any status) rather than counting them makes
    rounds split arbitrarily give the same sequence, and lets a study resume.
    """

    name = "grid"

    def __init__(self, space: SearchSpace, seed: int = 0, *, points: int | None = None) -> None:
        super().__init__(space, seed)
        if points is not None and (isinstance(points, bool) or not isinstance(points, int)
                                   or points < 2):
            raise ValueError(
                f"strategy.options.points: {points!r} is not allowed; "
                "must be a whole number >= 2"
            )
        self.points = points
        self._axes = grid_axes(space, points)  # validates: every float has points

    def size(self) -> int:
        return math.prod(len(axis) for axis in self._axes)

    def propose(self, history: Sequence[Trial], n: int) -> list[dict[str, Any]]:
        seen = self._seen(history)
        out: list[dict[str, Any]] = []
        if n <= 0:
            return out
        for params in iter_grid(self.space, self.points):
            if self.space.key(params) not in seen:
                out.append(params)
                if len(out) == n:
                    break
        return out
