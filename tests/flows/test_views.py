"""What a user sees after `amtune run`, read back from real MLflow and the real Prefect API.

One study (8 trials, those with ``kind == "b"`` failing) run once by the CLI with its own
defaults, so the Prefect logging checked here is what a user gets: INFO lines in the API,
nothing of Prefect's on the terminal.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow.tracking import MlflowClient

from amtune.flows.plots import PLOT_FILES
from amtune.flows.summary import artifact_key, best_series, state_message
from amtune.flows.views import SHARED_VIEW_TAG, view_key, view_state
from amtune.tasks.store.schema import TrialRecord
from tests.conftest import Runner, cli_env
from tests.flows.helpers import spec, study_runs
from tests.flows.test_plots import PNG_MAGIC
from tests.flows.test_report import parse
from tests.servers import mlflow_server

STUDY = "views-study"
N = 8


# Completes for kind a, fails for kind b: a study with some of each. Written next to the
# study (the CLI imports objectives from its working directory), as a user's code is.
OBJECTIVE = """
def fails_on_b(params):
    if params["kind"] == "b":
        raise ValueError("kind b is not supported")
    return (params["x"] - 1.0) ** 2 + params["y"]
"""


@pytest.fixture(scope="module")
def study(prefect_api: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("views")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    path = tmp / "study.yaml"
    (tmp / "views_objective.py").write_text(OBJECTIVE, encoding="utf-8")
    data = spec(STUDY, "views_objective:fails_on_b", budget={"max_trials": N,
                "max_parallel": 4}, tracking={"uri": uri})
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    env = cli_env(prefect_api)
    for k in ("PREFECT_LOGGING_LEVEL", "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"):
        env.pop(k, None)  # the test session's own logging settings: a user has amtune's
    r = subprocess.run([sys.executable, "-m", "amtune.flows.cli", "run", str(path)], cwd=tmp,
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    parents, children = study_runs(uri, STUDY)
    return {"uri": uri, "run": r, "parent": parents[0], "children": children, "tmp": tmp}


def test_console_stays_quiet(study: dict[str, Any]) -> None:
    run = study["run"]
    failed = [c.data.tags["amtune.reason"] for c in study["children"]
              if c.info.status == "FAILED"]
    assert set(failed) == {"exception: ValueError: kind b is not supported"}, failed
    assert 0 < len(failed) < N, "the seed must give both completed and failed trials"
    err = [ln for ln in run.stderr.splitlines() if ln.strip()]
    assert len(err) == N and all(ln.startswith("trial-") for ln in err), run.stderr
    assert f"viewStateShareKey={view_key(STUDY)}" in run.stdout


def test_parent_carries_best_history_plots_and_report(study: dict[str, Any]) -> None:
    c = MlflowClient(study["uri"])
    parent, children = study["parent"], study["children"]
    hist = sorted((m.step, m.value) for m in
                  c.get_metric_history(parent.info.run_id, "best_loss"))
    finished = sorted((int(r.data.tags["amtune.trial"]), r) for r in children
                      if r.info.status in ("FINISHED", "FAILED"))
    assert len(finished) == N
    first = next(i for i, (_, r) in enumerate(finished, 1) if r.info.status == "FINISHED")
    assert [s for s, _ in hist] == list(range(first, N + 1))  # one point per finished trial
    best = min(r.data.metrics["loss"] for _, r in finished if r.info.status == "FINISHED")
    assert hist[-1][1] == pytest.approx(best)
    assert all(a >= b for (_, a), (_, b) in pairwise(hist))
    assert parent.data.tags["best_trial"] in {r.info.run_id for r in children}

    out = study["tmp"] / "artifacts"
    for name in PLOT_FILES:
        png = Path(c.download_artifacts(parent.info.run_id, f"plots/{name}", str(out)))
        assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 5000, name
    page = Path(c.download_artifacts(parent.info.run_id, "report.html", str(out)))
    p = parse(page.read_text(encoding="utf-8"))
    assert len(p.images) == len(PLOT_FILES)
    assert all(base64.b64decode(s.split(",", 1)[1])[:8] == PNG_MAGIC for s in p.images)
    assert "kind b is not supported" in " ".join(p.text)


def test_shared_view_is_sorted_by_the_objective(study: dict[str, Any]) -> None:
    exp = MlflowClient(study["uri"]).get_experiment(study["parent"].info.experiment_id)
    state = json.loads(exp.tags[SHARED_VIEW_TAG + view_key(STUDY)])
    assert state["orderByKey"] == "metrics.`loss`" and state["orderByAsc"] is True
    assert {"params.`x`", "params.`y`", "params.`kind`", "metrics.`loss`"} <= set(
        state["selectedColumns"])
    assert state["runsExpanded"] == {study["parent"].info.run_id: True}


def _prefect(study_name: str, until: Callable[[Any, list[Any], list[Any]], bool]
             ) -> tuple[Any, list[Any], list[Any], list[Any]]:
    """The study's flow run, its rounds, their task runs and the logs, once ``until`` holds.

    Task-run states reach the API through its event recorder (batched once a second),
    so they are read again until they are all there."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterName,
        FlowRunFilterParentFlowRunId,
        LogFilter,
        LogFilterFlowRunId,
    )

    with get_client(sync_client=True) as client:
        for _ in range(120):
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
                name=FlowRunFilterName(any_=[study_name])))
            assert len(runs) == 1
            top = runs[0]
            rounds = client.read_flow_runs(flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[top.id])))
            ids = [r.id for r in rounds]
            tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=ids))) if ids else []
            logs = client.read_logs(log_filter=LogFilter(
                flow_run_id=LogFilterFlowRunId(any_=[top.id, *ids])))
            if until(rounds, tasks, logs):
                return top, rounds, tasks, logs
            time.sleep(0.5)
    raise AssertionError(f"Prefect never held it all: {len(tasks)} task runs, {len(logs)} logs")


