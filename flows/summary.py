"""End-of-study outputs: on the parent run the trials CSV, the plots and the report page,
the best params as tags and the best value as a history; Prefect's table and progress
artifacts; the study's final state message."""

from __future__ import annotations

import csv
import io
import json
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect.artifacts import (
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from amtune.flows.completion import Tally
from amtune.flows.report import mlflow_run_url, study_files
from amtune.flows.spec import StudySpec
from amtune.flows.views import runs_link, share_view, ui_base
from amtune.tasks.store import schema as S
from amtune.tasks.store.schema import TrialRecord, best_trial, counted, ranked
from amtune.tasks.store.study import StudyStore


def trial_rows(records: list[TrialRecord]) -> list[dict[str, Any]]:
    """One row per trial: number, round, status, the step a stopped trial was stopped
    at, attempts, params, metrics, duration."""
    params = sorted({k for r in records for k in r.params})
    metrics = sorted({k for r in records for k in r.metrics})
    rows = []
    for r in sorted(records, key=lambda r: r.number):
        row: dict[str, Any] = {"number": r.number, "round": r.round, "status": r.status,
                               "stopped_at_step": r.stopped_at, "attempts": r.attempts,
                               "duration_s": r.duration_s, "reason": r.reason or ""}
        row.update({f"param.{k}": r.params.get(k) for k in params})
        row.update({f"metric.{k}": r.metrics.get(k) for k in metrics})
        rows.append(row)
    return rows


def trials_csv(records: list[TrialRecord]) -> str:
    rows = trial_rows(records)
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return buf.getvalue()


def top_table(records: list[TrialRecord], sign: float, k: int = 10,
              run_url: Callable[[str], str] | None = None) -> list[dict[str, Any]]:
    """The best ``k`` completed trials, each with a link to its MLflow run."""
    return [{"trial": r.number, "value": r.value, **r.params, "attempts": r.attempts,
             **({"mlflow": run_url(r.run_id)} if run_url else {})}
            for r in ranked(records, sign)[:k]]


def best_series(records: list[TrialRecord], sign: float) -> list[tuple[int, float]]:
    """``best_<metric>`` after each finished trial, in trial order: (step, value).

    Step k is the k-th finished trial (completed, failed or stopped), so MLflow's chart
    of the parent run is the convergence curve; steps before the first completed trial
    have no best yet and no point."""
    out: list[tuple[int, float]] = []
    best: float | None = None
    for step, r in enumerate(sorted(counted(records), key=lambda r: r.number), start=1):
        if r.status == "completed" and r.value is not None and (
                best is None or sign * r.value < sign * best):
            best = r.value
        if best is not None:
            out.append((step, best))
    return out


def counts(records: list[TrialRecord]) -> tuple[int, int]:
    """(finished, failed) trials."""
    done = counted(records)
    return len(done), sum(r.status == "failed" for r in done)


def state_message(records: list[TrialRecord], reason: str, metric: str, sign: float) -> str:
    """The study's final Prefect state message: failures and why it stopped, in a line."""
    n, failed = counts(records)
    best = best_trial(records, sign)
    parts = [f"{failed} of {n} trials failed" if failed else f"{n} trials, none failed"]
    if best is not None and best.value is not None:
        parts.append(f"best {metric} {best.value:.6g} (trial {best.number})")
    if reason == "max_failed_trials":
        parts.append("stopped: too many failed trials (max_failed_trials)")
    else:
        parts.append(f"stopped by {reason}")
    return "; ".join(parts)


def artifact_key(kind: str, study: str) -> str:
    """A Prefect artifact key of this study's own (keys allow a-z, 0-9 and dashes only).

    One key per study, so the UI's artifact history of a key is one study's, not a
    mix of every study that ever ran."""
    slug = re.sub(r"[^a-z0-9]+", "-", study.lower()).strip("-") or "study"
    return f"amtune-{kind}-{slug}"[:200]


def start_progress(study: str) -> UUID | None:
    art = create_progress_artifact(0.0, key=artifact_key("progress", study),
                                   description=f"Share of the trial budget of {study} used")
    return art if isinstance(art, UUID) else getattr(art, "id", None)


def update_progress(artifact_id: UUID | None, tally: Tally, total: int, metric: str) -> None:
    """The bar, and the numbers behind it in its description (done/total, failed, best):
    a Prefect progress artifact holds only a percentage. Read off the loop's tally, so
    an update costs the same at trial 5,000 as at trial 5."""
    if artifact_id is None:
        return
    done, best = tally.counted, tally.best
    text = f"{done}/{total} trials done, {tally.failed} failed, best {metric} " + (
        f"{best.value:.6g} (trial {best.number})" if best and best.value is not None else "-")
    update_progress_artifact(artifact_id, min(100.0, 100.0 * done / max(total, 1)),
                             description=text)


def finish(spec: StudySpec, store: StudyStore, records: list[TrialRecord],
           reason: str) -> TrialRecord | None:
    """Write the summary to the parent run and Prefect; return the best trial.

    The parent run gets the best params as tags (MLflow params cannot change), the
    ``best_<metric>`` history, the trials CSV, the four plots and the report page; the
    experiment gets the runs view the printed link opens (flows/views.py)."""
    best = best_trial(records, spec.sign)
    n, failed = counts(records)
    tags = {S.COMPLETION: reason, S.N_TRIALS: str(n), S.N_FAILED: str(failed)}
    if best is not None and best.value is not None:
        tags[S.BEST_TRIAL] = str(best.number)
        tags[S.BEST_TRIAL_RUN] = best.run_id
        tags[S.BEST_PARAMS] = json.dumps(best.params, sort_keys=True)
        tags.update({f"{S.BEST_PARAM}{k}": str(v) for k, v in best.params.items()})
    metric, exp = spec.objective.metric, str(store.experiment_id)
    run_url = mlflow_run_url(ui_base(spec.tracking.uri), exp)
    key = share_view(store.client, exp, spec.name, metric, spec.sign, spec.space.names,
                     store.parent_id)
    _log_best_series(store, f"best_{metric}", best_series(records, spec.sign))
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "trials.csv"
        csv_path.write_text(trials_csv(records), encoding="utf-8")
        files = study_files(Path(tmp) / "summary", records, study=spec.name, metric=metric,
                            sign=spec.sign, space=spec.space, reason=reason,
                            strategy=spec.strategy.name, run_url=run_url,
                            study_url=runs_link(spec.tracking.uri, exp, key), seed=spec.seed)
        store.summarise(tags=tags, files={"trials.csv": csv_path, **files})
    top = min(10, len(ranked(records, spec.sign)))
    create_table_artifact(
        top_table(records, spec.sign, run_url=run_url), key=artifact_key("top", spec.name),
        description=f"Top {top} trials of {spec.name}: {n} finished, **{failed} failed**, "
                    f"stopped by {reason}. [Open the study in MLflow]"
                    f"({runs_link(spec.tracking.uri, exp, key)})")
    return best


def _log_best_series(store: StudyStore, key: str, series: list[tuple[int, float]]) -> None:
    """The steps MLflow does not hold yet: a resumed study extends its curve, never
    repeats a point."""
    held = store.client.get_metric_history(store.parent_id, key)
    last = max((m.step for m in held), default=0)
    store.log_series(key, [(step, v) for step, v in series if step > last])
