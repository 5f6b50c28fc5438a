"""Python-function trials: import ``module:attr``, call it, check what it returns.

A function trial shares amtune's process, so the runner has to keep three things
apart: the trial's own errors (cause ``exception``), bad return values
(``invalid_metric`` / ``metric_missing``) and failures of the pipeline's report
callback (``tracking_error``), even when the trial catches exceptions itself. An
early stop is a fourth, and no failure: ``report`` raises ``TrialStopped`` and the
reporter keeps the step, so the trial is stopped however its function then ends.
"""

from __future__ import annotations

import contextvars
import importlib
import inspect
import math
import os
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any

from amtune.tasks.runners.failures import TrialFailure, TrialStopped
from amtune.tasks.runners.outcome import METRIC_NAME_RULE, Outcome, Report, valid_metric_name


def load_function(ref: str) -> Callable[..., Any]:
    """Import ``package.module:attr`` (attr may be dotted, e.g. ``Class.method``).

    The working directory is put on ``sys.path`` first, as uvicorn and gunicorn do,
    so ``examples.svm:train`` resolves the same whether amtune was started as
    ``python -m amtune.flows.cli`` or through the ``amtune`` console script.
    """
    module_name, _, attr_path = ref.partition(":")
    return resolve_attr(import_module(module_name), attr_path)


def import_module(module_name: str) -> Any:
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    return importlib.import_module(module_name)


def resolve_attr(obj: Any, attr_path: str) -> Any:
    for part in attr_path.split("."):
        obj = getattr(obj, part)
    return obj


