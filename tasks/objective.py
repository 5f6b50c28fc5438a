"""Run one trial's objective (a Python function or a command) and say how it went.

Pure Python on purpose: no Prefect, no MLflow. The pipeline wraps ``run_objective``
in a task, passes a ``report`` callback that records intermediate metrics, and turns
a ``TrialFailure`` into a retry or a FAILED run. Everything a trial can do wrong
surfaces as a ``TrialFailure`` with a cause; anything else escaping from here is a
bug in amtune, not in the trial.
"""

from __future__ import annotations

import contextvars
import importlib
import inspect
import math
import os
import re
import shutil
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tasks.failures import TrialFailure

Report = Callable[[int, dict[str, float]], None]

_FUNCTION_REF = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")
# MLflow's own rule for metric names.
_METRIC_NAME = re.compile(r"^[\w\-./ ]+$")


@dataclass
class Outcome:
    """What a successful trial produced.

    ``metrics`` holds the final value of every metric, the objective metric
    included. For command trials each final value is the last value already passed
    to ``report``; for function trials the returned values were not reported.
    """

    metrics: dict[str, float]
    output: str | None = None  # captured stdout+stderr of a command trial


def run_objective(
    objective: Any,
    params: dict[str, Any],
    *,
    report: Report | None = None,
    timeout_s: float | None = None,
    env: dict[str, str] | None = None,
) -> Outcome:
    """Run one attempt of a trial; raise ``TrialFailure`` if the trial fails.

    ``objective`` is duck-typed: ``function`` ("module:attr") or ``command`` (argv),
    ``metric`` (the objective metric) and ``metrics`` (objects with ``name`` and
    ``regex``, command trials only). ``env`` only applies to command trials.
    """
    if getattr(objective, "command", None):
        from tasks.command import run_command

        return run_command(
            list(objective.command),
            params,
            metric=objective.metric,
            metrics={m.name: m.regex for m in (objective.metrics or [])},
            report=report,
            timeout_s=timeout_s,
            env=env,
        )
    return run_function(
        objective.function, params, metric=objective.metric, report=report, timeout_s=timeout_s
    )


# --------------------------------------------------------------------------- functions


def load_function(ref: str) -> Callable[..., Any]:
    """Import ``package.module:attr`` (attr may be dotted, e.g. ``Class.method``).

    The working directory is put on ``sys.path`` first, as uvicorn and gunicorn do,
    so ``examples.svm:train`` resolves the same whether amtune was started as
    ``python -m flows.cli`` or through the ``amtune`` console script.
    """
    module_name, _, attr_path = ref.partition(":")
    return _resolve(_import(module_name), attr_path)


def _import(module_name: str) -> Any:
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    return importlib.import_module(module_name)


def _resolve(obj: Any, attr_path: str) -> Any:
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
            if not isinstance(key, str):
                raise TrialFailure("invalid_metric", f"metric name {key!r} is not a string")
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

    def __init__(self, report: Report | None) -> None:
        self._report = report
        self.last: dict[str, float] = {}
        self.tracking_error: TrialFailure | None = None
        self.closed = False

    def __call__(self, step: int, **metrics: Any) -> None:
        if self.closed:
            return
        if isinstance(step, bool) or not isinstance(step, int):
            raise TypeError(f"report(step, **metrics): step must be an int, got {step!r}")
        values = {}
        for name, value in metrics.items():
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


def run_function(
    ref: str,
    params: dict[str, Any],
    *,
    metric: str,
    report: Report | None = None,
    timeout_s: float | None = None,
) -> Outcome:
    """Call a Python objective with ``params`` (and ``report`` if it takes one).

    With ``timeout_s`` the call runs in a daemon worker thread and we stop waiting
    after the timeout. Python cannot kill a thread: a timed-out function keeps
    running in the background (its reports are dropped) until it returns on its
    own. Use a command trial when a hard kill matters.
    """
    try:
        fn = load_function(ref)
    except (Exception, SystemExit) as exc:
        raise TrialFailure.from_exception(exc) from exc
    reporter = _Reporter(report)
    args = (dict(params), reporter) if _takes_report(fn) else (dict(params),)
    try:
        result = _call(fn, args) if timeout_s is None else _call_with_timeout(fn, args, timeout_s)
    finally:
        reporter.closed = True
    if reporter.tracking_error is not None:  # even if the trial swallowed it
        raise reporter.tracking_error
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


