"""check_objective: every static problem gives 'objective.<field>: <value> ...; <allowed>'."""

from __future__ import annotations

import os
import re
import stat
import sys
from types import SimpleNamespace

import pytest

from amtune.tasks.runners.objective import check_objective

ACC = SimpleNamespace(name="acc", regex=r"acc=([0-9.]+)")


def objective(**kw) -> SimpleNamespace:
    base = {"function": None, "command": None, "metric": "acc", "metrics": []}
    return SimpleNamespace(**{**base, **kw})


@pytest.mark.parametrize(
    "spec",
    [
        objective(function="tests.tasks.objectives:quadratic"),
        objective(function="tests.tasks.objectives:Trainer.fit"),
        objective(command=["python", "train.py", "--lr={lr}"], metrics=[ACC]),
        objective(command=["sh", "-c", "echo"], metrics=[ACC]),
        objective(
            command=[sys.executable], metrics=[ACC, SimpleNamespace(name="loss", regex="l=(.*)")]
        ),
    ],
)
def test_valid_objectives_pass(spec):
    check_objective(spec)


def test_existing_executable_path_passes(tmp_path):
    program = tmp_path / "train.sh"
    program.write_text("#!/bin/sh\necho acc=1\n")
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    check_objective(objective(command=[str(program)], metrics=[ACC]))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            objective(),
            "objective.function: None and objective.command: None (neither given); set exactly one",
        ),
        (
            objective(function="m:f", command=["x"]),
            "objective.function: 'm:f' and objective.command: ['x'] (both given); set exactly one",
        ),
        (
            objective(function="examples.svm"),
            "objective.function: 'examples.svm' is not of the form module:attr; allowed:",
        ),
        (objective(function="a b:c"), "objective.function: 'a b:c' is not of the form module:attr"),
        (objective(function=3), "objective.function: 3 is not of the form module:attr"),
        (
            objective(function="no_such_module_xyz:train"),
            "objective.function: 'no_such_module_xyz:train' cannot be imported "
            "(ModuleNotFoundError: No module named 'no_such_module_xyz'); "
            "the module must be importable",
        ),
        (
            objective(function="tests.tasks.objectives:nope"),
            "objective.function: 'tests.tasks.objectives:nope' has no attribute 'nope' in module "
            "'tests.tasks.objectives'; name a callable",
        ),
        (
            objective(function="tests.tasks.objectives:NOT_CALLABLE"),
            "objective.function: 'tests.tasks.objectives:NOT_CALLABLE' is not callable "
            "(type int); name a function",
        ),
        (
            objective(command=[], metrics=[ACC]),
            "objective.command: [] is not a non-empty list; give the program",
        ),
        (
            objective(command="python train.py", metrics=[ACC]),
            "objective.command: 'python train.py' is not a non-empty list",
        ),
        (
            objective(command=["python", 3], metrics=[ACC]),
            "objective.command[1]: 3 is not a string; every argv item",
        ),
        (
            objective(command=["no-such-program-xyz", "a"], metrics=[ACC]),
            "objective.command[0]: 'no-such-program-xyz' is not found; "
            "allowed: a program on PATH or a path",
        ),
        (
            objective(command=["./missing/train.sh"], metrics=[ACC]),
            "objective.command[0]: './missing/train.sh' is not found",
        ),
        (
            objective(
                command=["python"], metrics=[SimpleNamespace(name="acc", regex="acc=([0-9.]+")]
            ),
            "objective.metrics[0].regex: 'acc=([0-9.]+' does not compile "
            "(missing ), unterminated subpattern at position 4); "
            "give a Python regular expression with a group around the number",
        ),
        (
            objective(
                command=["python"], metrics=[SimpleNamespace(name="acc", regex="acc=[0-9.]+")]
            ),
            "objective.metrics[0].regex: 'acc=[0-9.]+' has no capturing group; "
            "put the number in a group",
        ),
        (  # the first group would be used: 'acc=0' from 'accuracy=0.515'
            objective(command=["python"], metrics=[
                SimpleNamespace(name="acc", regex=r"accuracy=([0-9])\.([0-9]+)")]),
            r"objective.metrics[0].regex: 'accuracy=([0-9])\\.([0-9]+)' has 2 capturing "
            "groups; allowed: exactly one, around the number; make the others "
            "non-capturing with (?:...)",
        ),
        (
            objective(command=["python"], metrics=[
                SimpleNamespace(name="acc", regex=r"(?P<k>acc|accuracy)=([0-9.]+)")]),
            "objective.metrics[0].regex: '(?P<k>acc|accuracy)=([0-9.]+)' has 2 capturing",
        ),
        (
            objective(
                command=["python"], metrics=[ACC, SimpleNamespace(name="acc", regex="x=(1)")]
            ),
            "objective.metrics[1].name: 'acc' is defined twice; metric names must be unique",
        ),
        (
            objective(command=["python"], metrics=[SimpleNamespace(name="a:b", regex="(1)")]),
            "objective.metrics[0].name: 'a:b' is not a valid metric name; use letters",
        ),
        (
            objective(command=["python"], metrics=[SimpleNamespace(name="acc", regex=None)]),
            "objective.metrics[0].regex: None is not a string",
        ),
        (
            objective(command=["python"], metric="loss", metrics=[ACC]),
            "objective.metric: 'loss' is not among the metric definitions ['acc']; add {name: loss",
        ),
        (
            objective(command=["python"], metric="loss"),
            "objective.metric: 'loss' is not among the metric definitions []",
        ),
        (objective(function="m:f", metric=""), "objective.metric: '' is not a valid metric name"),
        (objective(function="m:f", metric="a/../b"), "objective.metric: 'a/../b' is not a valid"),
        (objective(function="m:f", metric="/acc"), "objective.metric: '/acc' is not a valid"),
    ],
)
def test_problems_name_field_value_and_what_is_allowed(spec, message):
    with pytest.raises(ValueError) as info:
        check_objective(spec)
    assert str(info.value).startswith(message), str(info.value)
    assert re.match(
        r"^objective(\.\w+|\[\d+\])*(\.\w+)?(\[\d+\])?(\.\w+)?: .+; .+", str(info.value)
    )


def test_module_that_fails_on_import_is_reported(tmp_path, monkeypatch):
    (tmp_path / "broken_objective_mod.py").write_text("raise RuntimeError('needs a GPU')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", os.getcwd())])
    with pytest.raises(ValueError, match=r"cannot be imported \(RuntimeError: needs a GPU\)"):
        check_objective(objective(function="broken_objective_mod:f"))


def test_working_directory_modules_are_importable(tmp_path, monkeypatch):
    (tmp_path / "cwd_objective_mod.py").write_text("def f(params):\n    return 1.0\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", os.getcwd())])
    check_objective(objective(function="cwd_objective_mod:f"))


def test_placeholders_must_name_parameters_when_the_space_is_given():
    spec = objective(command=["python", "t.py", "--lr={learning_rate}", "{x}"], metrics=[ACC])
    check_objective(spec)  # without the parameter names, nothing to compare against
    check_objective(spec, ["learning_rate", "x"])
    with pytest.raises(ValueError) as info:
        check_objective(spec, ["x", "y"])
    assert str(info.value) == (
        "objective.command[2]: '--lr={learning_rate}' has placeholder {learning_rate} that "
        "names no parameter; allowed placeholders: {x}, {y}"
    )


def test_json_braces_are_not_placeholders():
    spec = objective(command=["python", "t.py", '{"a": 1}', "{}", "{x}"], metrics=[ACC])
    check_objective(spec, ["x"])
