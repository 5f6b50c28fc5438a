"""Which tracking failures are waited out, and for how long (pure logic, no MLflow)."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from mlflow.exceptions import MlflowException

from amtune.tasks.store.outage import Guarded, OutageGuard, TrackingOutage, is_transient


def test_transient_and_permanent_failures_are_told_apart() -> None:
    assert is_transient(ConnectionRefusedError("refused"))
    assert is_transient(sqlite3.OperationalError("database is locked"))
    assert is_transient(
        MlflowException(
            "API request to http://127.0.0.1:5000/api/2.0/mlflow/runs/create failed "
            "with exception HTTPConnectionPool: Max retries exceeded"
        )
    )
    assert not is_transient(
        MlflowException(
            "Changing param values is not allowed", error_code="INVALID_PARAMETER_VALUE"
        )
    )
    assert not is_transient(
        MlflowException("Run 'x' not found", error_code="RESOURCE_DOES_NOT_EXIST")
    )
    assert not is_transient(ValueError("bad metric name"))


class Clock:
    """Virtual time: sleeping advances it, so the outage limit is reached without waiting."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = 1000.0
        monkeypatch.setattr("amtune.tasks.store.outage.time.monotonic", lambda: self.now)
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_a_short_outage_is_ridden_out(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(monkeypatch)
    guard = OutageGuard(timeout_s=60, sleep=clock.sleep)
    calls = []

    def write() -> str:
        calls.append(clock.now)
        if len(calls) <= 4:
            raise ConnectionError("connection refused")
        return "written"

    assert guard.call("log the trial", write) == "written"
    assert len(calls) == 5 and guard.retried == 4
    # exponential backoff with jitter: each pause within +-50% of 0.25, 0.5, 1, 2 s
    for pause, base in zip(clock.sleeps, (0.25, 0.5, 1.0, 2.0), strict=True):
        assert 0.5 * base <= pause <= 1.5 * base


def test_a_long_outage_stops_with_a_message(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(monkeypatch)
    guard = OutageGuard(timeout_s=30, sleep=clock.sleep)

    def write() -> None:
        raise ConnectionError("connection refused")

    with pytest.raises(TrackingOutage, match=r"outage_timeout_s: 30\).*rerun the same command"):
        guard.call("log the trial", write)
    assert 30 <= clock.now - 1000.0 <= 30 + 10 * 1.5  # waited the limit, not much longer
    assert max(clock.sleeps) <= 15


def test_permanent_errors_are_raised_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(monkeypatch)
    guard = OutageGuard(timeout_s=30, sleep=clock.sleep)

    def write() -> None:
        raise MlflowException("bad", error_code="INVALID_PARAMETER_VALUE")

    with pytest.raises(MlflowException):
        guard.call("log the trial", write)
    assert clock.sleeps == []


def test_recovery_resets_the_outage_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(monkeypatch)
    guard = OutageGuard(timeout_s=10, sleep=clock.sleep)
    state = {"fail": 3}

    def write() -> None:
        if state["fail"]:
            state["fail"] -= 1
            raise ConnectionError("down")

    for _ in range(5):  # five short outages, 15+ s in all: each one alone is below the limit
        state["fail"] = 3
        guard.call("write", write)
        clock.now += 5
    assert guard.retried == 15


class _Store:
    """Counts how many calls are inside at once."""

    def __init__(self) -> None:
        self.inside = 0
        self.most = 0
        self.count = threading.Lock()

    def write(self) -> None:
        with self.count:
            self.inside += 1
            self.most = max(self.most, self.inside)
        time.sleep(0.02)
        with self.count:
            self.inside -= 1


@pytest.mark.parametrize("lock", [threading.Lock(), None])
def test_guarded_calls_take_turns_with_a_lock(lock: threading.Lock | None) -> None:
    store = _Store()
    client = Guarded(store, OutageGuard(timeout_s=1), lock=lock)
    start = threading.Barrier(4)

    def worker() -> None:
        start.wait()
        for _ in range(3):
            client.write()  # type: ignore[attr-defined]

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (store.most == 1) is (lock is not None)
