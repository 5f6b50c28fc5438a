"""Run one trial's objective (a Python function or a command) and say how it went.

Pure Python on purpose: no Prefect, no MLflow. The pipeline wraps ``run_objective``
in a task, passes a ``report`` callback that records intermediate metrics, and turns
a ``TrialFailure`` into a retry or a FAILED run. Everything a trial can do wrong
surfaces as a ``TrialFailure`` with a cause; anything else escaping from here is a
bug in amtune, not in the trial.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterable
from typing import Any

from amtune.tasks.runners.command import placeholders, resolve_program, run_command
from amtune.tasks.runners.function import import_module, resolve_attr, run_function
from amtune.tasks.runners.outcome import METRIC_NAME_RULE, Outcome, Report, valid_metric_name
from amtune.tasks.runners.process import TrialProcess

__all__ = ["Outcome", "Report", "TrialProcess", "check_objective", "run_objective"]

_FUNCTION_REF = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def run_objective(
    objective: Any,
    params: dict[str, Any],
    *,
    report: Report | None = None,
    timeout_s: float | None = None,
    env: dict[str, str] | None = None,
    on_start: Callable[[TrialProcess], None] | None = None,
    stop: Callable[[], int | None] | None = None,
) -> Outcome:
    """Run one attempt of a trial; raise ``TrialFailure`` if the trial fails.

    ``objective`` is duck-typed: ``function`` ("module:attr") or ``command`` (argv),
    ``metric`` (the objective metric) and ``metrics`` (objects with ``name`` and
    ``regex``, command trials only). ``env`` and ``on_start`` (told the started
    process, see ``run_command``) only apply to command trials: a function trial
    runs in this process, which has no group of its own to end later. ``stop``
    (early stopping) is asked after each report: a step means the rule stopped the
    trial there; the outcome then carries ``stopped_at`` (see the two runners).
    """
    if getattr(objective, "command", None) is not None:
        return run_command(
            list(objective.command),
            params,
            metric=objective.metric,
            metrics={m.name: m.regex for m in (objective.metrics or [])},
            report=report,
            timeout_s=timeout_s,
            env=env,
            on_start=on_start,
            stop=stop,
        )
    if getattr(objective, "function", None) is None:
        raise ValueError("objective: neither function nor command is set (see check_objective)")
    return run_function(
        objective.function, params, metric=objective.metric, report=report, timeout_s=timeout_s,
        stop=stop,
    )


def check_objective(objective: Any, parameters: Iterable[str] | None = None) -> None:
    """Static checks for spec validation; raise ``ValueError`` with a user-facing message.

    Messages read ``objective.<field>: <value!r> <problem>; <what is allowed>``.
    Importing the function's module runs its top-level code, as running would.
    Given the parameter names, ``{name}`` placeholders in a command must name one
    of them: a misspelt placeholder would otherwise silently switch to append mode.
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
    if not valid_metric_name(metric):
        raise ValueError(
            f"objective.metric: {metric!r} is not a valid metric name; use {METRIC_NAME_RULE}"
        )
    names = _check_metric_definitions(getattr(objective, "metrics", None) or [])
    if function is not None:
        _check_function(function)
        return
    _check_command(command)
    if parameters is not None:
        _check_placeholders(command, list(parameters))
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
        module = import_module(module_name)
    except (Exception, SystemExit) as exc:
        raise ValueError(
            f"objective.function: {function!r} cannot be imported "
            f"({type(exc).__name__}: {exc}); the module must be importable from the "
            "working directory or PYTHONPATH"
        ) from None
    try:
        fn = resolve_attr(module, attr_path)
    except AttributeError:
        raise ValueError(
            f"objective.function: {function!r} has no attribute {attr_path!r} in module "
            f"{module_name!r}; name a callable defined in that module"
        ) from None
    if not callable(fn):
        raise ValueError(
            f"objective.function: {function!r} is not callable (type {type(fn).__name__}); "
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
    program = resolve_program(command[0])
    if not (shutil.which(program) or (os.sep in program and os.path.isfile(program))):
        raise ValueError(
            f"objective.command[0]: {command[0]!r} is not found; allowed: a program on "
            "PATH or a path to an existing executable file"
        )


def _check_placeholders(command: list[str], parameters: list[str]) -> None:
    for i, item in enumerate(command):
        unknown = sorted(placeholders([item]) - set(parameters))
        if unknown:
            raise ValueError(
                f"objective.command[{i}]: {item!r} has placeholder {{{unknown[0]}}} that names "
                f"no parameter; allowed placeholders: "
                f"{', '.join('{' + p + '}' for p in parameters) or 'none (no parameters)'}"
            )


def _check_metric_definitions(definitions: Any) -> set[str]:
    names: set[str] = set()
    for i, definition in enumerate(definitions):
        name, regex = getattr(definition, "name", None), getattr(definition, "regex", None)
        if not valid_metric_name(name):
            raise ValueError(
                f"objective.metrics[{i}].name: {name!r} is not a valid metric name; "
                f"use {METRIC_NAME_RULE}"
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
        if groups > 1:  # the first group would be taken, silently: 'acc=0' from '0.515'
            raise ValueError(
                f"objective.metrics[{i}].regex: {regex!r} has {groups} capturing groups; "
                "allowed: exactly one, around the number; make the others non-capturing "
                "with (?:...)"
            )
    return names
