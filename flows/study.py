"""The study flow: open (or resume) the study in MLflow, run rounds until done, summarise.

Nothing is kept between rounds but what MLflow holds, so a study killed at any
point is resumed by running it again: RUNNING trials left by the crash are closed
as KILLED (not counted), their processes ended, and their slots proposed again.
Every MLflow read and write goes through the study's ``StudyStore``.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import Flow
from prefect.states import Completed

from amtune.flows import defaults, schedule, summary
from amtune.flows.completion import Tally
from amtune.flows.loop import run_rounds
from amtune.flows.progress import Reporter
from amtune.flows.spec import SpecError, StudySpec
from amtune.flows.warm import warm_history
from amtune.strategies import Trial
from amtune.tasks.runners.process import end_process_group
from amtune.tasks.store import schema as S
from amtune.tasks.store.client import check_uri, sqlite_path
from amtune.tasks.store.lease import Heartbeat, Lease, LeaseHeld, held_message
from amtune.tasks.store.schema import TrialRecord, counted
from amtune.tasks.store.study import StudyStore


@dataclass
class StudyResult:
    study: str
    reason: str
    trials: int
    failed: int
    best_value: float | None
    best_params: dict[str, Any] | None
    parent_run_id: str
    experiment_id: str
    stopped: int = 0


def space_change(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """A one-line description of how a stored search space differs from the spec's."""
    added = [k for k in new if k not in old]
    removed = [k for k in old if k not in new]
    if added or removed:
        parts = [f"added {added}" if added else "", f"removed {removed}" if removed else ""]
        return "; ".join(p for p in parts if p)
    for k in new:
        if old[k] != new[k]:
            return (f"parameters.{k} changed from {json.dumps(old[k], sort_keys=True)} "
                    f"to {json.dumps(new[k], sort_keys=True)}")
    return None


def check_space(spec: StudySpec, stored: dict[str, Any] | None) -> None:
    change = None if stored is None else space_change(stored, spec.space.to_dict())
    if change is not None:
        raise SpecError(
            f"parameters: the search space of study {spec.name!r} changed ({change}) — "
            "a study keeps its space; use a new study name")


def make_store(spec: StudySpec) -> StudyStore:
    """The study's store; a URI that can never work is a SpecError (exit 2)."""
    problem = check_uri(spec.tracking.uri)
    if problem is not None:
        raise SpecError(problem)
    return StudyStore(uri=spec.tracking.uri, experiment=spec.experiment, study=spec.name,
                      outage_timeout_s=spec.tracking.outage_timeout_s,
                      space=spec.space.to_dict(), metric=spec.objective.metric)


def preflight(spec: StudySpec) -> None:
    """Read-only checks against an existing study, before any flow runs.

    A changed space (SpecError, exit 2) or a live runner holding the study
    (LeaseHeld, exit 1) is reported before a Prefect flow run exists, so a refused
    run leaves nothing behind; ``open_study`` still checks both for real. An
    unreachable store stops here too, after ``tracking.outage_timeout_s``.
    """
    store = make_store(spec)
    path = sqlite_path(spec.tracking.uri)
    if path is not None and not path.exists():
        return
    run = store.find()
    if run is not None:
        check_space(spec, run.space)
        store.parent_id = run.run_id
        current = Lease.loads(store.read_lease())
        if current is not None and not current.is_stale():
            raise LeaseHeld(held_message(spec.name, current))


