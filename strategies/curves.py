"""A trial's intermediate values as the early-stopping rules read them.

Values are minimised; NaN counts as +inf, the worst value (a diverged run). A step is
the resource used so far, counted from 1; a trial's value "at" step k is its value at
the first step it reported at or after k (steps may be irregular).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

CURVE_STATUSES = ("running", "completed", "stopped", "failed")


def clean(value: float) -> float:
    value = float(value)
    return math.inf if math.isnan(value) else value


@dataclass(frozen=True)
class Curve:
    """One trial's intermediate values (step -> value) and where it stands.

    ``completed`` and ``stopped`` trials are finished: their curves never change
    again, so the caller can build their ``Curve`` once and keep it; each question a
    rule asks of a curve is then a binary search, not a pass over its history.
    ``failed`` trials' values count like any other (they were reported).
    """

    values: Mapping[int, float]
    status: str = "running"
    _steps: np.ndarray = field(init=False, repr=False, compare=False)
    _vals: np.ndarray = field(init=False, repr=False, compare=False)
    _sums: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.status not in CURVE_STATUSES:
            raise ValueError(
                f"Curve.status: {self.status!r}; allowed: {', '.join(CURVE_STATUSES)}"
            )
        steps = sorted(self.values)
        vals = np.array([clean(self.values[k]) for k in steps], dtype=float)
        object.__setattr__(self, "_steps", np.array(steps, dtype=np.int64))
        object.__setattr__(self, "_vals", vals)
        object.__setattr__(self, "_sums", np.cumsum(vals))

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "stopped")

    @property
    def last_step(self) -> int | None:
        return int(self._steps[-1]) if len(self._steps) else None

    def reached(self, step: int) -> bool:
        return bool(len(self._steps)) and int(self._steps[-1]) >= step

    def at(self, step: int) -> float:
        """The value at the first reported step at or after ``step`` (it must be reached)."""
        return float(self._vals[int(np.searchsorted(self._steps, step, side="left"))])

    def running_average(self, step: int) -> float:
        """Mean of the values reported up to ``step`` (of the first one, if none is)."""
        n = int(np.searchsorted(self._steps, step, side="right"))
        return float(self._sums[n - 1] / n) if n else self.at(step)
