"""Riding out tracking outages: retry transient MLflow failures with backoff, up to a limit.

MLflow is the single source of truth, so a trial that finished while the tracking
server was restarting must not be dropped: its write is retried (exponential
backoff with jitter) until the study's ``tracking.outage_timeout_s`` is used up.
Past that the study stops with ``TrackingOutage`` (exit 1) and a rerun resumes it.

Only failures that can go away by waiting are retried: connection errors, timeouts,
5xx answers, a locked or busy database. A request MLflow rejects as invalid, or a
SQLite path that cannot be opened, fails at once: waiting would not change the answer.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from tenacity import RetryCallState, RetryError, Retrying, retry_if_exception

T = TypeVar("T")

DEFAULT_OUTAGE_TIMEOUT_S = 300.0
FIRST_DELAY_S = 0.25
MAX_DELAY_S = 10.0
JITTER = 0.5  # each delay is scaled by a random factor in [1 - JITTER, 1 + JITTER]

# MLflow error codes that mean "the request was wrong", never "try again later".
_PERMANENT_CODES = {
    "INVALID_PARAMETER_VALUE",
    "RESOURCE_ALREADY_EXISTS",
    "RESOURCE_DOES_NOT_EXIST",
    "BAD_REQUEST",
    "INVALID_STATE",
    "PERMISSION_DENIED",
    "UNAUTHENTICATED",
    "CUSTOMER_UNAUTHORIZED",
    "NOT_FOUND",
    "ENDPOINT_NOT_FOUND",
    "FEATURE_DISABLED",
    "ALREADY_EXISTS",
}
_TRANSIENT_TEXT = (
    "connection",
    "timed out",
    "timeout",
    "max retries exceeded",
    "temporarily",
    "database is locked",
    "unable to open database",
    "disk i/o error",
    "502",
    "503",
    "504",
    "internal server error",
    "service unavailable",
    "bad gateway",
    "remote end closed",
)


class TrackingOutage(RuntimeError):
    """The tracking store stayed unreachable for longer than the study may wait."""


# SQLite and SQLAlchemy raise OperationalError for a busy database and for a path that
# can never open alike; only these texts mean that waiting can help.
_TRANSIENT_DB_TEXT = ("locked", "busy", "disk i/o", "timeout", "timed out", "connection",
                      "could not connect", "server closed", "terminating connection")


def is_transient(exc: BaseException) -> bool:
    """Whether waiting could make this tracking failure go away."""
    code = getattr(exc, "error_code", None)
    if code in _PERMANENT_CODES:
        return False
    text = f"{type(exc).__name__}: {exc}".lower()
    cause = exc.__cause__ or exc.__context__
    if cause is not None and cause is not exc:
        text += f" {type(cause).__name__}: {cause}".lower()
    if "operationalerror" in text:
        return any(fragment in text for fragment in _TRANSIENT_DB_TEXT)
    names = {k.__name__ for k in type(exc).__mro__}
    if names & {
        "ConnectionError",
        "Timeout",
        "TimeoutError",
        "ConnectionRefusedError",
        "ChunkedEncodingError",
    }:
        return True
    return any(fragment in text for fragment in _TRANSIENT_TEXT)


class OutageGuard:
    """Retries transient failures of tracking calls (tenacity), sharing one outage clock.

    The clock is shared by every call of the study (all threads): an outage that
    began while one trial was writing counts against the limit for all of them, so
    the study stops ``timeout_s`` after the store went away, not N times later.
    Backoff: 0.25 s doubling up to 10 s, each pause scaled by a random factor in
    [1 - JITTER, 1 + JITTER], and never past the deadline.
    """

    def __init__(
        self,
        timeout_s: float = DEFAULT_OUTAGE_TIMEOUT_S,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.timeout_s = timeout_s
        self._sleep = sleep
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self.retried = 0  # how many calls failed transiently and were retried

    def call(self, what: str, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        retrying = Retrying(
            retry=retry_if_exception(is_transient),
            stop=self._past_deadline,
            wait=self._pause,
            sleep=self._sleep,
            before_sleep=self._count,
        )
        try:
            result = retrying(fn, *args, **kwargs)
        except RetryError as err:
            exc = err.last_attempt.exception()
            raise TrackingOutage(
                f"tracking store unreachable for {self._down_for():.0f} s "
                f"(tracking.outage_timeout_s: {self.timeout_s:g}) while trying to "
                f"{what}: {_one_line(exc)}; rerun the same command to resume the study"
            ) from exc
        with self._lock:
            self._down_since = None
        return result

    def _past_deadline(self, state: RetryCallState) -> bool:
        now = time.monotonic()
        with self._lock:
            if self._down_since is None:
                self._down_since = now
        return self._down_for() >= self.timeout_s

    def _down_for(self) -> float:
        with self._lock:
            since = self._down_since
        return 0.0 if since is None else time.monotonic() - since

    def _pause(self, state: RetryCallState) -> float:
        base = min(FIRST_DELAY_S * 2 ** (state.attempt_number - 1), MAX_DELAY_S,
                   max(0.0, self.timeout_s - self._down_for()))
        return base * random.uniform(1 - JITTER, 1 + JITTER)

    def _count(self, state: RetryCallState) -> None:
        with self._lock:
            self.retried += 1


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "..."


def limit_http_retries(max_retries: int = 0, timeout_s: int = 30) -> None:
    """Leave retrying to the outage policy, so the outage limit is ours to enforce.

    MLflow retries a failed request 7 times with a backoff of up to minutes on its
    own, and urllib3 logs a warning for every retry; the user's explicit
    environment settings still win.
    """
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(max_retries))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(timeout_s))


class Guarded:
    """A client whose every method call goes through an :class:`OutageGuard`.

    Wrapping the client (rather than each call site) keeps every tracking write and
    read covered, including ones added later. With ``lock``, each attempt holds it
    (the retry pauses do not), so the calls of all threads go one at a time.
    """

    def __init__(self, inner: object, guard: OutageGuard,
                 lock: AbstractContextManager[Any] | None = None) -> None:
        self._inner = inner
        self._guard = guard
        self._lock = lock

    def __getattr__(self, name: str) -> object:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr
        lock = self._lock

        def attempt(*args: object, **kwargs: object) -> object:
            if lock is None:
                return attr(*args, **kwargs)
            with lock:
                return attr(*args, **kwargs)

        def call(*args: object, **kwargs: object) -> object:
            return self._guard.call(name, attempt, *args, **kwargs)

        return call
