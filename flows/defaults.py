"""amtune's quiet, offline defaults for Prefect and MLflow, for the CLI and for Python.

The CLI sets them in the environment before Prefect is imported. A study started
from Python (``study_flow(spec=...)``) gets them when it is called, not when amtune
is imported: the environment defaults reach the ephemeral API server that the first
flow run starts, and Prefect's console handlers are turned down to warnings for the
length of the call. A user's own environment wins in both cases.

Prefect's task-run recorder writes every task-run event on its own by default. On
the ephemeral API's SQLite database those writes collide with the API's own, and
the loser waits in SQLite's busy handler: the next round's flow-run creation
stalled by ~2 s about every other round. Recorded in batches once a second, task
runs still show in the UI, a second later at most.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

EPHEMERAL_API_ENV = {
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_READ_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
}

# Telemetry off, no log noise from servers and clients amtune starts itself.
OFFLINE_ENV = {
    # The ephemeral API runs in this process; its services log tracebacks on Ctrl-C.
    "PREFECT_SERVER_LOGGING_LEVEL": "CRITICAL",
    "PREFECT_INTERNAL_LOGGING_LEVEL": "CRITICAL",  # event-delivery errors after a Ctrl-C
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
    "DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    # The ephemeral API does not check CSRF tokens; fetching one costs a request per client.
    "PREFECT_CLIENT_CSRF_SUPPORT_ENABLED": "false",
    **EPHEMERAL_API_ENV,
    "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
    "MLFLOW_LOGGING_LEVEL": "WARNING",  # no schema-migration chatter on a new database
    "GIT_PYTHON_REFRESH": "quiet",
}

# The CLI: Prefect's own log lines off (set PREFECT_LOGGING_LEVEL yourself to see them).
QUIET_ENV = {
    **OFFLINE_ENV,
    "PREFECT_LOGGING_LEVEL": "CRITICAL",
    "PREFECT_LOGGING_TO_API_ENABLED": "false",
}


def apply(env: dict[str, str] = QUIET_ENV) -> None:
    for key, value in env.items():
        os.environ.setdefault(key, value)


@contextlib.contextmanager
def quiet_console() -> Iterator[None]:
    """Prefect's console handlers at WARNING while a study runs from Python.

    Only when the user set no Prefect logging level of their own; the handlers'
    previous levels come back afterwards. Nothing changes for the API handler.
    """
    apply(OFFLINE_ENV)
    if "PREFECT_LOGGING_LEVEL" in os.environ or "PREFECT_LOGGING_SETTINGS_PATH" in os.environ:
        yield
        return
    from prefect.logging.handlers import PrefectConsoleHandler

    names = ("prefect", "prefect.flow_runs", "prefect.task_runs", "prefect.workers")
    handlers = {h for n in names for h in logging.getLogger(n).handlers
                if isinstance(h, PrefectConsoleHandler)}
    before = {h: h.level for h in handlers}
    for h in handlers:
        h.setLevel(max(h.level, logging.WARNING))
    try:
        yield
    finally:
        for h, level in before.items():
            h.setLevel(level)