def test_prefect_says_which_trials_failed_and_why(study: dict[str, Any]) -> None:
    failed = {int(r.data.tags["amtune.trial"]): r.data.tags["amtune.reason"]
              for r in study["children"] if r.info.status == "FAILED"}

    def complete(rounds: list[Any], tasks: list[Any], logs: list[Any]) -> bool:
        trials = [t for t in tasks if t.name.startswith("trial-")]
        return (len(trials) == N and all(t.state and t.state.is_final() for t in trials)
                and sum("attempt 1 of 1 failed" in lg.message for lg in logs) == len(failed))

    top, rounds, tasks, logs = _prefect(STUDY, complete)
    assert top.state.is_completed()
    assert top.state.message.startswith(f"{len(failed)} of {N} trials failed")
    for t in (t for t in tasks if t.name.startswith("trial-")):
        number = int(t.name.split("-")[1])
        if number in failed:
            assert t.state.is_failed() and failed[number] in t.state.message, t.state.message
        else:
            assert t.state.is_completed()
    messages = [r.state.message for r in rounds if r.state.is_completed()]
    assert any(m and " trials failed" in m for m in messages), messages
    text = [lg.message for lg in logs]
    assert any("exception: ValueError: kind b is not supported" in m for m in text), text
    assert any(m.startswith("loss=") and "'kind': 'a'" in m for m in text), text
    assert any(m.startswith("round ") for m in text), text


def test_artifacts_count_failures_and_link_mlflow(study: dict[str, Any]) -> None:
    from prefect.artifacts import Artifact

    failed = sum(c.info.status == "FAILED" for c in study["children"])
    progress = Artifact.get(artifact_key("progress", STUDY))
    assert progress is not None and float(progress.data) == 100.0
    assert progress.description.startswith(f"{N}/{N} trials done, {failed} failed, best loss ")
    top = Artifact.get(artifact_key("top", STUDY))
    assert top is not None and f"**{failed} failed**" in top.description
    assert f"viewStateShareKey={view_key(STUDY)}" in top.description
    rows = json.loads(top.data) if isinstance(top.data, str) else top.data
    ids = {c.info.run_id for c in study["children"] if c.info.status == "FINISHED"}
    assert len(rows) == len(ids)
    assert all(row["mlflow"].rsplit("/runs/", 1)[1] in ids for row in rows)


def test_state_message_and_best_series_units() -> None:
    recs = [TrialRecord(0, 0, "failed", "r0", reason="exception: boom"),
            TrialRecord(1, 0, "completed", "r1", value=3.0),
            TrialRecord(2, 0, "killed", "r2"),
            TrialRecord(3, 1, "completed", "r3", value=1.0),
            TrialRecord(4, 1, "failed", "r4")]
    assert best_series(recs, 1.0) == [(2, 3.0), (3, 1.0), (4, 1.0)]
    assert best_series(recs, -1.0) == [(2, 3.0), (3, 3.0), (4, 3.0)]
    msg = state_message(recs, "max_failed_trials", "loss", 1.0)
    assert msg.startswith("2 of 4 trials failed") and "max_failed_trials" in msg
    assert "best loss 1 (trial 3)" in msg
    assert view_state("acc", -1.0, ["a"], None)["orderByAsc"] is False


def test_printed_link_shows_the_objective_and_trials_in_a_browser(
        amtune: Runner, prefect_api: str, tmp_path: Path) -> None:
    """The link `amtune run` prints, opened in headless Chromium against `mlflow server`."""
    browser = shutil.which("chromium")
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs chromium (.ci/run installs it)")
        pytest.skip("chromium is not installed")
    with mlflow_server(tmp_path / "mlflow") as server:
        path = tmp_path / "study.yaml"
        path.write_text(yaml.safe_dump(spec("views-browser", "tests.flows.objectives:loss_only",
                                            budget={"max_trials": 4, "max_parallel": 2},
                                            tracking={"uri": server.url})), encoding="utf-8")
        r = amtune("run", str(path), prefect_api=prefect_api)
        assert r.returncode == 0, r.stderr
        assert "View run" not in r.stdout  # MLflow's own link per ended run: suppressed
        link = next(ln.split("mlflow ui: ", 1)[1] for ln in r.stdout.splitlines()
                    if ln.startswith("mlflow ui: "))
        profile = tmp_path / "chromium-profile"
        dom = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}", "--window-size=1440,900",
             "--virtual-time-budget=30000", "--dump-dom", link],
            capture_output=True, text=True, timeout=180).stdout
    headers = re.findall(r'data-testid="sort-header-([^"]+)"', dom)
    assert "loss" in headers, headers
    assert re.search(r">trial-000\d<", dom), dom[-2000:]
