"""Every MLflow call of amtune, in one place.

Layout (see DESIGN.md): one experiment per study, a parent run tagged
``amtune.study`` and one child run per trial whose ``mlflow.parentRunId`` tag is set
explicitly (``nested=True`` inside worker threads silently makes top-level runs).
Writes are few and batched because each one is a SQLite commit: a trial costs one
``create_run``, one ``log_batch`` and one ``set_terminated``.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from amtune.strategies import SearchSpace
from amtune.tasks.store.lease import LEASE_TAG
from amtune.tasks.store.outage import Guarded, OutageGuard, limit_http_retries
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.tracking import MlflowClient

P = "amtune."
PARENT_TAG = "mlflow.parentRunId"
STATUS = {"FINISHED": "completed", "FAILED": "failed", "RUNNING": "running",
          "KILLED": "killed", "SCHEDULED": "running"}
# Marks a model-training experiment for MLflow 3 UIs that read it. 3.17's UI ignores it and
# follows its GenAI / Model training switch instead: the CLI prints a link that sets it.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


@dataclass
class TrialRecord:
    """One trial as MLflow holds it, params decoded to their declared types."""

    number: int
    round: int
    status: str  # completed | failed | running | killed
    run_id: str
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    value: float | None = None  # the objective metric as the user sees it
    attempts: int = 1
    duration_s: float | None = None
    reason: str | None = None


@dataclass(frozen=True)
class StudyRun:
    run_id: str
    experiment_id: str
    status: str
    tags: Mapping[str, str]


def now_ms() -> int:
    return int(time.time() * 1000)


def sqlite_path(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    rest = uri[len("sqlite:///"):].split("?")[0]
    return None if rest in ("", ":memory:") else Path(rest)


# Every call below rides out tracking outages (tasks/outage.py); one clock per process.
GUARD = OutageGuard()


def set_outage_timeout(seconds: float) -> None:
    """How long the study waits for an unreachable tracking store (tracking.outage_timeout_s)."""
    GUARD.timeout_s = seconds


@lru_cache(maxsize=8)
def client(uri: str) -> MlflowClient:
    """One client per URI; SQLite databases are switched to WAL (persistent, ~10x cheaper)."""
    limit_http_retries()
    path = sqlite_path(uri)
    # SQLite has a single writer. Trial threads that write at once collide, and the
    # loser sleeps in SQLite's busy handler (1 ms, 2, 5, ... up to 100 ms a try): four
    # threads turned a 3 ms write into ~100 ms. Taking turns in the process is cheaper.
    lock = threading.Lock() if path is not None else None
    c: Any = Guarded(MlflowClient(tracking_uri=uri), GUARD, lock=lock)
    if path is not None:
        c.search_experiments(max_results=1)  # creates the schema on first use
        with sqlite3.connect(path, timeout=30) as db:
            db.execute("PRAGMA journal_mode=WAL")
    return c  # type: ignore[no-any-return]


def read_lease(uri: str, run_id: str) -> str | None:
    """The study's runner lease (tasks/lease.py) as stored on its parent run."""
    return client(uri).get_run(run_id).data.tags.get(LEASE_TAG)  # type: ignore[no-any-return]


def write_lease(uri: str, run_id: str, value: str) -> None:
    client(uri).set_tag(run_id, LEASE_TAG, value)


def experiment_id(uri: str, name: str) -> str | None:
    exp = client(uri).get_experiment_by_name(name)
    return None if exp is None or exp.lifecycle_stage == "deleted" else exp.experiment_id


def ensure_experiment(uri: str, name: str) -> str:
    c = client(uri)
    exp = c.get_experiment_by_name(name)
    if exp is None:
        return c.create_experiment(name, tags=EXPERIMENT_KIND)
    if exp.lifecycle_stage == "deleted":
        c.restore_experiment(exp.experiment_id)
    if exp.tags.get("mlflow.experimentKind") != EXPERIMENT_KIND["mlflow.experimentKind"]:
        for k, v in EXPERIMENT_KIND.items():
            c.set_experiment_tag(exp.experiment_id, k, v)
    return exp.experiment_id


def _study_filter(study: str) -> str:
    return f"tags.`{P}study` = '{study}' and tags.`{P}role` = 'study'"


