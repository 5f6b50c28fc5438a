"""The study flow: open (or resume) the study in MLflow, run rounds until done, summarise.

Nothing is kept between rounds but what MLflow holds, so a study killed at any
point is resumed by running it again: RUNNING trials left by the crash are closed
as KILLED (not counted) and their slots proposed again.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from amtune.flows import ephemeral, progress, schedule, summary
from amtune.flows.completion import best_trial, stop_reason
from amtune.flows.execution import absolute_tracking_uri
from amtune.flows.rounds import run_round
from amtune.flows.spec import SpecError, StudySpec
from amtune.flows.warm import warm_history
from amtune.tasks.context import StudyHandle, counted
from amtune.tasks.propose import forget
from amtune.tasks.store import tracking
from amtune.tasks.store.lease import Heartbeat, Lease, LeaseHeld, acquire, held_message, release
from amtune.tasks.store.tracking import TrialRecord
from prefect import flow

ephemeral.apply_defaults()  # for studies run from Python too, not only by the CLI


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


def space_change(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """A one-line description of how a stored search space differs from the spec's."""
    added = [k for k in new if k not in old]
    removed = [k for k in old if k not in new]
    if added or removed:
        parts = [f"added {added}" if added else "", f"removed {removed}" if removed else ""]
        return "; ".join(p for p in parts if p)
    for k in new:
        if old[k] != new[k]:
            return f"parameters.{k} changed from {old[k]} to {new[k]}"
    return None


def check_space(spec: StudySpec, stored: dict[str, Any] | None) -> None:
    change = None if stored is None else space_change(stored, spec.space.to_dict())
    if change is not None:
        raise SpecError(
            f"parameters: the search space of study {spec.name!r} changed ({change}) — "
            "a study keeps its space; use a new study name")


def preflight(spec: StudySpec) -> None:
    """Read-only checks against an existing study, before any flow runs.

    A changed space (SpecError, exit 2) or a live runner holding the study
    (LeaseHeld, exit 1) is reported before a Prefect flow run exists, so a refused
    run leaves nothing behind; ``open_study`` still checks both for real.
    """
    path = tracking.sqlite_path(spec.tracking.uri)
    if path is not None and not path.exists():
        return
    exp_id = tracking.experiment_id(spec.tracking.uri, spec.experiment)
    run = tracking.find_study(spec.tracking.uri, spec.name, exp_id) if exp_id else None
    if run is not None:
        check_space(spec, tracking.stored_space(run))
        current = Lease.loads(tracking.read_lease(spec.tracking.uri, run.run_id))
        if current is not None and not current.is_stale():
            raise LeaseHeld(held_message(spec.name, current))


def open_study(spec: StudySpec) -> tuple[StudyHandle, list[TrialRecord], bool, Lease]:
    """Find or create the parent run and take its runner lease.

    Returns the handle, the history, whether it resumed and the lease. The lease is
    taken before RUNNING trials are closed: they may belong to a live runner.
    """
    uri, space = spec.tracking.uri, spec.space
    if spec.execution.task_runner == "dask":  # trials write from other processes
        uri = absolute_tracking_uri(uri)
    exp_id = tracking.ensure_experiment(uri, spec.experiment)
    run = tracking.find_study(uri, spec.name, exp_id)
    resumed = run is not None
    if run is None:
        run = tracking.create_study(
            uri, exp_id, spec.name, space,
            {"amtune.strategy": spec.strategy.name, "amtune.metric": spec.objective.metric,
             "amtune.direction": spec.objective.direction},
            spec.model_dump(mode="json"))
    else:
        check_space(spec, tracking.stored_space(run))
    # Everything that can refuse the spec (warm-start studies) comes before the lease,
    # so a refused study leaves no lease behind.
    prior = tuple(warm_history(uri, run, spec.warm_start, space, spec.objective.metric,
                               spec.sign))
    lease = acquire(spec.name, *_lease_io(uri, run.run_id))
    handle = StudyHandle(
        uri=uri, experiment_id=exp_id, parent_id=run.run_id, study=spec.name,
        space=space.to_dict(), metric=spec.objective.metric, sign=spec.sign,
        strategy=spec.strategy.name, strategy_options=dict(spec.strategy.options),
        seed=spec.seed, objective=spec.objective, retries=spec.trial.retries,
        retry_delay_s=spec.trial.retry_delay_s,
        retry_on=tuple(spec.trial.retry_on) if spec.trial.retry_on is not None else None,
        timeout_s=spec.trial.timeout_s, task_runner=spec.execution.task_runner,
        dask_address=spec.execution.address,
        prior=prior)
    forget(run.run_id)  # a previous run of this study in this process may have cached it
    records = tracking.read_trials(uri, run, space, spec.objective.metric)
    stale = [r for r in records if r.status == "running"]
    if stale:
        tracking.close_stale_trials(uri, stale, "killed: left running by an interrupted study")
        records = [r for r in records if r.status != "running"]
    if resumed and run.status != "RUNNING":
        tracking.reopen_study(uri, run.run_id)
    return handle, records, resumed, lease


