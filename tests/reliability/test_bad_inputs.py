"""Every malformed spec in tests/data/bad_specs is refused the same careful way.

For ``amtune validate`` and ``amtune run`` alike: exit code 2, one short message on
stderr naming the field, the value and what is allowed (fragments listed in
``expected.yaml``), no traceback, and nothing written: no database, no run. The CLI runs as a
real subprocess, as a user would start it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "data" / "bad_specs"
EXPECTED: dict[str, list[str | list[str]]] = yaml.safe_load((CORPUS / "expected.yaml").read_text())
SPECS = sorted(EXPECTED)
COMMANDS = ("validate", "run")
MAX_MESSAGE_LINES = 2
MAX_MESSAGE_CHARS = 500
CALL_TIMEOUT_S = 90
# All CLI calls run in one fixture (a few at a time); allow for a slow shared machine.
pytestmark = pytest.mark.timeout(1200)


@dataclass
class Result:
    returncode: int
    stderr: str
    workdir: Path


def cli_env(tmp: Path) -> dict[str, str]:
    """A clean environment: this checkout importable, private Prefect and MLflow state."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    env["PYTHONPATH"] = str(ROOT)
    env["PREFECT_HOME"] = str(tmp / "prefect-home")
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp / 'env-mlflow.db'}"
    env["NO_COLOR"] = "1"
    env["COLUMNS"] = "200"
    return env


def run_cli(command: str, spec: str, tmp: Path) -> Result:
    workdir = tmp / f"{command}-{spec.removesuffix('.yaml')}"
    workdir.mkdir()
    argv = [sys.executable, "-m", "amtune.flows.cli", command, str(CORPUS / spec)]
    if command == "run":
        argv += ["--tracking-uri", f"sqlite:///{workdir / 'mlflow.db'}"]
    proc = subprocess.Popen(
        argv,
        cwd=workdir,
        env=cli_env(tmp),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _, stderr = proc.communicate(timeout=CALL_TIMEOUT_S)
    except subprocess.TimeoutExpired:  # the spec was accepted and a study started
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return Result(-1, f"still running after {CALL_TIMEOUT_S} s: spec accepted?", workdir)
    return Result(proc.returncode, stderr, workdir)


@pytest.fixture(scope="module")
def corpus_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bad-specs")


@pytest.fixture(scope="module")
def results(corpus_tmp: Path) -> dict[tuple[str, str], Result]:
    """All CLI calls at once, a few in parallel: each one is mostly interpreter start-up."""
    tmp = corpus_tmp
    jobs = [(command, spec) for spec in SPECS for command in COMMANDS]
    with ThreadPoolExecutor(max_workers=3) as pool:
        done = pool.map(lambda job: run_cli(*job, tmp), jobs)
        return dict(zip(jobs, done, strict=True))


def test_corpus_is_large_and_complete() -> None:
    files = {p.name for p in CORPUS.glob("*.yaml")} - {"expected.yaml"}
    assert files == set(EXPECTED), "every bad spec needs an entry in expected.yaml"
    assert len(files) >= 30


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("spec", SPECS)
def test_bad_spec_is_refused(
    spec: str, command: str, results: dict[tuple[str, str], Result]
) -> None:
    result = results[(command, spec)]
    message = result.stderr.strip()
    assert result.returncode == 2, f"exit {result.returncode}, stderr:\n{result.stderr}"
    assert "Traceback" not in result.stderr
    lines = [line for line in message.splitlines() if line.strip()]
    assert 1 <= len(lines) <= MAX_MESSAGE_LINES, f"not one short message:\n{message}"
    assert len(message) <= MAX_MESSAGE_CHARS, f"message too long:\n{message}"
    lowered = " ".join(message.split()).lower()
    for fragment in EXPECTED[spec]:
        options = [fragment] if isinstance(fragment, str) else fragment
        assert any(str(o).lower() in lowered for o in options), (
            f"{spec}: message lacks {' or '.join(map(repr, options))}:\n{message}"
        )
    # Refused before any store is opened: not even an empty database, a mlruns folder or
    # a folder named after a mistyped URI appears in the working directory.
    assert sorted(p.name for p in result.workdir.iterdir()) == []


def test_nothing_written_to_the_env_tracking_uri(
    results: dict[tuple[str, str], Result], corpus_tmp: Path
) -> None:
    """MLFLOW_TRACKING_URI pointed at one shared store for all calls; it is never opened."""
    assert len(results) == len(SPECS) * len(COMMANDS)
    assert all(r.returncode == 2 for r in results.values())
    assert not (corpus_tmp / "env-mlflow.db").exists()


@pytest.mark.parametrize("command", COMMANDS)
def test_missing_spec_file(command: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "amtune.flows.cli", command, "no-such-spec.yaml"],
        cwd=tmp_path,
        env=cli_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "no-such-spec.yaml" in proc.stderr
    assert "Traceback" not in proc.stderr