# --------------------------------------------------------------------------- checks


def check_objective(objective: Any) -> None:
    """Static checks for spec validation; raise ``ValueError`` with a user-facing message.

    Messages read ``objective.<field>: <value!r> <problem>; <what is allowed>``.
    Importing the function's module runs its top-level code, as running would.
    """
    function = getattr(objective, "function", None)
    command = getattr(objective, "command", None)
    if (function is None) == (command is None):
        given = "both given" if function is not None else "neither given"
        raise ValueError(
            f"objective.function: {function!r} and objective.command: {command!r} ({given}); "
            "set exactly one: function ('module:attr') or command (an argv list)"
        )
    metric = objective.metric
    if not isinstance(metric, str) or not _METRIC_NAME.match(metric):
        raise ValueError(
            f"objective.metric: {metric!r} is not a valid metric name; "
            "use letters, digits, spaces and _ - . /"
        )
    names = _check_metric_definitions(getattr(objective, "metrics", None) or [])
    if function is not None:
        _check_function(function)
        return
    _check_command(command)
    if metric not in names:
        raise ValueError(
            f"objective.metric: {metric!r} is not among the metric definitions "
            f"{sorted(names)}; add {{name: {metric}, regex: ...}} to objective.metrics "
            "or pick a defined metric"
        )


def _check_function(function: Any) -> None:
    if not isinstance(function, str) or not _FUNCTION_REF.match(function):
        raise ValueError(
            f"objective.function: {function!r} is not of the form module:attr; "
            "allowed: an importable module and attribute, e.g. 'examples.svm:train'"
        )
    module_name, _, attr_path = function.partition(":")
    try:
        module = _import(module_name)
    except (Exception, SystemExit) as exc:
        raise ValueError(
            f"objective.function: {function!r} cannot be imported "
            f"({type(exc).__name__}: {exc}); the module must be importable from the "
            "working directory or PYTHONPATH"
        ) from None
    try:
        fn = _resolve(module, attr_path)
    except AttributeError:
        raise ValueError(
            f"objective.function: {function!r} has no attribute {attr_path!r} in module "
            f"{module_name!r}; name a callable defined in that module"
        ) from None
    if not callable(fn):
        raise ValueError(
            f"objective.function: {function!r} is a {type(fn).__name__}, not callable; "
            "name a function taking (params) or (params, report)"
        )


def _check_command(command: Any) -> None:
    if isinstance(command, str) or not isinstance(command, list | tuple) or not command:
        raise ValueError(
            f"objective.command: {command!r} is not a non-empty list; "
            "give the program and its arguments as a list, e.g. [python, train.py]"
        )
    for i, item in enumerate(command):
        if not isinstance(item, str):
            raise ValueError(
                f"objective.command[{i}]: {item!r} is not a string; every argv item is a string"
            )
    from tasks.command import resolve_program

    program = resolve_program(command[0])
    if not (shutil.which(program) or (os.sep in program and os.path.isfile(program))):
        raise ValueError(
            f"objective.command[0]: {command[0]!r} is not found; allowed: a program on "
            "PATH or a path to an existing executable file"
        )


def _check_metric_definitions(definitions: Any) -> set[str]:
    names: set[str] = set()
    for i, definition in enumerate(definitions):
        name, regex = getattr(definition, "name", None), getattr(definition, "regex", None)
        if not isinstance(name, str) or not _METRIC_NAME.match(name):
            raise ValueError(
                f"objective.metrics[{i}].name: {name!r} is not a valid metric name; "
                "use letters, digits, spaces and _ - . /"
            )
        if name in names:
            raise ValueError(
                f"objective.metrics[{i}].name: {name!r} is defined twice; "
                "metric names must be unique"
            )
        names.add(name)
        if not isinstance(regex, str):
            raise ValueError(
                f"objective.metrics[{i}].regex: {regex!r} is not a string; "
                "give a regular expression with a group around the number"
            )
        try:
            groups = re.compile(regex).groups
        except re.error as exc:
            raise ValueError(
                f"objective.metrics[{i}].regex: {regex!r} does not compile ({exc}); "
                "give a Python regular expression with a group around the number"
            ) from None
        if groups < 1:
            raise ValueError(
                f"objective.metrics[{i}].regex: {regex!r} has no capturing group; "
                f"put the number in a group, e.g. '{name}=([0-9.eE+-]+)'"
            )
    return names
