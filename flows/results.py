"""``amtune results``: a study's trials as MLflow holds them, best first."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from amtune.strategies import SearchSpace
from amtune.tasks.store import schema as S
from amtune.tasks.store.client import check_uri, sqlite_path
from amtune.tasks.store.schema import TrialRecord, counted, ranked
from amtune.tasks.store.study import StudyStore


@dataclass
class StudyResults:
    study: str
    metric: str
    sign: float
    reason: str | None
    status: str
    records: list[TrialRecord]
    experiment_id: str = ""
    parent_run_id: str = ""
    space: dict[str, Any] = field(default_factory=dict)
    strategy: str | None = None


def load_results(study: str, uri: str, outage_timeout_s: float = 30.0) -> StudyResults:
    path = sqlite_path(uri)
    if path is not None and not path.exists():
        raise LookupError(f"--tracking-uri: {uri!r} — no such database; run a study first")
    problem = check_uri(uri)
    if problem is not None:
        raise LookupError(problem.replace("tracking.uri", "--tracking-uri"))
    store = StudyStore(uri=uri, experiment="", study=study, outage_timeout_s=outage_timeout_s)
    run = store.find_study(study)
    if run is None:
        raise LookupError(f"study: {study!r} — no such study in {uri}")
    metric = run.tags.get(S.METRIC, "value")
    records = store.trials_of(run, SearchSpace.from_dict(run.space or {}), metric)
    return StudyResults(study, metric, run.sign, run.tags.get(S.COMPLETION), run.status,
                        records, run.experiment_id, run.run_id, run.space or {},
                        run.tags.get(S.STRATEGY))


def every_trial(data: StudyResults) -> list[TrialRecord]:
    """Every trial, best first: completed by value, then the others by number."""
    best = ranked(data.records, data.sign)
    ids = {r.run_id for r in best}
    return best + sorted((r for r in data.records if r.run_id not in ids),
                         key=lambda r: r.number)


def trial_json(r: TrialRecord) -> dict[str, Any]:
    return {"number": r.number, "round": r.round, "status": r.status, "value": r.value,
            "attempts": r.attempts, "params": r.params, "metrics": r.metrics,
            "duration_s": r.duration_s, "reason": r.reason, "run_id": r.run_id,
            "stopped_at_step": r.stopped_at}


def write_local_report(data: StudyResults, path: Path, uri: str) -> Path:
    """The study's report page, as the parent run carries it, written to ``path``."""
    from amtune.flows.report import mlflow_run_url, write_report
    from amtune.flows.views import runs_link, ui_base, view_key

    return write_report(path, data.records, study=data.study, metric=data.metric,
                        sign=data.sign, space=SearchSpace.from_dict(data.space),
                        reason=data.reason, strategy=data.strategy,
                        run_url=mlflow_run_url(ui_base(uri), data.experiment_id),
                        study_url=runs_link(uri, data.experiment_id, view_key(data.study)))


def render(data: StudyResults, *, top: int | None, as_json: bool) -> None:
    """A table of the best ``top`` (10) trials, or JSON of every trial (the best ``top``)."""
    best = ranked(data.records, data.sign)
    n = len(counted(data.records))
    failed = sum(r.status == "failed" for r in data.records)
    if as_json:
        trials = every_trial(data)[:top]
        print(json.dumps({
            "study": data.study, "metric": data.metric, "status": data.status,
            "reason": data.reason, "trials": n, "failed": failed,
            "killed": sum(r.status == "killed" for r in data.records),
            "experiment_id": data.experiment_id, "parent_run_id": data.parent_run_id,
            "best": ({"number": best[0].number, "value": best[0].value,
                      "params": best[0].params, "run_id": best[0].run_id} if best else None),
            "top": [trial_json(r) for r in trials]}, indent=2))
        return
    top = top or 10
    stopped = stopped_first(data)
    console = Console(soft_wrap=True)  # long lines wrap in the terminal, not at 80 columns
    console.print(f"study {data.study}: {n} trials ({failed} failed"
                  + (f", {len(stopped)} stopped early" if stopped else "")
                  + f"), status {data.status}"
                  + (f", stopped by {data.reason}" if data.reason else ""), highlight=False)
    if not best:
        reasons = Counter(r.reason or "unknown" for r in data.records if r.status == "failed")
        console.print("no completed trial"
                      + "".join(f"\n  {v}x {k}" for k, v in reasons.most_common(5)),
                      highlight=False, markup=False)
    else:
        console.print(_table(data.metric, best[:top], step=False))
    if stopped:
        more = len(stopped) - top
        console.print(f"stopped early, furthest first{f' ({more} more)' if more > 0 else ''}:",
                      highlight=False)
        console.print(_table(data.metric, stopped[:top], step=True))


def stopped_first(data: StudyResults) -> list[TrialRecord]:
    """Stopped trials, furthest first (then best last value, then number)."""
    inf = float("inf")
    return sorted((r for r in data.records if r.status == "stopped"),
                  key=lambda r: (-(r.stopped_at or 0),
                                 inf if r.value is None else data.sign * r.value, r.number))


def _table(metric: str, records: list[TrialRecord], *, step: bool) -> Table:
    """Completed trials (``step=False``) or stopped ones, with the step each stopped at
    and its value there."""
    names = list(records[0].params)
    table = Table("trial", "status", *(["step"] if step else []), metric, *names, "attempts")
    for r in records:
        value = "" if r.value is None else f"{r.value:.6g}"
        table.add_row(str(r.number), r.status,
                      *([str(r.stopped_at) if r.stopped_at is not None else ""] if step else []),
                      value, *(_cell(r.params.get(k, "")) for k in names), str(r.attempts))
    return table


def _cell(value: object) -> str:
    """Floats to 6 significant digits: the table shows, the CSV and JSON keep every digit."""
    return f"{value:.6g}" if isinstance(value, float) else str(value)
