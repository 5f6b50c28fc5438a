"""Chaos studies: flaky trials, a study process SIGKILLed at random moments, invariants.

A chaos study is a real ``amtune run`` of a command study whose trials (see
``chaos_trial.py``) raise, exit non-zero, hang past their timeout, print no metric,
print NaN or SIGKILL themselves, each with a seeded probability per attempt. The
study process is killed with SIGKILL at random moments and rerun until it exits 0.
Then :func:`check_study` reads MLflow (and Prefect, through its client) and lists
every broken invariant. The test suite runs this on a small scale, the
``benchmarks/chaos.py`` script on a large one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
TRIAL_SCRIPT = Path(__file__).with_name("chaos_trial.py")
TERMINAL = ("FINISHED", "FAILED")


@dataclass(frozen=True)
class ChaosConfig:
    """One chaos study. ``fail_rate`` is the chance that any single attempt misbehaves."""

    seed: int
    max_trials: int = 12
    max_parallel: int = 3
    retries: int = 2
    fail_rate: float = 0.3
    kills: int = 1
    timeout_s: float = 1.5
    hang_s: float = 20.0
    strategy: str = "random"
    run_timeout_s: float = 600.0


@dataclass
class StudyRun:
    """What happened while driving one study to completion."""

    name: str
    spec: Path
    tracking_uri: str
    prefect_home: Path
    prefect_api: str | None = None  # a shared Prefect server; None: a private ephemeral API
    exit_codes: list[int] = field(default_factory=list)
    kills: int = 0
    wall_s: float = 0.0

    @property
    def completed(self) -> bool:
        return bool(self.exit_codes) and self.exit_codes[-1] == 0


@dataclass
class Verdict:
    """The invariants of one finished study; ``violations`` is empty when all hold."""

    name: str
    terminal: int = 0
    completed: int = 0
    failed: int = 0
    lost: int = 0
    duplicated: int = 0
    stale_task_runs: int = 0
    violations: list[str] = field(default_factory=list)


def write_study(
    root: Path, name: str, cfg: ChaosConfig, prefect_api: str | None = None
) -> StudyRun:
    """A study directory with the spec, the trial's config and private Prefect state."""
    study = root / name
    study.mkdir(parents=True)
    config = study / "chaos.json"
    config.write_text(
        json.dumps({"seed": cfg.seed, "fail_rate": cfg.fail_rate, "hang_s": cfg.hang_s})
    )
    tracking_uri = f"sqlite:///{study / 'mlflow.db'}"
    spec = {
        "name": name,
        "objective": {
            "command": ["python", str(TRIAL_SCRIPT), str(config)],
            "metric": "loss",
            "direction": "minimize",
            "metrics": [{"name": "loss", "regex": r"loss=(\S+)"}],
        },
        "parameters": {
            "x": {"type": "float", "low": 0.0, "high": 1.0},
            "y": {"type": "float", "low": -1.0, "high": 1.0},
            "k": {"type": "categorical", "values": ["a", "b", "c"]},
        },
        "strategy": {"name": cfg.strategy},
        "budget": {"max_trials": cfg.max_trials, "max_parallel": cfg.max_parallel},
        "trial": {"retries": cfg.retries, "retry_delay_s": 0, "timeout_s": cfg.timeout_s},
        "seed": cfg.seed,
        "tracking": {"uri": tracking_uri},
    }
    path = study / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return StudyRun(name, path, tracking_uri, study / "prefect-home", prefect_api)


def study_env(run: StudyRun) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    env["PYTHONPATH"] = str(ROOT)
    env["PREFECT_HOME"] = str(run.prefect_home)
    if run.prefect_api is not None:
        env["PREFECT_API_URL"] = run.prefect_api
    return env


