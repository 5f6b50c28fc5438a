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
    # With a tracking server, MLflow prints two "View run" lines per ended run (and reads
    # the run back to do it): 2 lines per trial on the terminal; amtune prints one link.
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    "GIT_PYTHON_REFRESH": "quiet",
}

# The CLI: run logs (trial results, failures, retries, rounds) reach the Prefect API at
# INFO, so its UI shows them; the terminal shows only critical lines, as the live line
# already says what a failed trial's traceback would (set PREFECT_LOGGING_LEVEL yourself
# to see Prefect's lines there: the CLI then leaves the console handler alone).
CONSOLE_ENV = {"PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "CRITICAL"}
QUIET_ENV = {
    **OFFLINE_ENV,
    "PREFECT_LOGGING_LEVEL": "INFO",
    **CONSOLE_ENV,
}


def apply(env: dict[str, str] = QUIET_ENV) -> None:
    for key, value in env.items():
        os.environ.setdefault(key, value)


@contextlib.contextmanager
def python_defaults() -> Iterator[None]:
    """The offline defaults while a study runs from Python, and a quiet console.

    Prefect read its environment when it was imported, so the defaults go in as
    settings for the length of the call (the ephemeral API server started meanwhile
    takes them along) and into the environment (MLflow reads it at run time).
    Without a Prefect logging level of the user's own, Prefect's console handlers
    are turned down to warnings, and stay so: the ephemeral server logs its shutdown
    when the interpreter exits.
    """
    import prefect.settings as ps
    from prefect.settings import temporary_settings

    updates = {getattr(ps, k): v for k, v in OFFLINE_ENV.items()
               if k.startswith("PREFECT_") and k not in os.environ and hasattr(ps, k)}
    if "MLFLOW_LOGGING_LEVEL" not in os.environ:  # MLflow set its level at import
        logging.getLogger("mlflow").setLevel(logging.WARNING)
    apply(OFFLINE_ENV)
    if not ({"PREFECT_LOGGING_LEVEL", "PREFECT_LOGGING_SETTINGS_PATH"} & set(os.environ)):
        _quiet_console()
    with temporary_settings(updates=updates):
        yield


def _quiet_console() -> None:
    from prefect.logging.handlers import PrefectConsoleHandler

    names = ("", "prefect", "prefect.flow_runs", "prefect.task_runs")
    for handler in {h for n in names for h in logging.getLogger(n).handlers}:
        if isinstance(handler, PrefectConsoleHandler):
            handler.setLevel(max(handler.level, logging.WARNING))