def _lease_io(uri: str, run_id: str) -> tuple[Any, Any]:
    return partial(tracking.read_lease, uri, run_id), partial(tracking.write_lease, uri, run_id)


def _run_name() -> str:
    """The study's name, so the Prefect UI lists studies by name (a spec path: its stem)."""
    from prefect.runtime import flow_run

    spec = flow_run.parameters.get("spec")
    if isinstance(spec, dict) and isinstance(spec.get("name"), str):
        return spec["name"]
    return Path(str(spec)).stem or "amtune-study"


@flow(name="amtune-study", flow_run_name=_run_name, persist_result=False, log_prints=False)
def study_flow(spec: dict[str, Any] | str, max_trials: int | None = None,
               tracking_uri: str | None = None) -> StudyResult:
    """Run (or resume) one study described by a spec dict or a spec file's path.

    Run by a deployment, the study is the scheduled re-tune of the spec
    (``amtune.flows.schedule``)."""
    s = schedule.resolve(spec).with_overrides(max_trials=max_trials, tracking_uri=tracking_uri)
    tracking.set_outage_timeout(s.tracking.outage_timeout_s)
    handle, records, _, lease = open_study(s)
    heartbeat = Heartbeat(lease, *_lease_io(handle.uri, handle.parent_id))
    try:
        with heartbeat:
            reason, records = _run_rounds(s, handle, records, heartbeat)
    except BaseException:
        # Stopped (outage, Ctrl-C, a bug): give the study back so a rerun in this
        # process, or another runner, can resume it at once. Best effort: the
        # tracking store may be what failed; a stale lease is taken over anyway.
        with contextlib.suppress(Exception):
            release(heartbeat.lease, *_lease_io(handle.uri, handle.parent_id))
        raise
    best = summary.finish(handle, records, reason)
    tracking.end_study(handle.uri, handle.parent_id)
    release(heartbeat.lease, *_lease_io(handle.uri, handle.parent_id))
    done = counted(records)
    return StudyResult(
        study=s.name, reason=reason, trials=len(done),
        failed=sum(r.status == "failed" for r in done),
        best_value=best.value if best else None, best_params=best.params if best else None,
        parent_run_id=handle.parent_id, experiment_id=handle.experiment_id)


def _run_rounds(s: StudySpec, handle: StudyHandle, records: list[TrialRecord],
                heartbeat: Heartbeat) -> tuple[str, list[TrialRecord]]:
    """Rounds until a completion criterion holds; returns the reason and the history."""
    b = s.budget
    start = time.monotonic()
    k = max((r.round for r in records), default=-1) + 1
    rep = progress.current()
    if rep is not None:
        best = best_trial(records, s.sign)
        rep.total = b.max_trials
        rep.begin(len(counted(records)), sum(r.status == "failed" for r in records),
                  best.value if best else None)
    art = summary.start_progress(s.name)
    while True:
        heartbeat.check(s.name)  # another runner took the study over: stop, run nothing twice
        reason = stop_reason(records, sign=s.sign, max_trials=b.max_trials,
                             max_runtime_s=b.max_runtime_s, elapsed_s=time.monotonic() - start,
                             target=b.target, patience=b.patience,
                             max_failed_trials=b.max_failed_trials)
        if reason is not None:
            break
        n = min(b.max_parallel, b.max_trials - len(counted(records)))
        result = run_round(handle, k, n, b.max_parallel)
        records = [r for r in result.history if r.status != "running"]
        k += 1
        summary.update_progress(art, len(counted(records)), b.max_trials)
        if result.proposed == 0:
            reason = "space_exhausted"
            break
    return reason, records
