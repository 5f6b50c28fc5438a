"""Objectives for the scale tests: cheap, deterministic, and telling where they ran."""

from __future__ import annotations

import os
import time
from typing import Any


def quad(params: dict[str, Any]) -> dict[str, float]:
    """A bowl with its minimum at (0.3, -0.2); ``pid`` shows which process ran the trial."""
    loss = (params["x"] - 0.3) ** 2 + (params["y"] + 0.2) ** 2
    return {"loss": loss, "pid": float(os.getpid())}


def slow_quad(params: dict[str, Any]) -> dict[str, float]:
    """``quad`` that takes a second, so a test can interrupt a study mid-round."""
    time.sleep(1.0)
    return quad(params)


def spec(name: str, tracking_uri: str, **extra: Any) -> dict[str, Any]:
    """A small study over ``quad``; keyword arguments replace top-level keys."""
    data: dict[str, Any] = {
        "name": name,
        "objective": {"function": "tests.scale.objectives:quad", "metric": "loss"},
        "parameters": {
            "x": {"type": "float", "low": -1.0, "high": 1.0},
            "y": {"type": "float", "low": -1.0, "high": 1.0},
        },
        "strategy": {"name": "random"},
        "budget": {"max_trials": 4, "max_parallel": 2},
        "seed": 0,
        "tracking": {"uri": tracking_uri},
    }
    data.update(extra)
    return data
