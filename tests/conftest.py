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
# pytest-xdist 3.8 applies a group by rewriting ``item._nodeid``, which pytest 9.2 no
# longer reads (its node id is ``item._id``); pytest is pinned below 9.2 for that, and
# ``pytest_collection_finish`` below stops the run if the groups are ever ignored again.
SHARED_SERVER_GROUPS = {"prefect_srv": "scale-prefect", "mlflow_srv": "scale-mlflow",
                        "dask_srv": "scale-dask", "postgres_srv": "postgres"}

# The longest tests and groups (minutes on a loaded 2-core machine), longest first. They
# are handed to the workers before everything else, so the suite ends on short tests
# instead of one worker running a long one while the others sit idle. A node id prefix
# or a group name; what is not listed keeps its collection order, after these.
RUN_FIRST = (
    "scale-prefect",
    "postgres",
    "tests/reliability/test_outage.py",
    "tests/chaos/test_chaos.py",
    "tests/reliability/test_single_runner.py",
    "tests/flows/test_ux.py::test_ctrl_c_on_the_ephemeral_api_exits_then_resumes",
    "tests/flows/test_cli.py::test_resume_after_sigkill",
    "tests/flows/test_views.py",
    "scale-mlflow",
    "tests/flows/test_packaging.py",
)


def xdist_group(item: pytest.Item) -> str | None:
    """The group an item runs in under ``--dist loadgroup``, or None to run anywhere."""
    names: list[str] = list(getattr(item, "fixturenames", ()))
    module = item.nodeid.split("::", 1)[0]
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return None
    for fixture, group in SHARED_SERVER_GROUPS.items():
        defs = info.name2fixturedefs.get(fixture) if fixture in names else None
        if defs and defs[-1].scope == "session":  # not a module's own fixture of that name
            return group
    for name in names:
        defs = info.name2fixturedefs.get(name)
        if defs and defs[-1].scope == "module":
            return module
    return None


def run_first_rank(nodeid: str, group: str | None) -> int:
    for rank, key in enumerate(RUN_FIRST):
        if group == key or nodeid.startswith(key):
            return rank
    return len(RUN_FIRST)


def pytest_configure(config: pytest.Config) -> None:
    # xdist orders its work by the number of tests in a group; the order given by
    # ``pytest_collection_modifyitems`` below is the one wanted.
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


@pytest.hookimpl(tryfirst=True)  # before xdist reads the marks off the items
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    groups: dict[str, str | None] = {}
    for item in items:
        group = xdist_group(item)
        groups[item.nodeid] = group
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
    # A group runs where its first test is queued: it is ranked by its best-ranked test.
    rank: dict[str, int] = {}
    for item in items:
        scope = groups[item.nodeid] or item.nodeid
        rank[scope] = min(rank.get(scope, len(RUN_FIRST)), run_first_rank(item.nodeid,
                                                                           groups[item.nodeid]))
    items.sort(key=lambda item: rank[groups[item.nodeid] or item.nodeid])


LOST_GROUPS = pytest.StashKey[str]()


def pytest_collection_finish(session: pytest.Session) -> None:
    """In an xdist worker, check that xdist put each grouped test's group in its id.

    A group that is not in the id is not honoured: its tests spread over the workers
    and each worker starts the group's servers and module fixtures again. An error
    raised here would crash the worker without its message, so every test fails with
    it instead (``groups_are_honoured``).
    """
    config = session.config
    if not hasattr(config, "workerinput") or not config.getvalue("loadgroup"):
        return
    lost = [item.nodeid for item in session.items
            if item.get_closest_marker("xdist_group") and "@" not in item.nodeid]
    if lost:
        config.stash[LOST_GROUPS] = (
            f"pytest-xdist did not apply the xdist_group of {len(lost)} tests (first: "
            f"{lost[0]}): this pytest/pytest-xdist pair ignores --dist loadgroup")


@pytest.fixture(scope="session", autouse=True)
def groups_are_honoured(request: pytest.FixtureRequest) -> None:
    lost = request.config.stash.get(LOST_GROUPS, None)
    if lost is not None:
        pytest.fail(lost, pytrace=False)


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
