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

from amtune.flows.completion import best_trial
from amtune.tasks.context import StudyHandle
from amtune.tasks.store import tracking
from amtune.tasks.store.tracking import TrialRecord
from prefect.artifacts import (
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)


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
    done = [r for r in records if r.status == "completed" and r.value is not None]
    done.sort(key=lambda r: (sign * r.value, r.number))  # type: ignore[operator]
    return [{"trial": r.number, "value": r.value, **r.params} for r in done[:k]]


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


def finish(handle: StudyHandle, records: list[TrialRecord], reason: str) -> TrialRecord | None:
    """Write the summary to the parent run and Prefect; return the best trial."""
    best = best_trial(records, handle.sign)
    n = sum(r.status in ("completed", "failed") for r in records)
    tags = {"amtune.completion_reason": reason,
            "amtune.trials": str(n),
            "amtune.failed": str(sum(r.status == "failed" for r in records))}
    metrics: dict[str, float] = {}
    if best is not None and best.value is not None:
        tags["amtune.best_trial"] = str(best.number)
        tags["amtune.best_params"] = json.dumps(best.params, sort_keys=True)
        tags.update({f"best.{k}": str(v) for k, v in best.params.items()})
        metrics[f"best_{handle.metric}"] = best.value
    tracking.log_study_summary(handle.uri, handle.parent_id, tags=tags, metrics=metrics, step=n)
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "trials.csv"
        csv_path.write_text(trials_csv(records), encoding="utf-8")
        tracking.log_artifact(handle.uri, handle.parent_id, csv_path)
        png = Path(tmp) / "convergence.png"
        convergence_png(records, handle.metric, handle.sign, png)
        tracking.log_artifact(handle.uri, handle.parent_id, png)
    create_table_artifact(top_table(records, handle.sign), key=artifact_key("top", handle.study),
                          description=f"Top trials of {handle.study} ({reason})")
    return best