def find_study(uri: str, study: str, experiment_id: str | None = None) -> StudyRun | None:
    """The parent run of a study (the newest if several), searching all experiments if needed."""
    c = client(uri)
    ids = [experiment_id] if experiment_id else [
        e.experiment_id for e in c.search_experiments(view_type=ViewType.ACTIVE_ONLY)]
    if not ids:
        return None
    runs = c.search_runs(ids, _study_filter(study), max_results=1,
                         order_by=["attributes.start_time DESC"])
    if not runs:
        return None
    r = runs[0]
    return StudyRun(r.info.run_id, r.info.experiment_id, r.info.status, dict(r.data.tags))


def list_studies(uri: str, experiment_id: str) -> list[StudyRun]:
    """Every study parent run of an experiment, newest first (warm start looks back)."""
    runs = client(uri).search_runs([experiment_id], f"tags.`{P}role` = 'study'",
                                   order_by=["attributes.start_time DESC"])
    return [StudyRun(r.info.run_id, r.info.experiment_id, r.info.status, dict(r.data.tags))
            for r in runs]


def create_study(uri: str, experiment_id: str, study: str, space: SearchSpace,
                 tags: Mapping[str, str], spec: Mapping[str, Any]) -> StudyRun:
    c = client(uri)
    all_tags = {f"{P}study": study, f"{P}role": "study",
                f"{P}space": json.dumps(space.to_dict(), sort_keys=True), **tags}
    run = c.create_run(experiment_id, run_name=study, tags=all_tags)
    c.log_dict(run.info.run_id, dict(spec), "spec.json")
    return StudyRun(run.info.run_id, experiment_id, "RUNNING", all_tags)


def stored_space(study: StudyRun) -> dict[str, Any] | None:
    raw = study.tags.get(f"{P}space")
    return None if raw is None else json.loads(raw)


def reopen_study(uri: str, run_id: str) -> None:
    client(uri).update_run(run_id, status="RUNNING")


def close_stale_trials(uri: str, trials: Iterable[TrialRecord], reason: str) -> int:
    """Mark RUNNING children of a crashed process KILLED so they are not counted."""
    c = client(uri)
    n = 0
    for t in trials:
        if t.status == "running":
            c.log_batch(t.run_id, tags=[RunTag(f"{P}reason", reason)])
            c.set_terminated(t.run_id, "KILLED", end_time=now_ms())
            n += 1
    return n


def create_trial(uri: str, experiment_id: str, parent_id: str, study: str, number: int,
                 round_: int, strategy: str) -> str:
    tags = {PARENT_TAG: parent_id, f"{P}study": study, f"{P}trial": str(number),
            f"{P}round": str(round_), f"{P}strategy": strategy}
    run = client(uri).create_run(experiment_id, run_name=f"trial-{number:04d}", tags=tags)
    return run.info.run_id


class MetricBuffer:
    """Collects ``report(step, metrics)`` calls; flushed in the trial's final batch.

    Long trials are flushed at most every ``flush_s`` seconds so the UI stays live
    without paying a commit for every step of a fast trial.
    """

    def __init__(self, uri: str, run_id: str, flush_s: float = 5.0) -> None:
        self.uri, self.run_id, self.flush_s = uri, run_id, flush_s
        self.pending: list[Metric] = []
        self._lock = threading.Lock()
        self._last = time.monotonic()

    def __call__(self, step: int, metrics: Mapping[str, float]) -> None:
        ts = now_ms()
        with self._lock:
            self.pending.extend(Metric(k, float(v), ts, int(step)) for k, v in metrics.items()
                                if _finite(v))
            due = time.monotonic() - self._last > self.flush_s
        if due:
            self.flush()

    def take(self) -> list[Metric]:
        with self._lock:
            out, self.pending = self.pending, []
            self._last = time.monotonic()
        return out

    def flush(self) -> None:
        batch = self.take()
        if batch:
            client(self.uri).log_batch(self.run_id, metrics=batch)


def _finite(v: Any) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _batch(buffer: MetricBuffer, params: Mapping[str, Any], final: Mapping[str, float],
           tags: Mapping[str, str]) -> tuple[list[Metric], list[Param], list[RunTag]]:
    metrics = buffer.take()
    ts = now_ms()
    last: dict[str, Metric] = {}
    for m in metrics:
        if m.key not in last or m.step >= last[m.key].step:
            last[m.key] = m
    for k, v in final.items():
        if not _finite(v):
            continue
        prev = last.get(k)
        if prev is None:  # a function's returned metrics: one value at step 0
            metrics.append(Metric(k, float(v), ts, 0))
        elif prev.value != float(v):  # a final value that differs from the last report
            metrics.append(Metric(k, float(v), ts, prev.step + 1))
    ps = [Param(k, str(v)) for k, v in params.items()]
    return metrics, ps, [RunTag(k, v) for k, v in tags.items()]


