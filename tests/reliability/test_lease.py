"""The study lease: refused while fresh, taken over when stale, takeover noticed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from amtune.tasks.store.lease import (
    Heartbeat,
    Lease,
    LeaseHeld,
    LeaseLost,
    acquire,
    new_lease,
    release,
)


class Tag:
    """Stands in for the parent run's lease tag: a plain value with read and write."""

    def __init__(self, value: str | None = None) -> None:
        self.value = value
        self.writes = 0

    def read(self) -> str | None:
        return self.value

    def write(self, value: str) -> None:
        self.writes += 1
        self.value = value


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_free_study_is_acquired_and_released() -> None:
    tag = Tag()
    lease = acquire("s", tag.read, tag.write, ttl_s=30, settle_s=0)
    assert Lease.loads(tag.value) == lease
    assert lease.pid == os.getpid()
    release(lease, tag.read, tag.write)
    assert Lease.loads(tag.value) is None
    assert acquire("s", tag.read, tag.write, ttl_s=30, settle_s=0).owner != lease.owner


def test_fresh_lease_of_live_process_is_refused_with_its_holder() -> None:
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        live = Lease("other", socket.gethostname(), holder.pid, time.time(), 30.0)
        tag = Tag(live.dumps())
        with pytest.raises(
            LeaseHeld,
            match=rf"study 'svm' is already being run by process "
            rf"{holder.pid}",
        ):
            acquire("svm", tag.read, tag.write, settle_s=0)
        assert tag.writes == 0
    finally:
        holder.kill()
        holder.wait()


def test_lease_of_other_host_is_honoured_until_its_ttl() -> None:
    now = time.time()
    fresh = Lease("remote", "some-other-host", 1, now - 5, 30.0)
    assert not fresh.is_stale(now)
    assert fresh.is_stale(now + 26)
    tag = Tag(fresh.dumps())
    with pytest.raises(LeaseHeld, match="30 s without a heartbeat"):
        acquire("s", tag.read, tag.write, settle_s=0)
    tag.value = Lease("remote", "some-other-host", 1, now - 31, 30.0).dumps()
    assert acquire("s", tag.read, tag.write, settle_s=0).owner != "remote"


def test_lease_of_dead_local_process_is_stale_at_once() -> None:
    """A study SIGKILLed on this machine can be resumed without waiting for the TTL."""
    killed = Lease("killed", socket.gethostname(), dead_pid(), time.time(), 3600.0)
    assert killed.is_stale()
    tag = Tag(killed.dumps())
    assert acquire("s", tag.read, tag.write, settle_s=0).owner != "killed"


def test_unreadable_lease_counts_as_free() -> None:
    for text in ("", "not json", '{"owner": "x"}'):
        assert Lease.loads(text) is None


def test_losing_the_race_is_detected_after_settling() -> None:
    tag = Tag()

    def write_then_overwritten(value: str) -> None:
        tag.value = value
        tag.value = new_lease().dumps()  # another runner wrote right after us

    with pytest.raises(LeaseHeld):
        acquire("s", tag.read, write_then_overwritten, settle_s=0)


def test_heartbeat_refreshes_and_notices_takeover() -> None:
    tag = Tag()
    lease = acquire("s", tag.read, tag.write, ttl_s=30, settle_s=0)
    hb = Heartbeat(lease, tag.read, tag.write, interval_s=0.01)
    with hb:
        deadline = time.monotonic() + 10
        while tag.writes < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert tag.writes >= 4
        hb.check("s")  # still ours: no error
        tag.value = new_lease().dumps()
        while not hb.lost.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
    assert hb.lost.is_set()
    with pytest.raises(LeaseLost, match="another runner took over"):
        hb.check("s")


def test_heartbeat_survives_write_errors() -> None:
    tag = Tag()
    lease = acquire("s", tag.read, tag.write, ttl_s=30, settle_s=0)
    failures = []

    def flaky(value: str) -> None:
        if len(failures) < 3:
            failures.append(value)
            raise ConnectionError("tracking server restarting")
        tag.write(value)

    with Heartbeat(lease, tag.read, flaky, interval_s=0.01) as hb:
        deadline = time.monotonic() + 10
        while tag.writes < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert len(failures) == 3 and tag.writes >= 2
    assert isinstance(hb.last_error, ConnectionError)