def terminal_trials(db: Path) -> int:
    """Finished child runs, read straight from the SQLite file (cheap, no MLflow import)."""
    if not db.exists():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as c:
            (n,) = c.execute(
                "SELECT COUNT(*) FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
                "AND t.key = 'mlflow.parentRunId' WHERE r.status IN ('FINISHED', 'FAILED')"
            ).fetchone()
    except sqlite3.Error:
        return 0
    return int(n)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the study process, then whatever it started in its group (Prefect's server)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def drive(run: StudyRun, cfg: ChaosConfig, *, max_runs: int | None = None) -> StudyRun:
    """Run the study, SIGKILL it ``cfg.kills`` times at random moments, rerun until exit 0.

    A kill waits for a random number of newly finished trials (or, drawn as zero, a
    random fraction of a second), so kills land during start-up, proposal, trials
    and tracking writes alike.
    """
    rng = random.Random(cfg.seed)
    db = Path(run.tracking_uri.removeprefix("sqlite:///"))
    logs = run.spec.parent / "logs"
    logs.mkdir(exist_ok=True)
    start = time.monotonic()
    max_runs = max_runs or cfg.kills + 4
    for attempt in range(max_runs):
        with open(logs / f"run-{attempt}.log", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "amtune.flows.cli", "run", str(run.spec)],
                cwd=run.spec.parent,
                env=study_env(run),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            if run.kills < cfg.kills and _wait_for_kill_moment(proc, db, cfg, rng):
                _kill(proc)
                run.kills += 1
                run.exit_codes.append(-signal.SIGKILL)
                continue
            try:
                code = proc.wait(timeout=cfg.run_timeout_s)
            except subprocess.TimeoutExpired:
                _kill(proc)
                code = -signal.SIGKILL
            run.exit_codes.append(code)
        if code == 0:
            break
    run.wall_s = time.monotonic() - start
    return run


def _wait_for_kill_moment(
    proc: subprocess.Popen[bytes], db: Path, cfg: ChaosConfig, rng: random.Random
) -> bool:
    """Block until the chosen moment; False if the study ended first."""
    done = terminal_trials(db)
    target = rng.randint(done, max(done, cfg.max_trials - 1))
    extra = rng.uniform(0.0, 2.0 if target == done else 0.5)
    deadline = time.monotonic() + cfg.run_timeout_s
    while terminal_trials(db) < target:
        if proc.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    end = time.monotonic() + extra
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        time.sleep(0.02)
    return proc.poll() is None


def prefect_task_runs(run: StudyRun, attempts: int = 4) -> list[dict[str, Any]]:
    """The study's trial task runs, read with Prefect's client from its own PREFECT_HOME.

    Reading starts a fresh ephemeral API on the study's SQLite database; a Prefect
    server left over from a killed run may still hold a lock on it for a moment,
    so a failed read is retried.
    """
    for attempt in range(attempts):
        proc = subprocess.run(
            [sys.executable, "-m", "tests.chaos.prefect_states", run.name],
            cwd=ROOT,
            env=study_env(run),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if proc.returncode == 0:
            return json.loads(proc.stdout.strip().splitlines()[-1])
        time.sleep(2.0 * (attempt + 1))
    raise RuntimeError(f"cannot read Prefect task runs of {run.name}:\n{proc.stderr[-2000:]}")


def check_study(run: StudyRun, cfg: ChaosConfig) -> Verdict:
    """Every invariant of a finished chaos study, as a list of violations."""
    from tests.chaos.layout import read_study

    v = Verdict(run.name)
    try:
        study = read_study(run.tracking_uri, run.name)
    except AssertionError as exc:
        v.violations.append(str(exc))
        return v
    if not run.completed:
        v.violations.append(f"study did not complete: exit codes {run.exit_codes}")
    if study is None:
        v.violations.append("no parent run in MLflow")
        return v
    trials = study.trials
    left_running = [t.number for t in trials if t.status not in (*TERMINAL, "KILLED")]
    if left_running or study.parent_status == "RUNNING":
        v.violations.append(
            f"runs left unfinished: trials {left_running}, parent {study.parent_status}"
        )
    terminal = [t for t in trials if t.status in TERMINAL]
    v.terminal = len(terminal)
    v.completed = sum(t.status == "FINISHED" for t in terminal)
    v.failed = sum(t.status == "FAILED" for t in terminal)
    numbers = Counter(t.number for t in terminal)
    points = Counter(t.params_key for t in terminal)
    v.duplicated = sum(c - 1 for c in numbers.values()) + sum(c - 1 for c in points.values())
    v.lost = max(0, cfg.max_trials - len(numbers))
    if v.terminal != cfg.max_trials:
        v.violations.append(f"{v.terminal} terminal trials, expected {cfg.max_trials}")
    if v.duplicated:
        dup = sorted(n for n, c in numbers.items() if c > 1)
        v.violations.append(
            f"duplicated trial numbers {dup} or params "
            f"({sum(c > 1 for c in points.values())} points)"
        )
    for t in terminal:
        if t.status == "FAILED" and not t.cause:
            v.violations.append(f"trial {t.number} FAILED without a cause")
        failed_attempts = range(1, t.attempts + (t.status == "FAILED"))
        missing = [k for k in failed_attempts if not t.attempt_causes.get(k)]
        if missing:
            v.violations.append(
                f"trial {t.number} ({t.status}, {t.attempts} attempts): "
                f"no cause recorded for attempts {missing}"
            )
        if t.status == "FINISHED" and (t.value is None or not math.isfinite(t.value)):
            v.violations.append(f"trial {t.number} FINISHED without a finite value")
    values = [t.value for t in terminal if t.status == "FINISHED" and t.value is not None]
    if values and (study.best_value is None or not math.isclose(study.best_value, min(values))):
        v.violations.append(f"best value {study.best_value} != min over completed {min(values)}")
    if not values and study.best_value is not None:
        v.violations.append(f"best value {study.best_value} with no completed trial")
    _check_prefect(v, study, prefect_task_runs(run))
    return v


def _check_prefect(v: Verdict, study: Any, task_runs: list[dict[str, Any]]) -> None:
    """Prefect's final task-run states agree with MLflow's run statuses.

    A task run interrupted by a killed study stays RUNNING (or PENDING/SCHEDULED) in
    Prefect forever, and a SIGKILL can also drop the last state change in flight
    (Prefect reports task-run states asynchronously) after MLflow already holds the
    result: those are counted, not compared, since MLflow is the source of truth.
    Every trial that ended in a terminal state in Prefect must end the same way in
    MLflow, and every terminal MLflow trial needs a task run.
    """
    expected = {"FINISHED": "COMPLETED", "FAILED": "FAILED"}
    mlflow_status = {t.number: t.status for t in study.trials if t.status in TERMINAL}
    seen: set[int] = set()
    for tr in task_runs:
        number = _trial_number(tr["name"])
        if number is None:
            continue
        seen.add(number)
        if tr["state"] not in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            v.stale_task_runs += 1
            continue
        status = mlflow_status.get(number)
        if status is None or expected[status] != tr["state"]:
            v.violations.append(f"Prefect {tr['name']} is {tr['state']}, MLflow says {status}")
    missing = sorted(set(mlflow_status) - seen)
    if missing:
        v.violations.append(f"trials {missing} have no Prefect task run")


def _trial_number(name: str) -> int | None:
    stem = name.split("-", 1)[1] if name.startswith("trial-") else ""
    digits = stem.split("-")[0]
    return int(digits) if digits.isdigit() else None
