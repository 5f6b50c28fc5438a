"""One study, one runner: a lease with a heartbeat, stored as a tag of the study's parent run.

MLflow offers no compare-and-set, so the lease is optimistic: a runner writes its
lease, waits a moment and reads it back; if another runner's lease is there
instead, it lost the race. While running, a heartbeat thread refreshes the lease
and notices if it was taken over (the study then stops before starting another
round). A lease whose heartbeat is older than its time-to-live, or whose owner
process is gone from this very machine, is stale and may be taken over: a study
killed with SIGKILL is resumable at once when rerun on the same machine, and after
``ttl_s`` anywhere else.

Only the tag's value format and the protocol live here; reading and writing the tag
is the study store's business (``study.py``).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass

from amtune.tasks.store.schema import LEASE

LEASE_TAG = LEASE  # the parent-run tag holding the lease
DEFAULT_TTL_S = 60.0
SETTLE_S = 0.3  # how long a fresh lease must survive before it counts as won
BEAT_S = 20.0  # the longest pause between two heartbeats


def lease_ttl(outage_timeout_s: float) -> float:
    """A lease outlives the holder's outage timeout.

    A runner cut off from the tracking store keeps retrying for up to
    ``outage_timeout_s`` and cannot refresh its lease meanwhile. If the lease expired
    first, a second runner could take the study over and mark the live runner's
    trials KILLED; with this TTL the holder has given up before its lease goes stale.
    """
    return max(DEFAULT_TTL_S, outage_timeout_s + 2 * BEAT_S)


class LeaseHeld(RuntimeError):
    """Another live runner holds the study; the message says who and until when."""


class LeaseLost(RuntimeError):
    """Our lease was taken over while we were running."""


@dataclass(frozen=True)
class Lease:
    owner: str
    host: str
    pid: int
    heartbeat: float  # unix time of the last refresh
    ttl_s: float

    def dumps(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def loads(cls, text: str | None) -> Lease | None:
        """The lease in a tag value; None for no lease or an unreadable one (treated as free)."""
        if not text:
            return None
        try:
            d = json.loads(text)
            return cls(
                str(d["owner"]),
                str(d["host"]),
                int(d["pid"]),
                float(d["heartbeat"]),
                float(d["ttl_s"]),
            )
        except (ValueError, KeyError, TypeError):
            return None

    def refreshed(self, now: float | None = None) -> Lease:
        return Lease(
            self.owner, self.host, self.pid, time.time() if now is None else now, self.ttl_s
        )

    def is_stale(self, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        if now - self.heartbeat > self.ttl_s:
            return True
        return self.host == socket.gethostname() and not _alive(self.pid)

    def describe(self, now: float | None = None) -> str:
        age = max(0.0, (time.time() if now is None else now) - self.heartbeat)
        return f"process {self.pid} on {self.host} (heartbeat {age:.0f} s ago)"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def new_lease(ttl_s: float = DEFAULT_TTL_S) -> Lease:
    host = socket.gethostname()
    return Lease(
        f"{host}:{os.getpid()}:{uuid.uuid4().hex[:12]}", host, os.getpid(), time.time(), ttl_s
    )


def acquire(
    study: str,
    read: Callable[[], str | None],
    write: Callable[[str], None],
    ttl_s: float = DEFAULT_TTL_S,
    settle_s: float = SETTLE_S,
) -> Lease:
    """Take the study's lease or raise ``LeaseHeld`` naming the live holder."""
    current = Lease.loads(read())
    if current is not None and not current.is_stale():
        raise LeaseHeld(held_message(study, current))
    mine = new_lease(ttl_s)
    write(mine.dumps())
    time.sleep(settle_s)
    winner = Lease.loads(read())
    if winner is None or winner.owner != mine.owner:
        raise LeaseHeld(
            held_message(study, winner)
            if winner
            else f"study {study!r}: another runner started at the same moment; "
            "run again to resume it if it stops"
        )
    return mine


def release(lease: Lease, read: Callable[[], str | None], write: Callable[[str], None]) -> None:
    """Give the study back (an empty tag), unless someone else holds it by now."""
    current = Lease.loads(read())
    if current is None or current.owner == lease.owner:
        write("")


def held_message(study: str, lease: Lease) -> str:
    return (
        f"study {study!r} is already being run by {lease.describe()}; one runner per "
        f"study. Wait for it to finish, or rerun after its lease goes stale "
        f"({lease.ttl_s:g} s without a heartbeat) to resume it"
    )


class Heartbeat:
    """Refreshes a lease every ``min(ttl_s / 3, BEAT_S)`` in a daemon thread, watching for
    takeover.

    ``lost`` is set (and stays set) when the lease tag names another owner; the
    study checks it between rounds. Errors while refreshing (a tracking outage) are
    remembered but do not stop the thread: the lease just ages meanwhile.
    """

    def __init__(
        self,
        lease: Lease,
        read: Callable[[], str | None],
        write: Callable[[str], None],
        interval_s: float | None = None,
    ) -> None:
        self.lease = lease
        self._read, self._write = read, write
        self.interval_s = (interval_s if interval_s is not None
                           else max(0.05, min(lease.ttl_s / 3, BEAT_S)))
        self.lost = threading.Event()
        self.last_error: Exception | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="amtune-lease", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def beat(self) -> None:
        """Refresh once, unless someone else now holds the lease."""
        current = Lease.loads(self._read())
        if current is not None and current.owner != self.lease.owner:
            self.lost.set()
            return
        self.lease = self.lease.refreshed()
        self._write(self.lease.dumps())

    def check(self, study: str) -> None:
        if self.lost.is_set():
            raise LeaseLost(
                f"study {study!r}: another runner took over this study's lease; stopping so "
                "no trial runs twice"
            )

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.beat()
            except Exception as exc:  # an outage: keep trying, the lease ages meanwhile
                self.last_error = exc
            if self.lost.is_set():
                return
