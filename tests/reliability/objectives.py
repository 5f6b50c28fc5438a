"""Objectives for the reliability tests (imported by name from specs, like user code)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


def gated(params: dict[str, Any]) -> float:
    """Waits for the file named by AMTUNE_TEST_GATE (at most 5 minutes), then returns.

    Lets a test hold a study mid-trial for exactly as long as it needs, with no
    guessing about how long the machine takes.
    """
    gate = Path(os.environ["AMTUNE_TEST_GATE"])
    deadline = time.monotonic() + 300
    while not gate.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return float(params["x"]) ** 2
