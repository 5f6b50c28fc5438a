"""Security, end to end through real studies.

- command trials never go through a shell: hostile categorical values reach the
  trial as exactly one argv item each, and their shell syntax does nothing;
- specs are loaded with ``yaml.safe_load``: a ``!!python/...`` tag is refused (exit 2)
  and never executed;
- environment variables are never logged to MLflow, not even in artifacts;
- every server the docs and scripts start binds 127.0.0.1.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import cli_env

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = [
    "x; rm -rf ./precious",
    "--flag",
    "$(touch pwned-subst)",
    "`touch pwned-backtick`",
    "a b  c",
    "x && touch pwned-and | tee pwned-pipe",
]
SECRET_VARS = {
    "AMTUNE_TEST_SECRET": f"amtune-secret-{secrets.token_hex(8)}",
    "AWS_SECRET_ACCESS_KEY": f"aws-secret-{secrets.token_hex(8)}",
}
DUMP_ARGV = """\
import json, os, sys
from pathlib import Path
here = Path(__file__).resolve().parent
record = {"argv": sys.argv[1:], "saw_secret": "AMTUNE_TEST_SECRET" in os.environ}
with open(here / "argv.jsonl", "a") as f:
    f.write(json.dumps(record) + "\\n")
print("loss=" + str(len(sys.argv[1]) / 100))
"""


def cli(
    args: list[str],
    cwd: Path,
    prefect_api: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    env = cli_env(prefect_api, **(extra_env or {}))
    return subprocess.run(
        [sys.executable, "-m", "amtune.flows.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def argv_study(workdir: Path, command_tail: list[str]) -> Path:
    (workdir / "precious").mkdir(parents=True)
    (workdir / "precious" / "keep.txt").write_text("still here")
    (workdir / "dump_argv.py").write_text(DUMP_ARGV)
    spec = {
        "name": "hostile-argv",
        "objective": {
            "command": ["python", str(workdir / "dump_argv.py"), *command_tail],
            "metric": "loss",
            "metrics": [{"name": "loss", "regex": "loss=([0-9.]+)"}],
        },
        "parameters": {"mode": {"type": "categorical", "values": HOSTILE}},
        "strategy": {"name": "grid"},
        "budget": {"max_trials": len(HOSTILE), "max_parallel": 2},
        "tracking": {"uri": f"sqlite:///{workdir / 'mlflow.db'}"},
    }
    path = workdir / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture(scope="module")
def placeholder_study(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> Path:
    """One study whose command embeds the value in an item and passes it alone."""
    workdir = tmp_path_factory.mktemp("hostile-placeholder")
    spec = argv_study(workdir, ["--mode={mode}", "{mode}"])
    proc = cli(["run", str(spec)], workdir, prefect_api, SECRET_VARS)
    assert proc.returncode == 0, proc.stderr
    return workdir


def recorded_argv(workdir: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (workdir / "argv.jsonl").read_text().splitlines()]


def assert_no_shell_effects(workdir: Path) -> None:
    assert (workdir / "precious" / "keep.txt").read_text() == "still here"
    assert not list(workdir.rglob("pwned*"))


def test_placeholder_values_stay_single_argv_items(placeholder_study: Path) -> None:
    calls = recorded_argv(placeholder_study)
    assert sorted(tuple(c["argv"]) for c in calls) == sorted(  # type: ignore[arg-type]
        (f"--mode={v}", v) for v in HOSTILE
    )
    assert_no_shell_effects(placeholder_study)


def test_appended_values_stay_single_argv_items(tmp_path: Path, prefect_api: str) -> None:
    spec = argv_study(tmp_path, [])
    proc = cli(["run", str(spec)], tmp_path, prefect_api)
    assert proc.returncode == 0, proc.stderr
    calls = recorded_argv(tmp_path)
    assert sorted(tuple(c["argv"]) for c in calls) == sorted(  # type: ignore[arg-type]
        ("--mode", v) for v in HOSTILE
    )
    assert_no_shell_effects(tmp_path)


def test_hostile_values_are_logged_verbatim(placeholder_study: Path) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{placeholder_study / 'mlflow.db'}")
    exp = client.get_experiment_by_name("hostile-argv")
    runs = client.search_runs([exp.experiment_id], "tags.`amtune.trial` != ''")
    assert sorted(r.data.params["mode"] for r in runs) == sorted(HOSTILE)


def test_environment_is_never_logged(placeholder_study: Path) -> None:
    """The trials saw the secrets; no byte of MLflow's store or artifacts holds them."""
    assert all(c["saw_secret"] for c in recorded_argv(placeholder_study))
    scanned = 0
    for path in placeholder_study.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        scanned += 1
        for name, value in SECRET_VARS.items():
            assert value.encode() not in data, f"{name} leaked into {path.name}"
    assert scanned >= 3  # the database (and its WAL) and at least one artifact
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{placeholder_study / 'mlflow.db'}")
    exp = client.get_experiment_by_name("hostile-argv")
    runs = client.search_runs([exp.experiment_id])
    texts = [json.dumps([r.data.params, r.data.tags, r.data.metrics]) for r in runs]
    for run in runs:
        for art in _artifacts(client, run.info.run_id):
            texts.append(
                Path(client.download_artifacts(run.info.run_id, art)).read_text(errors="replace")
            )
    assert any("x; rm -rf ./precious" in t for t in texts)  # the scan does see logged values
    for value in SECRET_VARS.values():
        assert not any(value in t for t in texts)


