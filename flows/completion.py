"""When a study stops. Values are compared minimised (``sign * value``)."""

from __future__ import annotations

from collections.abc import Iterable

from amtune.tasks.store.schema import COUNTED, TrialRecord, best_trial


class Tally:
    """What the completion criteria read of a study's trials, kept as trials end.

    The study loop looks several times per trial; walking every record each time
    grew with the history (1.2 ms a look at 5,000 trials). Adding a trial is O(1),
    except a new best that arrives out of order (patience then recounts once).
    A trial is taken once, by run id; running and killed trials are not counted.
    """

    def __init__(self, sign: float, records: Iterable[TrialRecord] = ()) -> None:
        self.sign = sign
        self.counted = 0
        self.failed = 0
        self.best: TrialRecord | None = None
        self.since_best = 0  # completed trials numbered after the best (patience)
        self._completed: list[TrialRecord] = []
        self._ids: set[str] = set()
        self.add(records)

    def add(self, records: Iterable[TrialRecord]) -> None:
        for r in records:
            if r.status not in COUNTED or r.run_id in self._ids:
                continue
            self._ids.add(r.run_id)
            self.counted += 1
            self.failed += r.status == "failed"
            if r.status != "completed" or r.value is None:
                continue
            self._completed.append(r)
            if best_trial([r, *([self.best] if self.best else [])], self.sign) is r:
                self.best = r
                self.since_best = sum(c.number > r.number for c in self._completed)
            elif self.best is not None and r.number > self.best.number:
                self.since_best += 1


def stop_reason(tally: Tally, *, max_trials: int, max_runtime_s: float | None = None,
                elapsed_s: float = 0.0, target: float | None = None,
                patience: int | None = None,
                max_failed_trials: int | None = None) -> str | None:
    """The first completion criterion that holds, or None to run another round."""
    if tally.counted >= max_trials:
        return "max_trials"
    if max_failed_trials is not None and tally.failed >= max_failed_trials:
        return "max_failed_trials"
    best, sign = tally.best, tally.sign
    if target is not None and best is not None and sign * best.value <= sign * target:  # type: ignore[operator]
        return "target"
    if patience is not None and best is not None and tally.since_best >= patience:
        return "patience"
    if max_runtime_s is not None and elapsed_s >= max_runtime_s:
        return "max_runtime_s"
    return None
