"""``amtune`` end to end in a subprocess: real Prefect API (shared), real MLflow SQLite."""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from mlflow.tracking import MlflowClient

from amtune.flows.study import study_flow
from tests.conftest import Runner, cli_env
from tests.flows.helpers import counted, spec, study_runs
from tests.flows.objectives import loss

TRAIN = '''
import argparse, math
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, required=True)
p.add_argument("--layers", type=int, required=True)
a = p.parse_args()
for epoch in range(3):
    acc = 1.0 - abs(math.log10(a.lr) + 2) / 10 - 0.01 * a.layers + 0.01 * epoch
    print(f"[Epoch {epoch}] train: loss={1 - acc:.4f}")
    print(f"[Epoch {epoch}] validation: accuracy={acc:.4f}")
'''


def expected_accuracy(lr: float, layers: int, epoch: int) -> float:
    return round(1.0 - abs(math.log10(lr) + 2) / 10 - 0.01 * layers + 0.01 * epoch, 4)


def child_statuses(db: Path) -> list[str]:
    """Trial run statuses read with plain SQLite (a client here would race the schema setup)."""
    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            rows = con.execute(
                "SELECT r.status FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
                "WHERE t.key = 'mlflow.parentRunId'").fetchall()
    except sqlite3.Error:  # schema not created yet
        return []
    return [s for (s,) in rows]


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_function_study_cli(amtune: Runner, prefect_api: str, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    path = write(tmp_path / "fn.yaml", spec("cli-fn", "tests.flows.objectives:quadratic"))
    r = amtune("run", str(path), "--tracking-uri", uri, prefect_api=prefect_api)
    assert r.returncode == 0, r.stderr
    assert "best loss =" in r.stdout
    parents, children = study_runs(uri, "cli-fn")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == 6 and all(c.info.status == "FINISHED" for c in children)
    for c in children:
        p = c.data.params
        assert math.isclose(c.data.metrics["loss"],
                            loss({"x": float(p["x"]), "y": int(p["y"]), "kind": p["kind"]}))
    assert "Traceback" not in r.stderr

    out = amtune("results", "cli-fn", "--tracking-uri", uri, "--json", "--top", "3",
                 "--csv", str(tmp_path / "t.csv"))
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["trials"] == 6 and len(data["top"]) == 3
    assert math.isclose(data["best"]["value"], min(c.data.metrics["loss"] for c in children))
    rows = (tmp_path / "t.csv").read_text().strip().splitlines()
    assert len(rows) == 7 and rows[0].startswith("number,round,status,stopped_at_step,attempts")

    # --max-trials extends the finished study: 2 more trials, none re-run
    r = amtune("run", str(path), "--tracking-uri", uri, "--max-trials", "8",
               prefect_api=prefect_api)
    assert r.returncode == 0, r.stderr
    parents, children = study_runs(uri, "cli-fn")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(int(c.data.tags["amtune.trial"]) for c in children) == list(range(8))


def test_command_study_cli(amtune: Runner, prefect_api: str, tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(TRAIN, encoding="utf-8")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    d = {
        "name": "cli-cmd",
        "objective": {
            "command": ["python", "train.py", "--lr={lr}", "--layers", "{layers}"],
            "metric": "accuracy", "direction": "maximize",
            "metrics": [{"name": "accuracy", "regex": r"validation: accuracy=([0-9.]+)"},
                        {"name": "train_loss", "regex": r"train: loss=([0-9.]+)"}]},
        "parameters": {"lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
                       "layers": {"type": "int", "low": 1, "high": 4}},
        "strategy": {"name": "random"},
        "budget": {"max_trials": 4, "max_parallel": 2},
        "tracking": {"uri": uri},
    }
    r = amtune("run", str(write(tmp_path / "cmd.yaml", d)), prefect_api=prefect_api)
    assert r.returncode == 0, r.stderr
    parents, children = study_runs(uri, "cli-cmd")
    assert len(parents) == 1 and len(children) == 4
    c = MlflowClient(uri)
    for run in children:
        assert run.info.status == "FINISHED"
        lr, layers = float(run.data.params["lr"]), int(run.data.params["layers"])
        hist = sorted((m.step, m.value) for m in c.get_metric_history(run.info.run_id,
                                                                      "accuracy"))
        assert [s for s, _ in hist] == [0, 1, 2]
        for step, value in hist:
            assert math.isclose(value, expected_accuracy(lr, layers, step), abs_tol=1e-9)
        assert "output.txt" in {a.path for a in c.list_artifacts(run.info.run_id)}
    best = max(r.data.metrics["accuracy"] for r in children)
    assert math.isclose(parents[0].data.metrics["best_accuracy"], best)


def test_resume_after_sigkill(prefect_api: str, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    d = spec("resume", "tests.flows.objectives:slow", tracking={"uri": uri},
             budget={"max_trials": 10, "max_parallel": 2})
    path = write(tmp_path / "resume.yaml", d)
    env = cli_env(prefect_api, AMTUNE_TEST_SLEEP="1.0")
    proc = subprocess.Popen([sys.executable, "-m", "amtune.flows.cli", "run", str(path)],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:  # wait until mid-round, with trials done
            time.sleep(0.2)
            status = child_statuses(tmp_path / "mlflow.db")
            if status.count("FINISHED") >= 2 and "RUNNING" in status:
                break
        else:
            raise AssertionError("the study never reached a round with finished trials")
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    _, before = study_runs(uri, "resume")
    finished_before = {c.info.run_id for c in before if c.info.status == "FINISHED"}
    assert any(c.info.status == "RUNNING" for c in before)

    r = subprocess.run([sys.executable, "-m", "amtune.flows.cli", "run", str(path)], cwd=tmp_path,
                       env=cli_env(prefect_api, AMTUNE_TEST_SLEEP="0"), capture_output=True,
                       text=True, timeout=240)
    assert r.returncode == 0, r.stderr
    parents, children = study_runs(uri, "resume")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert not [c for c in children if c.info.status == "RUNNING"]
    done = counted(children)
    numbers = sorted(int(c.data.tags["amtune.trial"]) for c in done)
    assert numbers == list(range(10))  # exactly max_trials, none duplicated
    assert finished_before <= {c.info.run_id for c in done}  # completed trials never re-run
    assert any(c.info.status == "KILLED" for c in children)

    # the proposals are those an uninterrupted study makes (a function of the history)
    other = f"sqlite:///{tmp_path / 'other.db'}"
    study_flow(spec=spec("resume", "tests.flows.objectives:loss_only",
                         tracking={"uri": other}, budget={"max_trials": 10, "max_parallel": 2}))
    _, straight = study_runs(other, "resume")
    by_number = {int(c.data.tags["amtune.trial"]): c.data.params for c in straight}
    assert {int(c.data.tags["amtune.trial"]): c.data.params for c in done} == by_number
