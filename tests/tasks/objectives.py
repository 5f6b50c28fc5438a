"""Objective functions the function-trial tests run by reference ("module:attr")."""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable
from typing import Any

released = threading.Event()


def quadratic(params: dict[str, Any]) -> float:
    return (params["x"] - 2.0) ** 2


def with_metrics(params: dict[str, Any]) -> dict[str, float]:
    return {"loss": params["x"] * 2, "accuracy": 0.5}


def with_report(params: dict[str, Any], report: Callable[..., None]) -> dict[str, float]:
    for epoch in range(3):
        report(epoch, loss=1.0 / (epoch + 1), lr=params["lr"])
    report(3, aux=7)
    return {"loss": 0.25}


def raises(params: dict[str, Any]) -> float:
    raise FileNotFoundError(f"no data for {params['x']}")


def exits(params: dict[str, Any]) -> float:
    raise SystemExit(4)


def returns(params: dict[str, Any]) -> Any:
    return params["value"]


def bad_report(params: dict[str, Any], report: Callable[..., None]) -> float:
    report(0, loss="high")
    return 1.0


def swallows_report_errors(params: dict[str, Any], report: Callable[..., None]) -> float:
    with contextlib.suppress(Exception):  # a trial that hides errors from amtune
        report(0, loss=1.0)
    return 1.0


def blocks(params: dict[str, Any], report: Callable[..., None]) -> float:
    """Waits until the test releases it; reports once released (after a timeout)."""
    released.wait(10)
    report(1, late=1.0)
    return 0.0


class Trainer:
    @staticmethod
    def fit(params: dict[str, Any]) -> float:
        return math.fsum(params.values())


NOT_CALLABLE = 42
