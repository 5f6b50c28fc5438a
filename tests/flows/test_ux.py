"""What a user sees: progress lines, the end-of-run lines, `results` on edge cases."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from amtune.flows.cli import ui_link
from amtune.flows.progress import Reporter
from amtune.tasks.store.schema import TrialRecord
from tests.conftest import Runner, cli_env
from tests.flows.helpers import counted, spec, study_runs
from tests.flows.test_cli import child_statuses

LONG = 0.024579968439617555


def test_plain_lines_format_the_best_value() -> None:
    out = io.StringIO()
    with Reporter("loss", 1.0, total=2, stream=out, live=False) as r:
        r.trial(TrialRecord(0, 0, "completed", "r0", value=LONG))
    line = out.getvalue().strip()
    assert line == "trial-0000 loss=0.02458  [1/2, best 0.02458]", line


def test_live_line_says_it_is_starting_then_counts_from_the_history() -> None:
    r = Reporter("acc", -1.0, total=20)
    assert "starting" in str(r._line())
    history = [TrialRecord(i, 0, "completed", f"r{i}", value=0.5 + i / 100) for i in range(8)]
    history += [TrialRecord(8, 1, "failed", "r8"), TrialRecord(9, 1, "failed", "r9"),
                TrialRecord(11, 1, "killed", "r11")]  # a killed trial does not count
    r.begin(history)  # a resumed study
    line = str(r._line())
    assert line.startswith("trials 10/20  failed 2  best acc 0.57  eta -"), line
    r.trial(TrialRecord(10, 3, "completed", "r10", value=0.95))
    assert "trials 11/20  failed 2  best acc 0.95  eta " in str(r._line())
    assert not str(r._line()).endswith("eta -")  # one trial ran in this process: an ETA


def test_ui_link_opens_the_model_training_view() -> None:
    assert ui_link("http://127.0.0.1:5000/", "7") == (
        "http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning")
    local = ui_link("sqlite:///mlflow.db", "1")
    assert "#/experiments/1/runs?workflowType=machine_learning" in local
    assert "mlflow ui --backend-store-uri sqlite:///mlflow.db" in local


def test_all_failed_study_is_quiet_and_explained(amtune: Runner, prefect_api: str,
                                                 tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    path = tmp_path / "fail.yaml"
    data = spec("ux-allfail", "tests.flows.objectives:always_fails",
                budget={"max_trials": 2, "max_parallel": 2})
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    # The session sets PREFECT_LOGGING_LEVEL=WARNING for the tests; a user has amtune's default.
    r = amtune("run", str(path), "--tracking-uri", uri, prefect_api=prefect_api,
               PREFECT_LOGGING_LEVEL="CRITICAL")
    assert r.returncode == 0, r.stderr
    assert "2 trials (2 failed)" in r.stdout
    assert "workflowType=machine_learning" in r.stdout
    # No MLflow schema chatter, no Prefect tracebacks: only the two plain trial lines.
    err = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(err) == 2 and all(ln.startswith("trial-000") for ln in err), r.stderr
    assert all("failed (" in ln and "best -" in ln for ln in err), r.stderr

    res = amtune("results", "ux-allfail", "--tracking-uri", uri)
    assert res.returncode == 0, res.stderr
    assert "no completed trial" in res.stdout
    assert "2x " in res.stdout or res.stdout.count("1x ") == 2, res.stdout

    bad = amtune("results", "ux-allfail", "--tracking-uri", uri,
                 "--csv", str(tmp_path / "missing" / "t.csv"))
    assert bad.returncode == 2
    assert bad.stderr.strip().startswith("amtune: --csv: ") and "Traceback" not in bad.stderr


def test_ctrl_c_on_the_ephemeral_api_exits_then_resumes(prefect_api: str,
                                                         tmp_path: Path) -> None:
    """A terminal's Ctrl-C (SIGINT to the whole foreground group) mid-round.

    The group includes Prefect's ephemeral API server, which dies of it; amtune must
    exit with its one line instead of retrying to report to the dead server.
    """
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    path = tmp_path / "int.yaml"
    path.write_text(yaml.safe_dump(spec(
        "ux-int", "tests.flows.objectives:slow", tracking={"uri": uri},
        budget={"max_trials": 8, "max_parallel": 2})), encoding="utf-8")
    env = cli_env(None, AMTUNE_TEST_SLEEP="1.0", PREFECT_HOME=str(tmp_path / "ph"),
                  PREFECT_LOGGING_LEVEL="CRITICAL")
    env.pop("PREFECT_API_URL", None)  # the ephemeral API, as a user runs it
    proc = subprocess.Popen([sys.executable, "-m", "amtune.flows.cli", "run", str(path)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        for _ in range(1200):  # until a trial has finished and others run
            time.sleep(0.2)
            status = child_statuses(tmp_path / "mlflow.db")
            if "FINISHED" in status and "RUNNING" in status:
                break
        else:
            raise AssertionError("the study never reached a round with finished trials")
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)  # a hang guard: it used to take minutes
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 1, err
    assert err.rstrip().endswith("amtune: interrupted; run the same command again to resume")
    assert "Traceback" not in err and "ERROR" not in err, err

    r = subprocess.run([sys.executable, "-m", "amtune.flows.cli", "run", str(path)], cwd=tmp_path,
                       env=cli_env(prefect_api, AMTUNE_TEST_SLEEP="0"), capture_output=True,
                       text=True, timeout=240)
    assert r.returncode == 0, r.stderr
    _, children = study_runs(uri, "ux-int")
    assert not [c for c in children if c.info.status == "RUNNING"]
    assert sorted(int(c.data.tags["amtune.trial"]) for c in counted(children)) == list(range(8))


def test_prefect_shows_the_study_by_name(prefect_api: str, tracking_uri: str) -> None:
    """This study's own flow run is named after it, and its rounds are its subflows.

    The Prefect server is shared with every other test: only this run and its
    children are looked at.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    from amtune.flows.study import study_flow

    s = spec("ux-named", "tests.flows.objectives:loss_only", tracking={"uri": tracking_uri},
             budget={"max_trials": 2, "max_parallel": 2})
    state = study_flow(spec=s, return_state=True)
    assert state.is_completed(), state
    run_id = state.state_details.flow_run_id
    assert run_id is not None
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run_id)
        rounds = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run_id])))
    assert run.name == "ux-named"
    names = sorted(r.name for r in rounds)
    assert "round-0" in names and all(re.fullmatch(r"round-\d+", n) for n in names), names
