"""Pure parts of scheduling and scale-out: names, schedules, paths, spec fields."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from amtune.flows.deploy import check_cron, check_schedule, spec_parameter
from amtune.flows.execution import absolute_tracking_uri
from amtune.flows.schedule import as_scheduled, scheduled_name
from amtune.flows.spec import SpecError, validate_spec
from tests.scale.objectives import spec
from tests.servers import ROOT, child_env


def test_scheduled_name_is_the_utc_slot() -> None:
    when = datetime(2026, 11, 29, 3, 0, 5, tzinfo=UTC)
    assert scheduled_name("svm", when) == "svm-20261129T030005Z"
    cet = timezone(timedelta(hours=1))
    assert scheduled_name("svm", datetime(2026, 11, 29, 4, 0, 5, tzinfo=cet)) == \
        "svm-20261129T030005Z"
    assert scheduled_name("svm", datetime(2026, 11, 29, 3, 0, 5)) == "svm-20261129T030005Z"


def test_a_scheduled_run_is_its_own_study_in_the_spec_experiment() -> None:
    s = validate_spec(spec("nightly", "sqlite:///x.db"), check_objective=False)
    run = as_scheduled(s, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert run.name == "nightly-20260102T030405Z"
    assert run.experiment == "nightly"
    assert run.parameters == s.parameters and run.seed == s.seed


@pytest.mark.parametrize("expr", ["0 3 * * *", "*/5 * * * 1-5", "30 2 1 * *"])
def test_valid_cron(expr: str) -> None:
    assert check_cron(expr) == expr
    assert check_schedule(expr, None) == {"cron": expr}


@pytest.mark.parametrize("expr", ["61 * * * *", "* * *", "H 3 * * *", "0 3 * * * *", "daily"])
def test_bad_cron_names_the_option_the_value_and_the_form(expr: str) -> None:
    with pytest.raises(SpecError) as err:
        check_cron(expr)
    msg = str(err.value)
    assert msg.startswith(f"--cron: {expr!r}") and "minute hour" in msg


def test_schedule_needs_exactly_one_of_cron_and_interval() -> None:
    assert check_schedule(None, 90) == {"interval": 90.0}
    for cron, interval in [(None, None), ("0 3 * * *", 60.0)]:
        with pytest.raises(SpecError, match="exactly one of --cron EXPR or --interval"):
            check_schedule(cron, interval)
    with pytest.raises(SpecError, match=r"--interval: -5.0 — must be .* > 0"):
        check_schedule(None, -5.0)


def test_spec_parameter_is_relative_to_the_checkout(tmp_path: Path) -> None:
    assert spec_parameter(ROOT / "examples" / "svm.yaml") == "examples/svm.yaml"
    outside = tmp_path / "s.yaml"
    assert spec_parameter(outside) == str(outside.resolve())


def test_relative_sqlite_uris_become_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                              ) -> None:
    monkeypatch.chdir(tmp_path)
    assert absolute_tracking_uri("sqlite:///mlflow.db") == f"sqlite:///{tmp_path}/mlflow.db"
    assert absolute_tracking_uri("sqlite:////abs/m.db") == "sqlite:////abs/m.db"
    assert absolute_tracking_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


@pytest.mark.parametrize(("extra", "expected"), [
    ({"execution": {"task_runner": "ray"}}, "execution.task_runner: 'ray' — allowed: 'threads' "
                                            "or 'dask'"),
    ({"execution": {"address": "tcp://127.0.0.1:8786"}}, "only used with task_runner: dask"),
    ({"execution": {"task_runner": "dask", "address": "localhost"}}, "execution.address: "
                                                                      "'localhost' — must match"),
    ({"execution": {"task_runner": "dask", "workers": 2}}, "execution.workers: 2 — unknown key"),
    ({"execution": {"plan_ahead": "maybe"}}, "execution.plan_ahead: 'maybe'"),
    ({"warm_start": "latest"}, "warm_start: 'latest' — allowed: 'previous' or a list"),
    ({"warm_start": ["a", 3]}, "warm_start: ['a', 3] — allowed: 'previous' or a list"),
])
def test_bad_execution_and_warm_start_fields(extra: dict, expected: str) -> None:
    with pytest.raises(SpecError) as err:
        validate_spec(spec("s", "sqlite:///x.db", **extra), check_objective=False)
    assert expected in str(err.value)


def test_valid_execution_and_warm_start_fields() -> None:
    s = validate_spec(spec("s", "sqlite:///x.db", warm_start=["a", "b"],
                           execution={"task_runner": "dask", "address": "tcp://10.0.0.1:8786"}),
                      check_objective=False)
    assert s.execution.address == "tcp://10.0.0.1:8786" and s.warm_start == ["a", "b"]
    assert validate_spec(spec("s", "sqlite:///x.db"), check_objective=False).warm_start is None


def _deploy_unreachable(tmp_path: Path, *schedule: str) -> subprocess.CompletedProcess[str]:
    """``amtune deploy`` of a small spec against a Prefect API where nothing listens."""
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec("s", f"sqlite:///{tmp_path}/m.db")))
    return subprocess.run(
        [sys.executable, "-m", "amtune.flows.cli", "deploy", str(path), *schedule],
        cwd=ROOT, env=child_env(PREFECT_API_URL="http://127.0.0.1:9/api"),
        capture_output=True, text=True, timeout=120)


def test_cli_rejects_a_bad_cron_before_contacting_anything(tmp_path: Path) -> None:
    proc = _deploy_unreachable(tmp_path, "--cron", "0 25 * * *")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().startswith("amtune: --cron: '0 25 * * *' — not a valid cron")
    assert "Traceback" not in proc.stderr


def test_cli_deploy_without_a_reachable_server_says_so(tmp_path: Path) -> None:
    proc = _deploy_unreachable(tmp_path, "--interval", "60")
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("amtune: cannot reach the Prefect server at "
                                  "http://127.0.0.1:9/api")
    assert "Traceback" not in proc.stderr


def test_what_dask_ships_to_its_workers_pickles() -> None:
    """prefect-dask pickles the running flow and each task by value (cloudpickle), with
    every module global their functions name; a lock among them breaks Dask runs."""
    import cloudpickle

    from amtune.flows.rounds import round_flow
    from amtune.tasks.propose import load_history, propose_batch
    from amtune.tasks.trial import run_trial

    for obj in (round_flow, run_trial, load_history, propose_batch):
        assert cloudpickle.loads(cloudpickle.dumps(obj)).name == obj.name
