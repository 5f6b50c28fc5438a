"""What a trial attempt produces, shared by the function and command runners."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Report = Callable[[int, dict[str, float]], None]

# MLflow's rule for metric names (its portable variant, without ':'), checked here
# so a bad name fails the spec or the trial instead of the tracking write.
_METRIC_NAME = re.compile(r"^[/\w.\- ]+$")
METRIC_NAME_RULE = "letters, digits, spaces and _ - . / (not a path such as 'a/../b')"


def valid_metric_name(name: Any) -> bool:
    return (
        isinstance(name, str)
        and bool(_METRIC_NAME.match(name))
        and posixpath.normpath(name) == name
        and not name.startswith(("/", ".."))
        and name != "."
    )


@dataclass
class Outcome:
    """What a successful trial produced.

    ``metrics`` holds the final value of every metric, the objective metric
    included. For command trials each final value is the last value already passed
    to ``report``; for function trials the returned values were not reported.
    """

    metrics: dict[str, float]
    output: str | None = None  # captured stdout+stderr of a command trial
    # early stopping: the step (counted from 1) at which the rule stopped the trial;
    # ``metrics`` are then the last values reported up to there
    stopped_at: int | None = None
