"""A trial's metrics on their way to MLflow: collected step by step, written in batches.

Each write is a commit, so the ``report(step, metrics)`` calls of a fast trial are
buffered and go out with the trial's final batch; a long trial is flushed at most
every ``flush_s`` seconds so the UI stays live.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from mlflow.entities import Metric


def now_ms() -> int:
    return int(time.time() * 1000)


def finite(v: Any) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


class MetricBuffer:
    """Collects ``report(step, metrics)`` calls of one trial attempt.

    It remembers the last step and value of every metric across flushes, so the
    final metrics can be told apart from what was reported (and a metric reported
    at steps 1-3 in flushes seconds apart gets no extra point at step 0).
    """

    def __init__(self, write: Callable[[list[Metric]], None], flush_s: float = 5.0) -> None:
        self._write = write
        self.flush_s = flush_s
        self.pending: list[Metric] = []
        self.last: dict[str, tuple[int, float]] = {}  # metric -> (step, value) last reported
        self._lock = threading.Lock()
        self._last_flush = time.monotonic()

    def __call__(self, step: int, metrics: Mapping[str, float]) -> None:
        ts = now_ms()
        with self._lock:
            for k, v in metrics.items():
                if not finite(v):
                    continue
                self.pending.append(Metric(k, float(v), ts, int(step)))
                prev = self.last.get(k)
                if prev is None or int(step) >= prev[0]:
                    self.last[k] = (int(step), float(v))
            due = time.monotonic() - self._last_flush > self.flush_s
        if due:
            self.flush()

    def take(self) -> list[Metric]:
        with self._lock:
            out, self.pending = self.pending, []
            self._last_flush = time.monotonic()
        return out

    def flush(self) -> None:
        batch = self.take()
        if batch:
            self._write(batch)

    def final(self, metrics: Mapping[str, float]) -> list[Metric]:
        """What is still pending plus the final values that were never reported as such.

        A function's returned metrics are one value at step 0; a final value that
        differs from the last report goes one step after it.
        """
        out = self.take()
        ts = now_ms()
        for k, v in metrics.items():
            if not finite(v):
                continue
            prev = self.last.get(k)
            if prev is None:
                out.append(Metric(k, float(v), ts, 0))
            elif prev[1] != float(v):
                out.append(Metric(k, float(v), ts, prev[0] + 1))
        return out
