"""What a trial attempt produces, shared by the function and command runners."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Report = Callable[[int, dict[str, float]], None]


@dataclass
class Outcome:
    """What a successful trial produced.

    ``metrics`` holds the final value of every metric, the objective metric
    included. For command trials each final value is the last value already passed
    to ``report``; for function trials the returned values were not reported.
    """

    metrics: dict[str, float]
    output: str | None = None  # captured stdout+stderr of a command trial
