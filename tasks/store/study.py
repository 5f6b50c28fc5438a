"""``StudyStore``: one object per study through which every MLflow read and write goes.

It is made once per study and handed to every task. It holds what the study needs to
reach MLflow (URI, experiment, parent run, outage timeout) as plain fields, so it
shows as such in Prefect's UI and pickles small for Dask workers, which rebuild the
live parts (client, outage clock, history cache) on first use.

Identity is race-free (``parent.py``): two runners starting a new study at once each create a parent
run, wait a moment, and keep the oldest (start time, then run id); the other deletes
its own. The runner lease (``lease.py``) then lets exactly one of them run it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from mlflow.entities import Param, RunTag
from pydantic import BaseModel, ConfigDict, PrivateAttr

from amtune.strategies import SearchSpace
from amtune.tasks.runners.process import TrialProcess
from amtune.tasks.store import schema as S
from amtune.tasks.store.client import connect
from amtune.tasks.store.known import Known
from amtune.tasks.store.metrics import MetricBuffer, now_ms
from amtune.tasks.store.outage import DEFAULT_OUTAGE_TIMEOUT_S, OutageGuard
from amtune.tasks.store.parent import ParentRun
from amtune.tasks.store.reads import TrialReads
from amtune.tasks.store.schema import TrialRecord

T = TypeVar("T")


class _Live:
    """The store's live parts, one object shared by every copy of the store.

    Prefect rebuilds a pydantic task argument when it walks the arguments, copying
    private attributes by reference: keeping them in one object keeps one client,
    one outage clock and one history cache per study in a process.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.client: Any = None
        self.known = Known()
        self.last_read: int | None = None
        self.told: dict[str, Callable[[TrialRecord], None]] = {}  # run id -> on its end
        self.board: Any = None  # early stopping's curves (tasks/stopping.py), one per process


