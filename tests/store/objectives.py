"""Objectives for the store tests (imported by name from specs, like user code)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def gated(params: dict[str, Any]) -> float:
    """Waits until the gate file exists: the test looks at MLflow while it runs."""
    gate = Path(os.environ["AMTUNE_TEST_GATE"])
    deadline = time.monotonic() + 60
    while not gate.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return float(params["x"]) ** 2


def spaced_reports(params: dict[str, Any], report: Callable[..., None]) -> float:
    """``loss`` at steps 1, 2, 3, further apart than the metric buffer's flush interval."""
    for step in (1, 2, 3):
        report(step, loss=float(params["x"]) + step)
        time.sleep(float(os.environ.get("AMTUNE_TEST_PAUSE", "0.3")))
    return float(params["x"]) + 3


def long_metric_name(params: dict[str, Any]) -> dict[str, float]:
    """A metric key MLflow refuses (over 250 characters): the final write fails for good."""
    return {"loss": 1.0, "m" * 300: 2.0}
