"""Every kind of bad spec: exit 2, one short line naming the field, no traceback, no writes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from amtune.flows.cli import app
from amtune.flows.tracking_uri import check_tracking_uri
from tests.conftest import Runner

GOOD = {
    "name": "ok",
    "objective": {"function": "tests.flows.objectives:loss_only", "metric": "loss"},
    "parameters": {"x": {"type": "float", "low": -5.0, "high": 5.0},
                   "y": {"type": "int", "low": 0, "high": 3},
                   "kind": {"type": "categorical", "values": ["a", "b"]}},
    "strategy": {"name": "random"},
    "budget": {"max_trials": 3, "max_parallel": 1},
}
CMD = {"command": ["python", "-c", "print('v=1')"], "metric": "v",
       "metrics": [{"name": "v", "regex": "v=([0-9]+)"}]}


def patched(path: str, value: object) -> dict:
    """GOOD with the value at a dotted path replaced (None deletes the key)."""
    data = yaml.safe_load(yaml.safe_dump(GOOD, sort_keys=False))
    *parents, last = path.split(".")
    node = data
    for p in parents:
        node = node.setdefault(p, {})
    if value is None:
        node.pop(last, None)
    else:
        node[last] = value
    return data


CASES: list[tuple[str, object, str]] = [
    # (id, spec dict or raw YAML text, expected field path in the message)
    ("broken-yaml", "name: [unclosed\nobjective: {", "spec"),
    ("not-a-mapping", "- just\n- a list\n", "spec"),
    ("unknown-key", patched("colour", "blue"), "colour"),
    ("unknown-nested-key", patched("budget.max_trails", 3), "budget.max_trails"),
    ("missing-name", patched("name", None), "name"),
    ("bad-name", patched("name", "has spaces!"), "name"),
    ("missing-metric", patched("objective.metric", None), "objective.metric"),
    ("both-kinds", patched("objective.command", ["python", "x.py"]), "objective"),
    ("wrong-type", patched("budget.max_trials", "many"), "budget.max_trials"),
    ("max-parallel-0", patched("budget.max_parallel", 0), "budget.max_parallel"),
    ("negative-retries", patched("trial.retries", -1), "trial.retries"),
    ("bad-direction", patched("objective.direction", "up"), "objective.direction"),
    ("empty-space", patched("parameters", {}), "parameters"),
    ("low-ge-high", patched("parameters.x", {"type": "float", "low": 2, "high": 1}),
     "parameters.x.low"),
    ("log-low-le-0", patched("parameters.x", {"type": "float", "low": 0, "high": 1,
                                              "log": True}), "parameters.x.low"),
    ("unknown-type", patched("parameters.x", {"type": "complex", "low": 0, "high": 1}),
     "parameters.x.type"),
    ("unknown-strategy", patched("strategy.name", "annealing"), "strategy.name"),
    ("unknown-option", patched("strategy.options", {"temperature": 3}),
     "strategy.options.temperature"),
    ("grid-continuous", patched("strategy.name", "grid"), "parameters.x"),
    ("no-module", patched("objective.function", "nowhere.at_all:train"),
     "objective.function"),
    ("no-function", patched("objective.function", "tests.flows.objectives:nope"),
     "objective.function"),
    ("regex-does-not-compile", patched("objective", {**CMD, "metrics": [
        {"name": "v", "regex": "v=([0-9]+"}]}), "objective.metrics"),
    ("regex-without-group", patched("objective", {**CMD, "metrics": [
        {"name": "v", "regex": "v=[0-9]+"}]}), "objective.metrics"),
    ("command-not-found", patched("objective", {**CMD, "command": ["no-such-program-xyz"]}),
     "objective.command"),
    ("metric-not-defined", patched("objective", {**CMD, "metric": "accuracy"}),
     "objective.metric"),
    ("regex-two-groups", patched("objective", {**CMD, "metrics": [
        {"name": "v", "regex": "v=([0-9])\\.([0-9]+)"}]}), "objective.metrics[0].regex"),
    ("parameter-name-with-space", patched("parameters.learning rate",
                                          {"type": "float", "low": 0, "high": 1}),
     "parameters: 'learning rate'"),
    ("categorical-text-collision", patched("parameters.kind.values", [1, "1"]),
     "parameters.kind.values: '1'"),
    ("tracking-uri-missing-colon", patched("tracking.uri", "mysql//oops"),
     "tracking.uri: 'mysql//oops'"),
    ("tracking-uri-unknown-scheme", patched("tracking.uri", "bogus://x"),
     "tracking.uri: 'bogus://x'"),
]


@pytest.mark.parametrize(("case", "content", "field"), CASES, ids=[c[0] for c in CASES])
def test_bad_spec_exits_2_with_one_clear_line(case: str, content: object, field: str,
                                              tmp_path: Path) -> None:
    path = tmp_path / f"{case}.yaml"
    text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"amtune: {field}"), lines[0]
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_missing_file_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert result.stderr.startswith("amtune: spec:") and "cannot read" in result.stderr


def test_good_spec_validates(tmp_path: Path) -> None:
    path = tmp_path / "good.yaml"
    path.write_text(yaml.safe_dump(GOOD, sort_keys=False), encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.stderr
    assert "valid study 'ok'" in result.stdout


def test_run_of_bad_spec_writes_nothing(amtune: Runner, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(patched("budget.max_parallel", 0)), encoding="utf-8")
    r = amtune("run", str(path))
    assert r.returncode == 2
    assert r.stderr.strip().startswith("amtune: budget.max_parallel: 0")
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "mlflow.db").exists()


def test_run_refuses_a_bad_tracking_uri_option(amtune: Runner, tmp_path: Path) -> None:
    """``--tracking-uri`` goes through the same check as the spec's tracking.uri."""
    path = tmp_path / "good.yaml"
    path.write_text(yaml.safe_dump(GOOD, sort_keys=False), encoding="utf-8")
    r = amtune("run", str(path), "--tracking-uri", "bogus://x")
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("amtune: tracking.uri: 'bogus://x' — "), lines
    assert "unknown scheme 'bogus'" in lines[0] and "sqlite:///" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.yaml"]  # nothing created


