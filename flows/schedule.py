"""Which study a flow run is: the spec's own, or a scheduled re-tune of it.

A deployment of a spec runs again and again (every night, say). Each run is its
own study, named after the spec and the run's *scheduled* time, in the spec's
experiment, so re-tunes sit side by side in the MLflow UI and each one can be
warm-started from the one before. The scheduled time, not the start time, is
used: a retried or late run of the same schedule slot resumes the same study
instead of starting a new one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from amtune.flows.spec import StudySpec, load_spec, validate_spec


def scheduled_name(base: str, when: datetime) -> str:
    """``<base>-YYYYmmddTHHMMSSZ``: sortable, unique per schedule slot, a valid study name."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return f"{base}-{when.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def scheduled_slot() -> datetime | None:
    """The scheduled start time of the deployment run we are in, or None outside one."""
    from prefect.runtime import deployment, flow_run

    if deployment.id is None:
        return None
    when = flow_run.scheduled_start_time
    return datetime.fromisoformat(str(when)) if not isinstance(when, datetime) else when


def as_scheduled(spec: StudySpec, when: datetime) -> StudySpec:
    """The spec of one scheduled run: renamed, experiment pinned to the spec's."""
    data = spec.model_dump(mode="json")
    data["name"] = scheduled_name(spec.name, when)
    data["tracking"]["experiment"] = spec.experiment
    return validate_spec(data, check_objective=False)


def resolve(spec: dict[str, Any] | str | Path) -> StudySpec:
    """The study this flow run executes, from the flow's ``spec`` parameter: a dict, or
    a path (relative to the working directory) as deployments pass it."""
    s = load_spec(spec) if isinstance(spec, str | Path) else validate_spec(spec)
    when = scheduled_slot()
    return s if when is None else as_scheduled(s, when)