def open_study(spec: StudySpec, store: StudyStore
               ) -> tuple[list[TrialRecord], tuple[Trial, ...], Heartbeat]:
    """Find or create the parent run, take its lease, close what a crash left running.

    The lease is taken before RUNNING trials are closed: they may belong to a live runner.
    """
    tags = {S.STRATEGY: spec.strategy.name, S.METRIC: spec.objective.metric,
            S.DIRECTION: spec.objective.direction}
    run, resumed = store.open(tags, spec.model_dump(mode="json"))
    if resumed:
        check_space(spec, run.space)
    # Everything that can refuse the spec (warm-start studies) comes before the lease,
    # so a refused study leaves no lease behind.
    prior = tuple(warm_history(store, run, spec.warm_start, spec.space,
                               spec.objective.metric, spec.sign))
    heartbeat = store.take_lease()
    records = store.history()
    stale = [r for r in records if r.status == "running"]
    for r in store.close_stale(stale, "killed: left running by an interrupted study"):
        proc = store.process_of(r.run_id)
        if proc is not None:  # a command trial: its group outlived its runner
            end_process_group(proc.pgid, proc.host, proc.token or None)
    if resumed and run.status != "RUNNING":
        store.reopen()
    return [r for r in records if r.status != "killed"], prior, heartbeat


def _run_name() -> str:
    """The study's name, so the Prefect UI lists studies by name (a spec path: its stem)."""
    from prefect.runtime import flow_run

    spec = flow_run.parameters.get("spec")
    if isinstance(spec, dict) and isinstance(spec.get("name"), str):
        return spec["name"]
    return Path(str(spec)).stem or "amtune-study"


def _study(spec: dict[str, Any] | str, max_trials: int | None = None,
           tracking_uri: str | None = None, reporter: Reporter | None = None) -> StudyResult:
    """Run (or resume) one study described by a spec dict or a spec file's path.

    Run by a deployment, the study is the scheduled re-tune of the spec
    (``amtune.flows.schedule``). ``reporter`` shows progress (the CLI passes one)."""
    s = schedule.resolve(spec).with_overrides(max_trials=max_trials, tracking_uri=tracking_uri)
    store = make_store(s)
    records, prior, heartbeat = open_study(s, store)
    try:
        with heartbeat:
            reason, records = _run(s, store, records, prior, heartbeat, reporter)
    except BaseException:
        # Stopped (outage, Ctrl-C, a bug): give the study back so a rerun in this
        # process, or another runner, can resume it at once. Best effort: the
        # tracking store may be what failed; a stale lease is taken over anyway.
        with contextlib.suppress(Exception):
            store.give_back(heartbeat.lease)
        raise
    best = summary.finish(s, store, records, reason)
    store.end()
    store.give_back(heartbeat.lease)
    done = counted(records)
    result = StudyResult(
        study=s.name, reason=reason, trials=len(done),
        failed=sum(r.status == "failed" for r in done),
        stopped=sum(r.status == "stopped" for r in done),
        best_value=best.value if best else None, best_params=best.params if best else None,
        parent_run_id=str(store.parent_id), experiment_id=str(store.experiment_id))
    # Completed with a message (failed trials, why it stopped), so a study whose trials
    # failed is not just another green run in Prefect; callers still get the result.
    message = summary.state_message(records, reason, s.objective.metric, s.sign)
    return Completed(message=message, data=result)  # type: ignore[return-value]


def _run(s: StudySpec, store: StudyStore, records: list[TrialRecord], prior: tuple[Trial, ...],
         heartbeat: Heartbeat, reporter: Reporter | None) -> tuple[str, list[TrialRecord]]:
    if reporter is not None:
        reporter.total = s.budget.max_trials
        reporter.begin(records)
    art = summary.start_progress(s.name)

    def show(tally: Tally) -> None:
        summary.update_progress(art, tally, s.budget.max_trials, s.objective.metric)

    reason, records = run_rounds(s, store, records, prior, heartbeat, on_round=show,
                                 on_trial=reporter.trial if reporter else None)
    show(Tally(s.sign, records))
    return reason, records


class StudyFlow(Flow[..., StudyResult]):
    """The study flow; called from Python, it brings amtune's quiet defaults along."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with defaults.python_defaults():
            return super().__call__(*args, **kwargs)


study_flow = StudyFlow(_study, name="amtune-study", flow_run_name=_run_name,
                       persist_result=False, log_prints=False, validate_parameters=False)