def finish_trial(buffer: MetricBuffer, params: Mapping[str, Any], metrics: Mapping[str, float],
                 *, attempts: int, duration_s: float, output: str | None = None) -> None:
    """One batch (params, metrics, tags) and one status update for a completed trial."""
    tags = {f"{P}attempts": str(attempts), f"{P}duration_s": f"{duration_s:.3f}"}
    m, p, t = _batch(buffer, params, metrics, tags)
    c = client(buffer.uri)
    c.log_batch(buffer.run_id, metrics=m, params=p, tags=t)
    if output:
        c.log_text(buffer.run_id, output, "output.txt")
    c.set_terminated(buffer.run_id, "FINISHED", end_time=now_ms())


def record_failure(buffer: MetricBuffer, params: Mapping[str, Any], *, attempt: int,
                   failure_tags: Mapping[str, str], duration_s: float, final: bool,
                   output: str | None = None) -> None:
    """Every attempt's cause is kept; the final one also fails the run with its reason."""
    tags = {f"{P}attempt.{attempt}.{k}": v for k, v in failure_tags.items()}
    tags[f"{P}attempt.{attempt}.duration_s"] = f"{duration_s:.3f}"
    c = client(buffer.uri)
    if not final:
        c.log_batch(buffer.run_id, metrics=buffer.take(), tags=[RunTag(k, v)
                                                                for k, v in tags.items()])
        return
    reason = failure_tags.get("cause", "exception")
    detail = failure_tags.get("detail")
    tags.update({f"{P}attempts": str(attempt), f"{P}duration_s": f"{duration_s:.3f}",
                 f"{P}reason": f"{reason}: {detail}" if detail else reason})
    m, p, t = _batch(buffer, params, {}, tags)
    c.log_batch(buffer.run_id, metrics=m, params=p, tags=t)
    if output:
        c.log_text(buffer.run_id, output, "output.txt")
    c.set_terminated(buffer.run_id, "FAILED", end_time=now_ms())


def read_trials(uri: str, study: StudyRun, space: SearchSpace, metric: str,
                since_ms: int | None = None) -> list[TrialRecord]:
    """The study's trials (those started at or after ``since_ms`` if given), decoded."""
    c = client(uri)
    flt = f"tags.`{PARENT_TAG}` = '{study.run_id}'"
    if since_ms is not None:
        flt += f" and attributes.start_time >= {int(since_ms)}"
    out: list[TrialRecord] = []
    token = None
    while True:
        page = c.search_runs([study.experiment_id], flt, max_results=50000, page_token=token)
        out.extend(_record(r, space, metric) for r in page)
        token = page.token
        if not token:
            break
    return sorted(out, key=lambda t: (t.number, t.run_id))


def _record(run: Any, space: SearchSpace, metric: str) -> TrialRecord:
    tags, info = run.data.tags, run.info
    status = STATUS.get(info.status, "killed")
    params: dict[str, Any] = {}
    if set(space.names) <= set(run.data.params):
        params = space.coerce(run.data.params)
    metrics = dict(run.data.metrics)
    value = metrics.get(metric) if status == "completed" else None
    return TrialRecord(
        number=int(tags.get(f"{P}trial", -1)), round=int(tags.get(f"{P}round", 0)),
        status=status, run_id=info.run_id, params=params, metrics=metrics, value=value,
        attempts=int(tags.get(f"{P}attempts", 1)),
        duration_s=float(tags[f"{P}duration_s"]) if f"{P}duration_s" in tags else None,
        reason=tags.get(f"{P}reason"))


def log_study_summary(uri: str, run_id: str, *, tags: Mapping[str, str],
                      metrics: Mapping[str, float], step: int) -> None:
    ts = now_ms()
    client(uri).log_batch(
        run_id, metrics=[Metric(k, float(v), ts, step) for k, v in metrics.items() if _finite(v)],
        tags=[RunTag(k, v) for k, v in tags.items()])


def log_artifact(uri: str, run_id: str, path: Path) -> None:
    client(uri).log_artifact(run_id, str(path))


def end_study(uri: str, run_id: str, status: str = "FINISHED") -> None:
    client(uri).set_terminated(run_id, status, end_time=now_ms())
