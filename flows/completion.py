"""When a study stops. Values are compared minimised (``sign * value``)."""

from __future__ import annotations

from amtune.tasks.store.schema import TrialRecord, best_trial, counted


def stop_reason(records: list[TrialRecord], *, sign: float, max_trials: int,
                max_runtime_s: float | None = None, elapsed_s: float = 0.0,
                target: float | None = None, patience: int | None = None,
                max_failed_trials: int | None = None) -> str | None:
    """The first completion criterion that holds, or None to run another round."""
    done = counted(records)
    if len(done) >= max_trials:
        return "max_trials"
    failed = sum(r.status == "failed" for r in done)
    if max_failed_trials is not None and failed >= max_failed_trials:
        return "max_failed_trials"
    best = best_trial(records, sign)
    if target is not None and best is not None and sign * best.value <= sign * target:  # type: ignore[operator]
        return "target"
    if patience is not None and best is not None:
        since = sum(r.status == "completed" and r.number > best.number for r in done)
        if since >= patience:
            return "patience"
    if max_runtime_s is not None and elapsed_s >= max_runtime_s:
        return "max_runtime_s"
    return None
