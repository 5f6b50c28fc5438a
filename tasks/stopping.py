"""Early stopping in the trial: each reported objective value goes to the study's rule.

The rule (``strategies/early_stopping.py``) is pure; this is its glue. It needs every
trial's curve of the objective metric (minimised: ``sign * value``), which come from
two places:

- trials running in this process (Prefect's thread pool): their curves as reported,
  shared in memory through one :class:`Board` per process (``StudyStore.shared``);
  when one ends, its curve is kept as finished and never read from MLflow;
- every other trial: MLflow, through the store. A finished trial's history is read
  once and kept (it never changes); a trial running in another process (a Dask
  worker, another runner) is read again at each refresh.

Cost per judged step: the rule itself (a binary search per other trial) plus building
a ``Curve`` of each in-process running trial (its steps so far); at most one MLflow
refresh per ``REFRESH_S`` per process, shared by all its trials, which is an
incremental ``search_runs`` (``StudyStore.history``), one ``get_metric_history`` per
trial that finished elsewhere (once in the study's life in this process) and one per
trial running elsewhere. With the default thread pool a study reads nothing per step
once its finished trials are cached.

Steps: the rules count from 1 (step 1 = one epoch done). A command trial's k-th match
of the objective metric is logged at MLflow step k-1 (``MetricParser`` counts from 0)
and judged as step k; a function trial's ``report(step, ...)`` is judged at ``step``
as given (steps below 1 are logged, not judged). ``amtune.stopped_at_step`` holds the
judged step, i.e. the epochs done.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping

from amtune.strategies.early_stopping import Curve, StoppingRule
from amtune.tasks.runners.outcome import Report
from amtune.tasks.store.study import StudyStore

REFRESH_S = 1.0  # how stale the view of trials outside this process may be
log = logging.getLogger(__name__)
_FINISHED = ("completed", "stopped", "failed")


class Board:
    """One process's view of a study's curves (minimised), shared by its trials."""

    def __init__(self, store: StudyStore, metric: str, sign: float, offset: int) -> None:
        self.store, self.metric, self.sign, self.offset = store, metric, sign, offset
        self._lock = threading.Lock()
        self._refreshing = threading.Lock()
        self.running: dict[int, dict[int, float]] = {}  # trials running in this process
        self.finished: dict[int, Curve] = {}  # never change: built once
        self.elsewhere: dict[int, Curve] = {}  # running in another process, as last read
        self._refreshed: float | None = None

    def begin(self, number: int) -> None:
        """An attempt starts: its curve starts empty (a retry does not inherit one)."""
        with self._lock:
            self.running[number] = {}
            self.elsewhere.pop(number, None)

    def record(self, number: int, step: int, value: float) -> None:
        with self._lock:
            self.running.setdefault(number, {})[step] = value

    def end(self, number: int, status: str | None) -> None:
        """An attempt ended: finished with ``status``, or None (it will be retried)."""
        with self._lock:
            values = self.running.pop(number, {})
            if status is not None:
                self.finished[number] = Curve(values, status)

    def histories(self) -> dict[int, Curve]:
        self._refresh()
        with self._lock:
            out = {**self.elsewhere, **self.finished}
            out.update((n, Curve(dict(v))) for n, v in self.running.items() if v)
        return out

    def _refresh(self) -> None:
        """Trials outside this process, from MLflow, one read at a time. The first read
        (a resumed study's earlier trials) is made by the first attempt to start, before
        its objective runs (``StoppingReport``); later ones
        run in a thread of their own while decisions go on with what is known: a read
        can take seconds while the store is busy, and a stop decided that late lets the
        trial run on (measured: up to 2.3 s, whole 0.5 s trials run past their stop)."""
        now = time.monotonic()
        if self._refreshed is not None and now - self._refreshed < REFRESH_S:
            return
        if not self._refreshing.acquire(blocking=False):
            return
        if self._refreshed is None:
            self._read_outside()
        else:
            threading.Thread(target=self._read_in_background, daemon=True,
                             name="amtune-board-refresh").start()

    def _read_in_background(self) -> None:
        try:
            self._read_outside()
        except Exception as exc:  # the next refresh tries again; no trial fails for it
            log.warning("early stopping: reading other trials from MLflow failed: %s", exc)

    def _read_outside(self) -> None:
        """The read itself; the caller holds ``_refreshing``, released here."""
        try:
            with self._lock:
                known = set(self.finished) | set(self.running)
            elsewhere: dict[int, Curve] = {}
            finished: dict[int, Curve] = {}
            for r in self.store.history():
                if r.number in known or r.number < 0:
                    continue
                if r.status in _FINISHED:
                    finished[r.number] = Curve(self._read(r.run_id), r.status)
                elif r.status == "running":
                    elsewhere[r.number] = Curve(self._read(r.run_id))
            with self._lock:
                for n, c in finished.items():
                    self.finished.setdefault(n, c)
                self.elsewhere = {n: c for n, c in elsewhere.items() if n not in self.running}
            self._refreshed = time.monotonic()
        finally:
            self._refreshing.release()

    def _read(self, run_id: str) -> dict[int, float]:
        """A run's objective curve, minimised, in the rules' steps (see the module)."""
        raw = self.store.metric_history(run_id, self.metric)
        return {k: self.sign * v for step, v in raw.items() if (k := step + self.offset) >= 1}


def board(store: StudyStore, metric: str, sign: float, offset: int) -> Board:
    """The process's board for this study (``offset``: 1 for command trials, else 0)."""
    return store.shared(lambda: Board(store, metric, sign, offset))


class StoppingReport:
    """The ``report`` callback of one attempt under a rule: log, then judge.

    Once the rule says stop, later reports are dropped, so MLflow holds the history up
    to the stop. ``stopped`` is what the runners poll (``run_objective(stop=...)``).
    """

    def __init__(self, log: Report, rule: StoppingRule, board: Board, number: int) -> None:
        self.log, self.rule, self.board, self.number = log, rule, board, number
        self.metric, self.sign, self.offset = board.metric, board.sign, board.offset
        self.stopped_at: int | None = None
        board.begin(number)
        board.histories()  # the first read of the study happens here, before the trial runs

    def __call__(self, step: int, metrics: Mapping[str, float]) -> None:
        if self.stopped_at is not None:
            return
        self.log(step, metrics)
        if self.metric not in metrics:
            return
        k = int(step) + self.offset
        value = self.sign * float(metrics[self.metric])
        if k < 1:
            return  # not judged (the rules count from 1); logged all the same
        self.board.record(self.number, k, value)
        if self.rule.should_stop(self.number, k, value, self.board.histories()):
            self.stopped_at = k

    def stopped(self) -> int | None:
        return self.stopped_at
