"""Why a trial attempt failed, in a form retries and tracking can act on.

A bare exception says little once it has crossed a thread, a Prefect state and an
MLflow tag. ``TrialFailure`` carries a machine-readable ``cause`` (one of
``CAUSES``) plus the few facts a retry policy needs (exit code, exception type,
signal), so ``trial.retry_on`` can be decided without parsing messages.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Iterable

CAUSES: tuple[str, ...] = (
    "exception",
    "exit_code",
    "signal",
    "timeout",
    "metric_missing",
    "invalid_metric",
    "tracking_error",
)

# MLflow tag values are limited in size; a reason is a one-liner, the full story
# is the captured output.
MAX_DETAIL = 1000

_EXCEPTION_NAME = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*\.)*[A-Z][A-Za-z0-9_]*$")


class TrialStopped(Exception):
    """Raised by ``report(step, **metrics)`` in a function trial the early-stopping rule stops.

    Let it propagate: amtune catches it and records the trial as stopped at ``step``
    (a FINISHED run tagged ``amtune.stopped_at_step``, its metrics as reported up to
    there). Catching it changes nothing: the decision is kept by amtune, not by the
    exception, so a trial that swallows it (``except Exception``) and returns, or goes
    on reporting (every later ``report`` raises again and is not logged), is still a
    stopped trial. Import it as ``from amtune.tasks.runners import TrialStopped``.
    """

    def __init__(self, step: int) -> None:
        super().__init__(step)
        self.step = step

    def __str__(self) -> str:
        return f"stopped at step {self.step} by the early-stopping rule"


class TrialFailure(Exception):
    """A trial attempt that failed, with a machine-readable cause.

    ``output`` holds the captured output of a command trial (None otherwise) so the
    pipeline can keep it as an artifact of the failed run too.
    """

    def __init__(
        self,
        cause: str,
        detail: str,
        *,
        exit_code: int | None = None,
        exception_type: str | None = None,
        signal_name: str | None = None,
        exception_types: Iterable[str] = (),
        output: str | None = None,
    ) -> None:
        if cause not in CAUSES:
            raise ValueError(f"TrialFailure.cause: {cause!r}; allowed: {', '.join(CAUSES)}")
        detail = detail if len(detail) <= MAX_DETAIL else detail[: MAX_DETAIL - 3] + "..."
        # args = (cause, detail) keeps the default pickling working (Prefect may
        # serialise a failed task's exception); the keyword facts travel in __dict__.
        super().__init__(cause, detail)
        self.cause = cause
        self.detail = detail
        self.exit_code = exit_code
        self.exception_type = exception_type
        self.signal_name = signal_name
        # The exception's class and its bases (short and module-qualified names),
        # so retry_on: [OSError] also covers FileNotFoundError.
        self.exception_types = tuple(exception_types) or (
            (exception_type,) if exception_type else ()
        )
        self.output = output

    @classmethod
    def from_exception(cls, exc: BaseException, *, output: str | None = None) -> TrialFailure:
        """Cause ``exception`` for an error raised by the trial's own code."""
        names: list[str] = []
        for klass in type(exc).__mro__:
            if klass in (BaseException, Exception, object):
                continue
            names.append(klass.__name__)
            names.append(f"{klass.__module__}.{klass.__qualname__}")
        message = str(exc).strip().splitlines()
        first = message[0] if message else ""
        name = type(exc).__name__
        return cls(
            "exception",
            f"{name}: {first}" if first else name,
            exception_type=name,
            exception_types=names,
            output=output,
        )

    def __str__(self) -> str:
        return f"{self.cause}: {self.detail}"

    def as_tags(self) -> dict[str, str]:
        """The failure as string tags (unprefixed; the tracking layer adds its prefix)."""
        tags = {"cause": self.cause, "detail": self.detail}
        if self.exit_code is not None:
            tags["exit_code"] = str(self.exit_code)
        if self.exception_type is not None:
            tags["exception_type"] = self.exception_type
        if self.signal_name is not None:
            tags["signal"] = self.signal_name
        return tags

    def matches(self, retry_on: Iterable[str]) -> bool:
        """Whether a ``trial.retry_on`` list covers this failure.

        Items: a cause name (``timeout``), ``exit_code:N``, ``signal:NAME`` (SIGKILL,
        KILL or 9) or an exception class name (``ValueError``, also matching its
        subclasses; ``exception:ValueError`` is the same). An empty list matches
        nothing; "retry everything" is the caller's default when retry_on is unset.
        """
        return any(self._matches_one(item.strip()) for item in retry_on)

    def _matches_one(self, item: str) -> bool:
        if item == self.cause:
            return True
        kind, sep, arg = item.partition(":")
        kind, arg = kind.strip(), arg.strip()
        if not sep:
            return self.cause == "exception" and item in self.exception_types
        if kind != self.cause:
            return False
        if kind == "exit_code":
            return (
                self.exit_code is not None
                and arg.lstrip("+-").isdigit()
                and (int(arg) == self.exit_code)
            )
        if kind == "signal":
            return self.signal_name is not None and _same_signal(arg, self.signal_name)
        if kind == "exception":
            return arg in self.exception_types
        return False


def _same_signal(given: str, actual: str) -> bool:
    if given.isdigit():
        try:
            return signal.Signals(int(given)).name == actual
        except ValueError:
            return False
    given = given.upper()
    return actual in (given, f"SIG{given}")


def check_retry_on(items: Iterable[str], field: str = "trial.retry_on") -> None:
    """Reject retry_on items that could never match, e.g. a misspelt cause.

    Exception names must look like class names (a capitalised identifier) so a
    typo such as ``timout`` is an error instead of a silent never-match.
    """
    allowed = (
        f"allowed: a cause ({', '.join(CAUSES)}), exit_code:N, signal:NAME, "
        "or an exception class name such as ValueError"
    )
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise ValueError(f"{field}[{i}]: {item!r} is not a string; {allowed}")
        text = item.strip()
        kind, sep, arg = text.partition(":")
        arg = arg.strip()
        ok = (
            text in CAUSES
            or (sep and kind == "exit_code" and arg.lstrip("+-").isdigit())
            or (sep and kind == "signal" and _valid_signal(arg))
            or (sep and kind == "exception" and bool(_EXCEPTION_NAME.match(arg)))
            or (not sep and bool(_EXCEPTION_NAME.match(text)))
        )
        if not ok:
            raise ValueError(f"{field}[{i}]: {item!r} is not recognised; {allowed}")


def _valid_signal(arg: str) -> bool:
    if arg.isdigit():
        return int(arg) in {s.value for s in signal.Signals}
    name = arg.upper()
    return name in signal.Signals.__members__ or f"SIG{name}" in signal.Signals.__members__