def _takes_report(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` accepts a second positional argument (the report callback)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins have no signature
        return False
    positional = 0
    for p in sig.parameters.values():
        if p.kind is p.VAR_POSITIONAL:
            return True
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            positional += 1
    return positional >= 2


def _as_number(name: str, value: Any) -> float:
    """A metric value as float, or ``invalid_metric``; bools and strings are not numbers."""
    if isinstance(value, bool | str | bytes):
        raise TrialFailure("invalid_metric", f"metric {name!r} is {value!r}, not a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        shown = repr(value)[:80]
        raise TrialFailure(
            "invalid_metric", f"metric {name!r} is {type(value).__name__} {shown}, not a number"
        ) from None


def final_metrics(result: Any, metric: str, reported: Mapping[str, float]) -> dict[str, float]:
    """Turn a function's return value into checked final metrics.

    Metrics only reported along the way keep their last reported value, so the
    final set really holds every metric the trial produced.
    """
    if isinstance(result, Mapping):
        metrics = dict(reported)
        for key, value in result.items():
            if not valid_metric_name(key):
                raise TrialFailure(
                    "invalid_metric", f"metric name {key!r} is not valid; use {METRIC_NAME_RULE}"
                )
            metrics[key] = _as_number(key, value)
        if metric not in result:
            raise TrialFailure(
                "metric_missing",
                f"returned metrics {sorted(result)} lack the objective metric {metric!r}",
            )
    else:
        if isinstance(result, list | tuple | set) or result is None:
            raise TrialFailure(
                "invalid_metric",
                f"returned {type(result).__name__}; expected a float or a dict of metrics "
                f"containing {metric!r}",
            )
        metrics = {**reported, metric: _as_number(metric, result)}
    if not math.isfinite(metrics[metric]):
        raise TrialFailure("invalid_metric", f"objective metric {metric!r} is {metrics[metric]}")
    return metrics


class _Reporter:
    """The ``report(step, **metrics)`` a function trial receives.

    It checks values (a bad value raises inside the trial, where the user sees it),
    remembers the last value of each metric, keeps failures of the pipeline's
    callback apart from the trial's own errors, and goes silent once the attempt
    is over (a timed-out thread may keep calling it).
    """

    def __init__(self, report: Report | None,
                 stop: Callable[[], int | None] | None = None) -> None:
        self._report = report
        self._stop = stop
        self.last: dict[str, float] = {}
        self.tracking_error: TrialFailure | None = None
        self.stopped_at: int | None = None
        self.closed = False

    def __call__(self, step: int, **metrics: Any) -> None:
        if self.closed:
            return
        if self.stopped_at is not None:  # nothing past the stop is logged
            raise TrialStopped(self.stopped_at)
        if isinstance(step, bool) or not isinstance(step, int):
            raise TypeError(f"report(step, **metrics): step must be an int, got {step!r}")
        values = {}
        for name, value in metrics.items():
            if not valid_metric_name(name):
                raise TypeError(f"report(): metric name {name!r} is not valid; {METRIC_NAME_RULE}")
            if isinstance(value, bool | str | bytes):
                raise TypeError(f"report(): metric {name!r} must be a number, got {value!r}")
            values[name] = float(value)
        self.last.update(values)
        if self._report is None or not values:
            return
        try:
            self._report(step, values)
        except TrialFailure as exc:
            self.tracking_error = exc
            raise
        except Exception as exc:
            self.tracking_error = TrialFailure(
                "tracking_error", f"reporting metrics failed: {type(exc).__name__}: {exc}"
            )
            raise self.tracking_error from exc
        if self._stop is not None and (at := self._stop()) is not None:
            self.stopped_at = at
            raise TrialStopped(at)


def run_function(
    ref: str,
    params: dict[str, Any],
    *,
    metric: str,
    report: Report | None = None,
    timeout_s: float | None = None,
    stop: Callable[[], int | None] | None = None,
) -> Outcome:
    """Call a Python objective with ``params`` (and ``report`` if it takes one).

    ``stop`` is asked after each ``report``: a step (not None) means the early-stopping
    rule stopped the trial there; ``report`` then raises ``TrialStopped`` into the
    function, and the outcome carries ``stopped_at`` with the metrics reported so far.
    With ``timeout_s`` the call runs in a daemon worker thread and we stop waiting
    after the timeout. Python cannot kill a thread: a timed-out function keeps
    running in the background (its reports are dropped) until it returns on its
    own. Use a command trial when a hard kill matters.
    """
    try:
        fn = load_function(ref)
    except (Exception, SystemExit) as exc:
        raise TrialFailure.from_exception(exc) from exc
    reporter = _Reporter(report, stop)
    args = (dict(params), reporter) if _takes_report(fn) else (dict(params),)
    result: Any = None
    try:
        result = _call(fn, args) if timeout_s is None else _call_with_timeout(fn, args, timeout_s)
    except TrialFailure:
        if reporter.stopped_at is None or reporter.tracking_error is not None:
            raise
        # stopped: TrialStopped itself, or whatever the function raised after it
    finally:
        reporter.closed = True
    if reporter.tracking_error is not None:  # even if the trial swallowed it
        raise reporter.tracking_error
    if reporter.stopped_at is not None:  # even if the trial swallowed TrialStopped
        return Outcome(metrics=dict(reporter.last), stopped_at=reporter.stopped_at)
    return Outcome(metrics=final_metrics(result, metric, reporter.last))


def _call(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    try:
        return fn(*args)
    except TrialFailure:
        raise
    except (Exception, SystemExit) as exc:  # SystemExit: sys.exit() inside a trial
        raise TrialFailure.from_exception(exc) from exc


def _call_with_timeout(fn: Callable[..., Any], args: tuple[Any, ...], timeout_s: float) -> Any:
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = _call(fn, args)
        except BaseException as exc:  # handed to the waiting thread
            box["error"] = exc

    # Copy the context so contextvars (e.g. an orchestrator's run context) still
    # apply inside the worker thread.
    ctx = contextvars.copy_context()
    worker = threading.Thread(target=ctx.run, args=(target,), name="amtune-trial", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise TrialFailure("timeout", f"function did not return within {timeout_s:g} s")
    if "error" in box:
        raise box["error"]
    return box["result"]
