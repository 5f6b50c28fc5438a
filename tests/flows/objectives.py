"""Objectives used by the flow tests (imported by name from specs, like user code)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def loss(params: dict[str, Any]) -> float:
    return (params["x"] - 1.0) ** 2 + params["y"] + (0.5 if params["kind"] == "b" else 0.0)


def quadratic(params: dict[str, Any], report: Callable[..., None]) -> dict[str, float]:
    """Reports three steps of a decreasing ``progress`` metric, returns ``loss``."""
    for step in range(3):
        report(step, progress=loss(params) + 2 - step)
    return {"loss": loss(params), "aux": 1.0}


def slow(params: dict[str, Any]) -> float:
    time.sleep(float(os.environ.get("AMTUNE_TEST_SLEEP", "0.4")))
    return loss(params)


def flaky_once(params: dict[str, Any]) -> float:
    """Fails on the first attempt for each point, succeeds on the second."""
    marker = Path(os.environ["AMTUNE_TEST_DIR"]) / f"seen-{params['x']!r}"
    if not marker.exists():
        marker.touch()
        raise RuntimeError("transient failure")
    return loss(params)


def always_fails(params: dict[str, Any]) -> float:
    raise ValueError("this trial never works")


def loss_only(params: dict[str, Any]) -> float:
    return loss(params)
