"""What the user watches: a rich live line on a terminal, plain lines otherwise.

Trials finish in Prefect's worker threads; the round reports them here, so the
display is process-local and costs nothing when no reporter is installed.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from amtune.tasks.store.tracking import TrialRecord
from rich.console import Console
from rich.live import Live
from rich.text import Text


class Reporter:
    """Counts trials against the budget and shows the best value and an ETA."""

    def __init__(self, metric: str, sign: float, total: int, done: int = 0, failed: int = 0,
                 best: float | None = None, stream: TextIO | None = None,
                 live: bool | None = None) -> None:
        self.metric, self.sign, self.total = metric, sign, total
        self.done, self.failed, self.best = done, failed, best
        self.stream = stream or sys.stderr
        self.live_mode = self.stream.isatty() if live is None else live
        self._start, self._start_done = time.monotonic(), done
        self._lock = threading.Lock()
        self._live: Live | None = None
        self._started = False  # False while Prefect and MLflow start up

    def begin(self, done: int, failed: int, best: float | None) -> None:
        """The study is open: count from its history and time the ETA from now.

        Trials finished before a resume, and the start-up time, would otherwise
        make the ETA too optimistic (or too pessimistic).
        """
        with self._lock:
            self.done, self.failed, self.best = done, failed, best
            self._start, self._start_done, self._started = time.monotonic(), done, True
            if self._live is not None:
                self._live.update(self._line())

    def __enter__(self) -> Reporter:
        if self.live_mode:
            self._live = Live(self._line(), console=Console(file=self.stream),
                              refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self._line())
            self._live.__exit__(None, None, None)
            self._live = None

    def _eta(self) -> str:
        ran = self.done - self._start_done
        if ran <= 0 or self.done >= self.total:
            return "-"
        per = (time.monotonic() - self._start) / ran
        return f"{per * (self.total - self.done):.0f}s"

    def _best(self) -> str:
        return "-" if self.best is None else f"{self.best:.6g}"

    def _line(self) -> Text:
        if not self._started and self.done == 0:
            return Text(f"trials 0/{self.total}  starting Prefect and MLflow...")
        return Text(f"trials {self.done}/{self.total}  failed {self.failed}  "
                    f"best {self.metric} {self._best()}  eta {self._eta()}")

    def trial(self, rec: TrialRecord) -> None:
        with self._lock:
            self.done += 1
            if rec.status == "failed":
                self.failed += 1
            elif rec.value is not None and (
                    self.best is None or self.sign * rec.value < self.sign * self.best):
                self.best = rec.value
            if self._live is not None:
                self._live.update(self._line())
                return
            what = (f"{self.metric}={rec.value:.6g}" if rec.status == "completed"
                    and rec.value is not None else f"failed ({rec.reason})")
            print(f"trial-{rec.number:04d} {what}  [{self.done}/{self.total}, "
                  f"best {self._best()}]",
                  file=self.stream, flush=True)


_current: Reporter | None = None


def install(reporter: Reporter | None) -> None:
    global _current
    _current = reporter


def current() -> Reporter | None:
    return _current


def trial_done(rec: TrialRecord) -> None:
    if _current is not None:
        _current.trial(rec)
