"""The study store on a real MLflow SQLite store: identity, history, trials, pickling."""

from __future__ import annotations

import pickle
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from amtune.tasks.store import reads as reads_module
from amtune.tasks.store import schema as S
from amtune.tasks.store.client import check_uri
from amtune.tasks.store.lease import lease_ttl
from amtune.tasks.store.metrics import MetricBuffer
from amtune.tasks.store.outage import is_transient
from amtune.tasks.store.schema import TrialRecord
from amtune.tasks.store.study import StudyStore

SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0}}


def store(uri: str, name: str = "s", **kw: object) -> StudyStore:
    return StudyStore(uri=uri, experiment=name, study=name, space=SPACE, metric="loss", **kw)


def parents(uri: str, name: str) -> list[str]:
    c = MlflowClient(uri)
    exp = c.get_experiment_by_name(name)
    return [r.info.run_id for r in c.search_runs([exp.experiment_id], S.study_filter(name))]


def test_two_runners_opening_a_new_study_at_once_share_one_parent_run(tracking_uri: str) -> None:
    stores = [store(tracking_uri) for _ in range(2)]
    for s in stores:
        s.client  # noqa: B018  (schema and WAL first: then both race on the runs only)
    start = threading.Barrier(2)
    opened: list[str] = []

    def open_one(s: StudyStore) -> None:
        start.wait()
        run, _ = s.open({}, {"name": "s"})
        opened.append(run.run_id)

    threads = [threading.Thread(target=open_one, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(opened)) == 1, opened
    assert parents(tracking_uri, "s") == opened[:1]


def test_params_are_logged_when_a_trial_starts(tracking_uri: str) -> None:
    s = store(tracking_uri)
    s.open({}, {})
    run_id = s.start_trial(0, 0, {"x": 0.25}, "random")
    run = MlflowClient(tracking_uri).get_run(run_id)
    assert run.info.status == "RUNNING"
    assert run.data.params == {"x": "0.25"}
    (rec,) = s.history()
    assert (rec.status, rec.params) == ("running", {"x": 0.25})


@pytest.mark.parametrize("margin_ms", [2000, 0], ids=["started-in-window", "started-before"])
def test_history_sees_running_trials_finish_without_rereading_everything(
        tracking_uri: str, margin_ms: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # A running run started within the read window comes back in the window's query;
    # one started before it (margin 0: every run) is read again by id.
    monkeypatch.setattr(reads_module, "_MARGIN_MS", margin_ms)
    s = store(tracking_uri)
    s.open({}, {})
    # Started and finished by others (copies of the store): this one only reads them.
    starter, other = pickle.loads(pickle.dumps(s)), pickle.loads(pickle.dumps(s))
    ids = [starter.start_trial(k, 0, {"x": k / 10}, "random") for k in range(3)]
    time.sleep(0.01)  # the runs' start times are before the first read's
    assert [r.status for r in s.history()] == ["running"] * 3
    rec = TrialRecord(1, 0, "completed", ids[1], {"x": 0.1}, {"loss": 0.5}, 0.5, duration_s=1)
    other.finish_trial(rec, other.buffer(ids[1]))
    assert [r.status for r in s.history()] == ["running", "completed", "running"]
    assert s.history()[1].value == 0.5


def test_a_trial_started_here_is_not_read_again_until_its_end_is_remembered(
        tracking_uri: str) -> None:
    # A round tells the store of every trial it started as the trial ends (``remember``,
    # from the trial's thread or its task's future), so reads leave those runs out.
    s = store(tracking_uri)
    s.open({}, {})
    run_id = s.start_trial(0, 0, {"x": 0.5}, "random")
    assert [r.status for r in s.history()] == ["running"]
    rec = TrialRecord(0, 0, "completed", run_id, {"x": 0.5}, {"loss": 0.5}, 0.5, duration_s=1)
    worker = pickle.loads(pickle.dumps(s))  # a Dask worker's copy writes the end
    worker.finish_trial(rec, worker.buffer(run_id))
    assert [r.status for r in s.history()] == ["running"]  # not fetched again
    s.remember(rec)  # the task's future came back
    assert [(r.status, r.value) for r in s.history()] == [("completed", 0.5)]
    again = store(tracking_uri)  # MLflow has it: a new runner reads it
    again.open({}, {})
    assert [r.status for r in again.history()] == ["completed"]


def test_a_read_fetches_only_the_runs_it_does_not_know(tracking_uri: str) -> None:
    s = store(tracking_uri)
    s.open({}, {})
    a = s.start_trial(0, 0, {"x": 0.1}, "random")
    s.finish_trial(TrialRecord(0, 0, "completed", a, {"x": 0.1}, {"loss": 0.5}, 0.5,
                               duration_s=1), s.buffer(a))
    s.history()
    # Changed behind the store's back: a finished run it knows is not read again...
    MlflowClient(tracking_uri).log_metric(a, "loss", 9.0)
    # ...while a run started since by someone else (another copy of the store) is found.
    other = pickle.loads(pickle.dumps(s))
    b = other.start_trial(1, 0, {"x": 0.2}, "random")
    recs = s.history()
    assert [(r.run_id, r.status) for r in recs] == [(a, "completed"), (b, "running")]
    assert recs[0].value == 0.5


def test_a_read_leaves_out_another_study_of_the_same_experiment(tracking_uri: str) -> None:
    # The study's tag is checked after the read, not in its SQL filter (``_search``).
    s = store(tracking_uri)
    s.open({}, {})
    mine = s.start_trial(0, 0, {"x": 0.1}, "random")
    s.history()
    other = StudyStore(uri=tracking_uri, experiment="s", study="t", space=SPACE, metric="loss")
    other.open({}, {})
    theirs = other.start_trial(0, 0, {"x": 0.2}, "random")
    assert [r.run_id for r in s.history()] == [mine]  # their run is in the read window
    assert [r.run_id for r in other.history()] == [theirs]


def test_a_copy_for_dask_keeps_the_outage_timeout_and_drops_live_parts(
        tracking_uri: str) -> None:
    s = store(tracking_uri, outage_timeout_s=7.5)
    s.open({}, {})
    s.history()
    copy = pickle.loads(pickle.dumps(s))
    assert copy.outage_timeout_s == 7.5 and copy.parent_id == s.parent_id
    assert copy._live is not s._live and copy._live.client is None
    assert copy.client._guard.timeout_s == 7.5


def test_the_lease_outlives_the_outage_timeout(tracking_uri: str) -> None:
    s = store(tracking_uri, outage_timeout_s=300)
    s.open({}, {})
    beat = s.take_lease()
    assert beat.lease.ttl_s > 300 + beat.interval_s
    assert lease_ttl(5) >= 60


def test_metrics_reported_seconds_apart_get_no_extra_step_zero() -> None:
    written: list[list[object]] = []
    buf = MetricBuffer(written.append, flush_s=0.0)  # every report is a flush, as when slow
    for step in (1, 2, 3):
        buf(step, {"loss": 1.0 / step})
    final = buf.final({"loss": 1.0 / 3})
    steps = [m.step for batch in written for m in batch] + [m.step for m in final]
    assert steps == [1, 2, 3]
    assert [m.step for m in buf.final({"acc": 0.9})] == [0]  # only returned: step 0


def test_a_sqlite_path_that_cannot_open_is_refused_not_waited_for(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'no-such-dir' / 'mlflow.db'}"
    assert "does not exist" in (check_uri(uri) or "")
    assert check_uri(f"sqlite:///{tmp_path / 'mlflow.db'}") is None
    assert not is_transient(sqlite3.OperationalError("unable to open database file"))
    assert is_transient(sqlite3.OperationalError("database is locked"))


@pytest.mark.parametrize("status", ["failed", "stopped", "running", "killed"])
def test_best_trial_is_chosen_among_completed_trials_only(status: str) -> None:
    good = TrialRecord(0, 0, "completed", "a", {"x": 1}, value=2.0)
    other = TrialRecord(1, 0, status, "b", {"x": 2}, value=1.0)
    assert S.best_trial([good, other], 1.0) is good
    assert S.best_trial([other], 1.0) is None
