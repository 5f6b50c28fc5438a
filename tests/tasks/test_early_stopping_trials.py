"""Early stopping at the trial level: real processes, real MLflow, the real rules.

The runners are told to stop by ``stop`` (what ``StoppingReport.stopped`` is in the
pipeline); the board is checked against a study written to a real MLflow store.
"""

from __future__ import annotations

import os
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psutil
import pytest
import yaml
from typer.testing import CliRunner

from amtune.flows.cli import app
from amtune.strategies.early_stopping import MedianRule
from amtune.tasks.runners import TrialStopped
from amtune.tasks.runners.objective import run_objective
from amtune.tasks.stopping import Board, StoppingReport
from amtune.tasks.store.schema import TrialRecord
from amtune.tasks.store.study import StudyStore

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="process groups as Linux has them")


def live_members(pgid: int) -> list[int]:
    out = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc.pid)
        except (OSError, psutil.Error):
            continue
    return out


def survivors(pgid: int, wait_s: float = 10.0) -> list[int]:
    """The group's live members once they had ``wait_s`` to die.

    SIGKILL is delivered asynchronously: a member can take a moment to die after
    ``killpg`` returns, so an immediate look may still see it.
    """
    deadline = time.monotonic() + wait_s
    while (alive := live_members(pgid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


# 200 epochs of 50 ms, a grandchild that ignores SIGTERM, and (with "stubborn") a
# leader that ignores it too: only SIGKILL after the grace ends them.
TRAIN = textwrap.dedent("""
    import signal, subprocess, sys, time
    if sys.argv[1] == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    subprocess.Popen(["sh", "-c", "trap '' TERM; sleep 120 & wait"])
    for epoch in range(1, 201):
        time.sleep(0.05)
        print(f"epoch={epoch} loss={1.0 / epoch}", flush=True)
""")


@linux_only
@pytest.mark.parametrize("mode", ["plain", "stubborn"])
def test_a_stopped_command_trial_leaves_no_process(tmp_path: Path, mode: str) -> None:
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    objective = SimpleNamespace(function=None, command=["python", str(script), mode],
                                metric="loss",
                                metrics=[SimpleNamespace(name="loss", regex=r"loss=(\S+)")])
    reports: list[tuple[int, dict[str, float]]] = []
    started: list[int] = []
    out = run_objective(objective, {}, report=lambda s, m: reports.append((s, m)),
                        on_start=lambda p: started.append(p.pgid),
                        stop=lambda: 3 if len(reports) >= 3 else None)
    assert out.stopped_at == 3
    assert 3 <= len(reports) < 200  # stopped long before its end
    assert survivors(started[0]) == []  # leader and grandchildren, SIGTERM ignored or not


def catching(params: dict[str, Any], report: Any) -> float:
    """A trial that catches the stop and goes on reporting, then returns a value."""
    for epoch in range(1, 6):
        try:
            report(epoch, loss=1.0 / epoch, other=epoch)
        except TrialStopped as exc:
            params["seen"].append(str(exc))
    return 0.0


def test_a_stopped_function_trial_raises_trial_stopped_and_keeps_it() -> None:
    seen: list[str] = []
    reports: list[int] = []
    out = run_objective(
        SimpleNamespace(function="tests.tasks.test_early_stopping_trials:catching",
                        command=None, metric="loss", metrics=[]),
        {"seen": seen}, report=lambda s, m: reports.append(s),
        stop=lambda: 2 if 2 in reports else None)
    assert out.stopped_at == 2
    assert reports == [1, 2]  # nothing after the stop reaches the pipeline
    assert out.metrics == {"loss": 0.5, "other": 2.0}  # as reported at the stop, not returned
    assert seen == ["stopped at step 2 by the early-stopping rule"] * 4


def _study(uri: str) -> StudyStore:
    store = StudyStore(uri=uri, experiment="es-board", study="es-board",
                       space={"x": {"type": "float", "low": 0, "high": 10}}, metric="loss")
    store.open({}, {})
    return store


def _finished_trial(store: StudyStore, number: int, curve: list[float]) -> None:
    run_id = store.start_trial(number, 0, {"x": float(number)}, "random")
    buffer = store.buffer(run_id)
    for step, v in enumerate(curve):  # as a command trial logs: from step 0
        buffer(step, {"loss": v})
    record = TrialRecord(number, 0, "completed", run_id, {"x": float(number)},
                         metrics={"loss": curve[-1]}, value=curve[-1])
    store.finish_trial(record, buffer)


def test_the_board_reads_finished_trials_from_mlflow_in_the_rules_steps(
        tracking_uri: str) -> None:
    writer = _study(tracking_uri)
    for n in range(5):  # running averages at step 2 (the second line): 1.5 .. 5.5
        _finished_trial(writer, n, [1.0 + n, 2.0 + n, 0.5])
    reader = _study(tracking_uri)  # another process's view: nothing in memory
    assert reader.parent_id == writer.parent_id
    board = Board(reader, "loss", 1.0, offset=1)
    logged: list[tuple[int, dict[str, float]]] = []
    rule = MedianRule(min_trials=5, max_steps=3)

    good = StoppingReport(lambda s, m: logged.append((s, m)), rule, board, 5)
    good(0, {"loss": 0.5})
    good(1, {"loss": 3.4})  # step 2: median of running averages 3.5; 3.4 is better
    assert good.stopped() is None
    histories = board.histories()
    assert sorted(histories) == [0, 1, 2, 3, 4, 5]
    assert histories[0].values == {1: 1.0, 2: 2.0, 3: 0.5} and histories[0].status == "completed"

    bad = StoppingReport(lambda s, m: logged.append((s, m)), rule, board, 6)
    bad(0, {"loss": 0.5})
    bad(1, {"loss": 3.6, "aux": 1.0})  # worse than the median: stopped at step 2
    assert bad.stopped() == 2
    bad(2, {"loss": 0.1})  # after the stop: not logged
    assert logged[-1] == (1, {"loss": 3.6, "aux": 1.0})
    board.end(6, "stopped")
    assert board.histories()[6].status == "stopped"


@pytest.mark.parametrize(("section", "message"), [
    ({"rule": "asha", "min_steps": 0},
     "early_stopping.min_steps: 0 is not allowed; must be a whole number >= 1"),
    ({"rule": "hyperband"}, "early_stopping.max_steps: missing; hyperband needs the full "
                            "length, a whole number >= min_steps"),
    ({"rule": "halving"}, "early_stopping.rule: 'halving' is not a rule; "
                          "allowed: median, asha, hyperband"),
    ({"rule": "median", "patience": 3}, "early_stopping.patience: 3 — unknown key; allowed "
     "keys: max_steps, min_steps, min_trials, reduction_factor, rule"),
    ({"min_steps": 2}, "early_stopping.rule: missing — this field is required"),
    ({"rule": "asha", "reduction_factor": True},
     "early_stopping.reduction_factor: True is not allowed; must be a whole number >= 2"),
])
def test_bad_early_stopping_sections_exit_2_with_one_line(tmp_path: Path, section: Any,
                                                          message: str) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({
        "name": "es", "objective": {"function": "examples.svm:train", "metric": "m"},
        "parameters": {"x": {"type": "float", "low": 0, "high": 1}},
        "early_stopping": section}))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_median_alone_is_a_valid_section(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({
        "name": "es", "objective": {"function": "examples.svm:train", "metric": "m"},
        "parameters": {"x": {"type": "float", "low": 0, "high": 1}},
        "early_stopping": {"rule": "median"}}))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