def _artifacts(client: object, run_id: str, path: str | None = None) -> list[str]:
    out: list[str] = []
    for info in client.list_artifacts(run_id, path):  # type: ignore[attr-defined]
        out += _artifacts(client, run_id, info.path) if info.is_dir else [info.path]
    return out


@pytest.mark.parametrize("command", ["validate", "run"])
def test_python_yaml_tags_are_refused_not_executed(command: str, tmp_path: Path) -> None:
    target = tmp_path / "created-by-yaml"
    spec = tmp_path / "evil.yaml"
    spec.write_text(
        f"name: !!python/object/apply:os.mkdir [{json.dumps(str(target))}]\n"
        "objective: {function: json:dumps, metric: loss}\n"
        "parameters: {x: {type: float, low: 0.0, high: 1.0}}\n"
    )
    proc = cli([command, str(spec)], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "evil.yaml" in proc.stderr
    assert not target.exists()


SERVER_COMMAND = re.compile(r"\b(mlflow (server|ui)|prefect server start|uvicorn|http\.server)\b")
HOST_OPTION = re.compile(r"(--host[ =]|-h )(\S+)")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def test_servers_in_docs_and_scripts_bind_loopback() -> None:
    """Every server command in docs and scripts binds 127.0.0.1 (explicitly or by default)."""
    suffixes = {".md", ".sh", ".yaml", ".yml", ".py", ".toml", ".txt", ""}
    skip = {"tests", ".git", ".venv", "__pycache__", ".ruff_cache", ".pytest_cache"}
    commands = 0
    for path in ROOT.rglob("*"):
        if not path.is_file() or path.suffix not in suffixes or skip & set(path.parts):
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        except FileNotFoundError:  # removed since the walk listed it (a build or cache file)
            continue
        rel = path.relative_to(ROOT)
        for n, line in enumerate(text.splitlines(), 1):
            assert "0.0.0.0" not in line, f"{rel}:{n} binds all interfaces: {line.strip()}"
            if SERVER_COMMAND.search(line):
                commands += 1
                for match in HOST_OPTION.finditer(line):
                    host = match.group(2).strip("'\"")
                    assert host in LOOPBACK, f"{rel}:{n} binds {host}: {line.strip()}"
    assert commands >= 1  # the README at least says how to open the MLflow UI