class StudyStore(TrialReads, ParentRun, BaseModel):
    """Where a study lives in MLflow, and every read and write of it."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    uri: str
    experiment: str
    study: str
    outage_timeout_s: float = DEFAULT_OUTAGE_TIMEOUT_S
    experiment_id: str | None = None
    parent_id: str | None = None
    space: dict[str, Any] = {}
    metric: str = "value"

    _live: _Live = PrivateAttr(default_factory=lambda: _Live())

    def __getstate__(self) -> dict[Any, Any]:
        """Only the fields travel (to Dask workers); the live parts are rebuilt there."""
        state = super().__getstate__()
        state["__pydantic_private__"] = None
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        self.model_post_init(None)

    @property
    def client(self) -> Any:
        live = self._live
        with live.lock:
            if live.client is None:
                live.client = connect(self.uri, OutageGuard(self.outage_timeout_s))
            return live.client

    @property
    def search_space(self) -> SearchSpace:
        return SearchSpace.from_dict(self.space)

    # -- trials ----------------------------------------------------------------------

    def remember(self, record: TrialRecord, local: bool = False) -> None:
        """What this runner knows of a trial it ran; ``local``: its start, whose end
        will be remembered too, so reads leave it out until then."""
        with self._live.lock:
            before = self._live.known.get(record.run_id)
            if record.start_ms is None and before is not None:
                record.start_ms = before.start_ms  # history() leaves known runs out by it
            self._live.known.put(record, local)
            tell = self._live.told.pop(record.run_id, None) if record.status != "running" else None
        if tell is not None:
            tell(record)

    def on_end(self, run_id: str, tell: Callable[[TrialRecord], None]) -> None:
        """Call ``tell`` with the trial's record once it is written as ended, if that
        happens in this process (``finish_trial`` in a thread of the flow's process),
        so the slot frees before Prefect has finished the task run."""
        with self._live.lock:
            self._live.told[run_id] = tell

    def start_trial(self, number: int, round_: int, params: Mapping[str, Any],
                    strategy: str) -> str:
        """A RUNNING child run holding the trial's params from the start."""
        tags = {S.PARENT: self.parent_id, S.STUDY: self.study, S.TRIAL: str(number),
                S.ROUND: str(round_), S.STRATEGY: strategy}
        retried = self._retries()
        run = self.client.create_run(self.experiment_id, run_name=f"trial-{number:04d}",
                                     tags=tags)
        run_id = run.info.run_id
        if self._retries() != retried:
            self._drop_twins(number, run_id)
        self.client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])
        self.remember(TrialRecord(number, round_, "running", run_id, dict(params),
                                  start_ms=run.info.start_time), local=True)
        return str(run_id)

    def _retries(self) -> int:
        return int(self.client._guard.retried)

    def _drop_twins(self, number: int, run_id: str) -> None:
        """Delete runs a retried ``create_run`` left behind.

        A create whose answer was lost in an outage may have been committed: the
        retry then makes a second run, and the first would stay RUNNING for ever.
        """
        flt = (f"tags.`{S.PARENT}` = '{self.parent_id}' and tags.`{S.TRIAL}` = '{number}' "
               "and attributes.status = 'RUNNING'")
        for r in self.client.search_runs([self.experiment_id], flt):
            if r.info.run_id != run_id:
                self.client.delete_run(r.info.run_id)

    def buffer(self, run_id: str) -> MetricBuffer:
        return MetricBuffer(lambda batch: self.client.log_batch(run_id, metrics=batch))

    def mark_process(self, run_id: str, process: TrialProcess) -> None:
        """Where a command trial runs, so a resume can end it if its runner died."""
        self.client.log_batch(run_id, tags=[RunTag(S.PID, str(process.pid)),
                                            RunTag(S.HOST, process.host),
                                            RunTag(S.TOKEN, process.token)])

    def finish_trial(self, record: TrialRecord, buffer: MetricBuffer, *,
                     output: str | None = None, stopped_at: int | None = None) -> None:
        """One batch (metrics, tags) and one status update for a completed (or stopped) trial."""
        tags = {S.ATTEMPTS: str(record.attempts), S.DURATION: f"{record.duration_s or 0:.3f}"}
        if stopped_at is not None:
            tags[S.STOPPED_AT] = str(stopped_at)
        self.client.log_batch(record.run_id, metrics=buffer.final(record.metrics),
                              tags=[RunTag(k, v) for k, v in tags.items()])
        if output:
            self.client.log_text(record.run_id, output, "output.txt")
        self.client.set_terminated(record.run_id, "FINISHED", end_time=now_ms())
        self.remember(record)

    def fail_attempt(self, record: TrialRecord, buffer: MetricBuffer, *,
                     failure_tags: Mapping[str, str], final: bool,
                     output: str | None = None) -> None:
        """Every attempt's cause is kept; the final one also fails the run with its reason."""
        k = record.attempts
        tags = {S.attempt_tag(k, key): v for key, v in failure_tags.items()}
        tags[S.attempt_tag(k, "duration_s")] = f"{record.duration_s or 0:.3f}"
        if final:
            tags.update({S.ATTEMPTS: str(k), S.DURATION: f"{record.duration_s or 0:.3f}",
                         S.REASON: record.reason or "exception"})
        self.client.log_batch(record.run_id, metrics=buffer.take(),
                              tags=[RunTag(a, b) for a, b in tags.items()])
        if not final:
            return
        if output:
            self.client.log_text(record.run_id, output, "output.txt")
        self.client.set_terminated(record.run_id, "FAILED", end_time=now_ms())
        self.remember(record)

    def close_stale(self, records: list[TrialRecord], reason: str) -> list[TrialRecord]:
        """Mark RUNNING trials of a crashed runner KILLED (not counted); returns them.

        Their processes are the caller's business (``tasks.runners``): only this
        runner knows whether it is on the same host.
        """
        out = []
        for r in records:
            if r.status == "running":
                self.client.log_batch(r.run_id, tags=[RunTag(S.REASON, reason)])
                self.client.set_terminated(r.run_id, "KILLED", end_time=now_ms())
                r.status = "killed"
                self.remember(r)
                out.append(r)
        return out

    def shared(self, make: Callable[[], T]) -> T:
        """Early stopping's per-process board of curves, made on first use.

        One object for every copy of the store in this process, so trials running in
        its threads see each other's reports without a read; a Dask worker has its own.
        """
        live = self._live
        with live.lock:
            if live.board is None:
                live.board = make()
            return live.board  # type: ignore[no-any-return]

    def metric_history(self, run_id: str, key: str) -> dict[int, float]:
        """One metric's values by step; a step logged twice (a retried attempt): the later."""
        points = sorted(self.client.get_metric_history(run_id, key), key=lambda m: m.timestamp)
        return {int(m.step): float(m.value) for m in points}

    def process_of(self, run_id: str) -> TrialProcess | None:
        """The process a command trial recorded when it started, if any."""
        tags = self.client.get_run(run_id).data.tags
        if S.PID in tags and S.HOST in tags:
            return TrialProcess(int(tags[S.PID]), tags[S.HOST], tags.get(S.TOKEN, ""))
        return None