@pytest.mark.parametrize("uri", [
    "sqlite:///mlflow.db", "sqlite:////abs/mlflow.db", "sqlite+pysqlite:///m.db", "mlruns",
    "./mlruns", "/abs/mlruns", "file:///abs/mlruns", "http://127.0.0.1:5000",
    "https://mlflow.example.com", "postgresql://u:p@db:5432/mlflow",
    "postgresql+psycopg2://u@db/mlflow", "mysql://u@db/mlflow", "mssql+pyodbc://u@db/mlflow",
    "databricks", "databricks://profile", "databricks-uc", "uc"])
def test_uris_mlflow_opens_are_accepted(uri: str) -> None:
    check_tracking_uri(uri)


@pytest.mark.parametrize(("uri", "problem"), [
    ("mysql//oops", "empty segment"), ("bogus://x", "unknown scheme 'bogus'"),
    ("postgres://u@db/x", "unknown scheme 'postgres'"), ("mysql:oops", "needs 'mysql://'"),
    ("mysql://", "names no database"), ("sqlite://", "needs a database file"),
    ("sqlite://mlflow.db", "needs a database file"), ("http://", "names no host"),
    ("http:localhost", "names no host"), ("file://", "names no path"), ("", "empty"),
    (" sqlite:///m.db", "spaces")])
def test_malformed_uris_are_refused_naming_field_value_and_what_is_allowed(
        uri: str, problem: str) -> None:
    with pytest.raises(ValueError) as info:
        check_tracking_uri(uri)
    message = str(info.value)
    assert message.startswith(f"tracking.uri: {uri!r} — "), message
    assert problem in message and "allowed: a local path" in message


def test_the_known_schemes_are_mlflows() -> None:
    """Our list against MLflow's own tracking-store registry, so an MLflow upgrade shows up."""
    from mlflow.tracking._tracking_service.utils import _tracking_store_registry

    from amtune.flows import tracking_uri as t

    registered = set(_tracking_store_registry._registry) - t._plugin_schemes()
    assert registered == t.FILE_SCHEMES | t.HTTP_SCHEMES | t.DATABASE_SCHEMES | \
        t.DATABRICKS_SCHEMES
    for uri in ("bogus://x", "postgres://u@db/x"):  # what we call unknown, MLflow cannot open
        with pytest.raises(Exception, match=r"(?i)unsupported|invalid"):
            _tracking_store_registry.get_store_builder(uri)


def test_changed_space_is_an_error_naming_the_change(amtune: Runner, prefect_api: str,
                                                     tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**GOOD, "budget": {"max_trials": 1}}, sort_keys=False))
    assert amtune("run", str(path), "--tracking-uri", uri, prefect_api=prefect_api
                  ).returncode == 0
    changed = patched("parameters.x", {"type": "float", "low": -5.0, "high": 6.0})
    path.write_text(yaml.safe_dump(changed, sort_keys=False))
    r = amtune("run", str(path), "--tracking-uri", uri, prefect_api=prefect_api)
    assert r.returncode == 2, r.stderr
    assert "parameters" in r.stderr and "parameters.x changed" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_sqlite_path_that_cannot_open_exits_2(amtune: Runner, prefect_api: str,
                                       tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(GOOD, sort_keys=False))
    (tmp_path / "a-file").write_text("not a directory")
    uri = f"sqlite:///{tmp_path / 'a-file' / 'mlflow.db'}"
    r = amtune("run", str(path), "--tracking-uri", uri, prefect_api=prefect_api,
               PREFECT_LOGGING_LEVEL="CRITICAL")
    # A path that can never open is bad input, refused at once (not retried as an outage).
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("amtune: tracking.uri: "), r.stderr
    assert "does not exist" in lines[0]
