"""What a round hands its trial tasks: small and picklable, no live clients."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PlannedTrial:
    number: int
    round: int
    params: dict[str, Any]
    run_id: str
