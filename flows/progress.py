"""What the user watches: a rich live line on a terminal, plain lines otherwise.

Trials finish in Prefect's worker threads; the round hands each one to the reporter
the study flow was given (the CLI passes one), so the display is process-local and
costs nothing without one.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.text import Text

from amtune.tasks.store.schema import TrialRecord, best_trial, counted


class Reporter:
    """Counts trials against the budget and shows the best value and an ETA."""

    def __init__(self, metric: str, sign: float, total: int, done: int = 0, failed: int = 0,
                 stream: TextIO | None = None, live: bool | None = None) -> None:
        self.metric, self.sign, self.total = metric, sign, total
        self.done, self.failed, self.stopped = done, failed, 0
        self.best_trial: TrialRecord | None = None
        self.stream = stream or sys.stderr
        self.live_mode = self.stream.isatty() if live is None else live
        self._start, self._start_done = time.monotonic(), done
        self._lock = threading.Lock()
        self._live: Live | None = None
        self._started = False  # False while Prefect and MLflow start up

    @property
    def best(self) -> float | None:
        return None if self.best_trial is None else self.best_trial.value

    def begin(self, records: list[TrialRecord]) -> None:
        """The study is open: count from its history and time the ETA from now.

        Trials finished before a resume, and the start-up time, would otherwise
        make the ETA too optimistic (or too pessimistic).
        """
        done = counted(records)
        with self._lock:
            self.done, self.failed = len(done), sum(r.status == "failed" for r in done)
            self.stopped = sum(r.status == "stopped" for r in done)
            self.best_trial = best_trial(done, self.sign)
            self._start, self._start_done, self._started = time.monotonic(), self.done, True
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
        stopped = f"stopped {self.stopped}  " if self.stopped else ""
        return Text(f"trials {self.done}/{self.total}  failed {self.failed}  {stopped}"
                    f"best {self.metric} {self._best()}  eta {self._eta()}")

    def trial(self, rec: TrialRecord) -> None:
        with self._lock:
            self.done += 1
            self.failed += rec.status == "failed"
            self.stopped += rec.status == "stopped"
            self.best_trial = best_trial([r for r in (self.best_trial, rec) if r], self.sign)
            if self._live is not None:
                self._live.update(self._line())
                return
            if rec.status == "failed":
                what = f"failed ({rec.reason})"
            elif rec.status == "stopped":
                what = f"stopped at step {rec.stopped_at} ({self.metric}={rec.value:.6g})"
            else:
                what = f"{self.metric}={rec.value:.6g}"
            print(f"trial-{rec.number:04d} {what}  [{self.done}/{self.total}, "
                  f"best {self._best()}]",
                  file=self.stream, flush=True)
