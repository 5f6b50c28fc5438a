"""Print the trial task runs of the Prefect API under the current PREFECT_HOME as JSON.

Run as a subprocess (``python -m tests.chaos.prefect_states``) with ``PREFECT_HOME``
set to a study's home: Prefect reads its settings once per process, so each study's
API is read from a fresh interpreter.
"""

from __future__ import annotations

import asyncio
import json

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName
from prefect.client.schemas.sorting import TaskRunSort


async def trial_task_runs() -> list[dict[str, str | None]]:
    out: list[dict[str, str | None]] = []
    async with get_client() as client:
        offset = 0
        while True:
            page = await client.read_task_runs(
                task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_="trial-")),
                sort=TaskRunSort.EXPECTED_START_TIME_ASC,
                limit=200,
                offset=offset,
            )
            out += [
                {
                    "name": run.name,
                    "state": run.state_type.value if run.state_type else None,
                    "flow_run": str(run.flow_run_id),
                    "created": run.created.isoformat() if run.created else None,
                }
                for run in page
            ]
            if len(page) < 200:
                return out
            offset += 200


if __name__ == "__main__":
    print(json.dumps(asyncio.run(trial_task_runs())))
