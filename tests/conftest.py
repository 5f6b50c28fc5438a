"""Shared test environment: real Prefect and real MLflow, isolated per session and test.

- PREFECT_HOME is a fresh temp dir for the whole session (set before Prefect is
  imported), with telemetry and log noise off.
- ``prefect_api`` starts ONE Prefect API server (Prefect's own ephemeral server
  process) for the session; in-process flows and ``amtune`` subprocesses both use
  it, so no test pays the server start-up twice.
- ``tracking_uri`` is a per-test SQLite MLflow store.
- ``amtune`` runs the CLI in a subprocess against both (``python -m amtune.flows.cli``).

Under pytest-xdist every worker is its own process, so each has its own PREFECT_HOME,
Prefect API server and temp dirs. Tests that share an expensive fixture (the scale
servers, PostgreSQL, a module-scoped fixture) are sent to one worker together
(``--dist loadgroup``), so that fixture still starts once.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_HOME = tempfile.mkdtemp(prefix="amtune-test-prefect-")
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
os.environ["PREFECT_HOME"] = _HOME
# The CLI's defaults (telemetry off, batched task-run recording in the ephemeral API,
# ...), with warnings still logged and a longer server start-up for loaded machines.
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
from amtune.flows.cli import QUIET_ENV  # noqa: E402  (Prefect is not imported by it)

for _k, _v in QUIET_ENV.items():
    os.environ.setdefault(_k, _v)
assert "prefect" not in sys.modules, "Prefect must be imported after PREFECT_HOME is set"


# Session fixtures that start servers, and the xdist group of the tests that use them.
SHARED_SERVER_GROUPS = {"services": "scale-services", "postgres_srv": "postgres"}


def xdist_group(item: pytest.Item) -> str | None:
    """The group an item runs in under ``--dist loadgroup``, or None to run anywhere."""
    names: list[str] = list(getattr(item, "fixturenames", ()))
    for fixture, group in SHARED_SERVER_GROUPS.items():
        if fixture in names:
            return group
    module = item.nodeid.split("::", 1)[0]
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return None
    for name in names:
        defs = info.name2fixturedefs.get(name)
        if defs and defs[-1].scope == "module":
            return module
    return None


@pytest.hookimpl(tryfirst=True)  # before xdist reads the marks off the items
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        group = xdist_group(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """The URL of a Prefect API shared by the whole session (in-process and subprocesses)."""
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from tests.servers import free_port

    # A port the OS picks, not Prefect's default draw from 8000-8999: that range is
    # shared with every ephemeral server an ``amtune`` subprocess starts, on any worker.
    server = SubprocessASGIServer(port=free_port())
    server.start(timeout=180)
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            yield server.api_url
    finally:
        server.stop()


@pytest.fixture
def tracking_uri(tmp_path: Path) -> str:
    """A fresh MLflow SQLite store for one test."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def cli_env(prefect_api: str | None = None, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    if prefect_api is not None:
        env["PREFECT_API_URL"] = prefect_api
    env.update(extra)
    return env


Runner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def amtune(tmp_path: Path) -> Runner:
    """Run ``amtune ARGS`` in a subprocess (cwd: the test's tmp dir unless given).

    Pass ``prefect_api=<url>`` to use the session's Prefect server; without it the
    subprocess never needs Prefect (validate, bad specs, results).
    """

    def run(*args: str, cwd: Path | None = None, prefect_api: str | None = None,
            timeout: float = 240, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "amtune.flows.cli", *args], cwd=cwd or tmp_path,
            env=cli_env(prefect_api, **env), capture_output=True, text=True, timeout=timeout)

    return run
