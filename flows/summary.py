"""End-of-study outputs: the trials CSV and convergence plot on the parent run, the
best params and value as its tags and metric, and Prefect table/progress artifacts."""

from __future__ import annotations

import csv
import io
import json
import re
import tempfile
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect.artifacts import (
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from amtune.flows.spec import StudySpec
from amtune.tasks.store import schema as S
from amtune.tasks.store.schema import TrialRecord, best_trial, counted, ranked
from amtune.tasks.store.study import StudyStore


def trial_rows(records: list[TrialRecord]) -> list[dict[str, Any]]:
    """One row per trial: number, round, status, attempts, params, metrics, duration."""
    params = sorted({k for r in records for k in r.params})
    metrics = sorted({k for r in records for k in r.metrics})
    rows = []
    for r in sorted(records, key=lambda r: r.number):
        row: dict[str, Any] = {"number": r.number, "round": r.round, "status": r.status,
                               "attempts": r.attempts, "duration_s": r.duration_s,
                               "reason": r.reason or ""}
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


def convergence_png(records: list[TrialRecord], metric: str, sign: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = sorted((r for r in records if r.status == "completed" and r.value is not None),
                  key=lambda r: r.number)
    xs = [r.number for r in done]
    ys = [r.value for r in done]
    best: list[float] = []
    for y in ys:
        best.append(y if not best or sign * y < sign * best[-1] else best[-1])  # type: ignore[operator]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.scatter(xs, ys, s=12, alpha=0.6, label="trial")
    ax.step(xs, best, where="post", color="C3", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(metric)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def top_table(records: list[TrialRecord], sign: float, k: int = 10) -> list[dict[str, Any]]:
    return [{"trial": r.number, "value": r.value, **r.params} for r in ranked(records, sign)[:k]]


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


def update_progress(artifact_id: UUID | None, done: int, total: int) -> None:
    if artifact_id is not None:
        update_progress_artifact(artifact_id, min(100.0, 100.0 * done / max(total, 1)))


def finish(spec: StudySpec, store: StudyStore, records: list[TrialRecord],
           reason: str) -> TrialRecord | None:
    """Write the summary to the parent run and Prefect; return the best trial."""
    best = best_trial(records, spec.sign)
    done = counted(records)
    tags = {S.COMPLETION: reason, S.N_TRIALS: str(len(done)),
            S.N_FAILED: str(sum(r.status == "failed" for r in done))}
    metrics: dict[str, float] = {}
    if best is not None and best.value is not None:
        tags[S.BEST_TRIAL] = str(best.number)
        tags[S.BEST_TRIAL_RUN] = best.run_id
        tags[S.BEST_PARAMS] = json.dumps(best.params, sort_keys=True)
        tags.update({f"{S.BEST_PARAM}{k}": str(v) for k, v in best.params.items()})
        metrics[f"best_{spec.objective.metric}"] = best.value
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "trials.csv"
        csv_path.write_text(trials_csv(records), encoding="utf-8")
        png = Path(tmp) / "convergence.png"
        convergence_png(records, spec.objective.metric, spec.sign, png)
        store.summarise(tags=tags, metrics=metrics, step=len(done),
                        files={"trials.csv": csv_path, "convergence.png": png})
    create_table_artifact(top_table(records, spec.sign), key=artifact_key("top", spec.name),
                          description=f"Top trials of {spec.name} ({reason})")
    return best
