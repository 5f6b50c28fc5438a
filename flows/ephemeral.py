"""Settings for Prefect's ephemeral API, the server amtune starts when none is configured.

Prefect's task-run recorder writes every task-run event on its own by default. On
the ephemeral API's SQLite database those writes collide with the API's own, and
the loser waits in SQLite's busy handler: the next round's flow-run creation
stalled by ~2 s about every other round. Recorded in batches once a second, task
runs still show in the UI, a second later at most.

The values are defaults (a user's environment wins), they only reach a server this
process starts itself, and they are set before any flow runs: the ephemeral server
takes its environment when it starts.
"""

from __future__ import annotations

import os

EPHEMERAL_API_ENV = {
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_READ_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
}


def apply_defaults() -> None:
    for key, value in EPHEMERAL_API_ENV.items():
        os.environ.setdefault(key, value)
