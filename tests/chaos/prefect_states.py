"""Print the trial task runs of one study, read with Prefect's client, as JSON.

``python -m tests.chaos.prefect_states [STUDY]`` against the API the environment
names (``PREFECT_API_URL``, or the ephemeral API of ``PREFECT_HOME``). With a study
name, only that study's trials are listed: its ``amtune-study`` flow runs (one per
run, killed ones included), their ``round-<k>`` subflows, and their ``trial-NNNN``
task runs. A subprocess because Prefect reads its settings once per process.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterParentFlowRunId,
    TaskRunFilter,
    TaskRunFilterFlowRunId,
    TaskRunFilterName,
)

PAGE = 200


async def _all(read: Any, **kwargs: Any) -> list[Any]:
    out: list[Any] = []
    while True:
        page = await read(limit=PAGE, offset=len(out), **kwargs)
        out += page
        if len(page) < PAGE:
            return out


def _study_name(flow_run: Any) -> str | None:
    spec = flow_run.parameters.get("spec")
    return spec.get("name") if isinstance(spec, dict) else flow_run.name


async def trial_task_runs(study: str | None) -> list[dict[str, str | None]]:
    async with get_client() as client:
        task_filter = TaskRunFilter(name=TaskRunFilterName(like_="trial-"))
        if study is not None:
            studies = await _all(
                client.read_flow_runs,
                flow_filter=FlowFilter(name=FlowFilterName(any_=["amtune-study"])),
            )
            ids: list[UUID] = [r.id for r in studies if _study_name(r) == study]
            rounds = (
                await _all(
                    client.read_flow_runs,
                    flow_run_filter=FlowRunFilter(
                        parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=ids)
                    ),
                )
                if ids
                else []
            )
            if not rounds:
                return []
            task_filter.flow_run_id = TaskRunFilterFlowRunId(any_=[r.id for r in rounds])
        runs = await _all(client.read_task_runs, task_run_filter=task_filter)
    return [
        {
            "name": run.name,
            "state": run.state_type.value if run.state_type else None,
            "flow_run": str(run.flow_run_id),
            "created": run.created.isoformat() if run.created else None,
        }
        for run in runs
    ]


if __name__ == "__main__":
    print(json.dumps(asyncio.run(trial_task_runs(sys.argv[1] if len(sys.argv) > 1 else None))))
