"""The two planning tasks of a round: read the history back, propose the next batch."""

from __future__ import annotations

import threading

from amtune.strategies import make_strategy
from amtune.tasks.context import PlannedTrial, StudyHandle, counted, to_trials
from amtune.tasks.store import tracking
from amtune.tasks.store.tracking import TrialRecord
from prefect import task
from prefect.cache_policies import NO_CACHE

# parent run id -> (time of the last read in ms, trials by run id). Finished and failed
# runs never change, so after one full read a round only fetches runs started since
# the previous read (with a margin for clock granularity): MLflow stays the source of
# truth without re-reading a growing history every round.
_seen: dict[str, tuple[int, dict[str, TrialRecord]]] = {}
_seen_lock = threading.Lock()
_MARGIN_MS = 2000


@task(name="load_history", cache_policy=NO_CACHE, persist_result=False)
def load_history(handle: StudyHandle) -> list[TrialRecord]:
    """Every trial of the study as MLflow holds it (params decoded to their types)."""
    study = tracking.StudyRun(handle.parent_id, handle.experiment_id, "RUNNING", {})
    last, known = _cached(handle.parent_id)
    now = tracking.now_ms()
    fresh = tracking.read_trials(handle.uri, study, handle.search_space, handle.metric,
                                 since_ms=None if last is None else last - _MARGIN_MS)
    known = {**known, **{r.run_id: r for r in fresh}}
    _remember(handle.parent_id, now, known)
    return sorted(known.values(), key=lambda r: (r.number, r.run_id))


# The cache is touched only through these functions, never inline in a task: Prefect's
# Dask task runner pickles the running flow (and the tasks it names) by value, and a
# function that names the lock itself cannot be pickled.
def _cached(parent_id: str) -> tuple[int | None, dict[str, TrialRecord]]:
    with _seen_lock:
        return _seen.get(parent_id, (None, {}))


def _remember(parent_id: str, now: int, known: dict[str, TrialRecord]) -> None:
    with _seen_lock:
        _seen[parent_id] = (now, known)


def forget(parent_id: str) -> None:
    """Drop the cached history of a study (after it was changed outside a round)."""
    with _seen_lock:
        _seen.pop(parent_id, None)


def free_numbers(records: list[TrialRecord], n: int) -> list[int]:
    """The lowest trial numbers not held by a counted trial (a killed trial's number is reused)."""
    used = {r.number for r in counted(records)}
    out: list[int] = []
    k = 0
    while len(out) < n:
        if k not in used:
            out.append(k)
        k += 1
    return out


@task(name="propose_batch", cache_policy=NO_CACHE, persist_result=False)
def propose_batch(handle: StudyHandle, records: list[TrialRecord], n: int,
                  round_: int) -> list[PlannedTrial]:
    """Ask the strategy for ``n`` points and open one MLflow child run for each.

    The strategy is rebuilt from (space, seed, options) every round: the batch is a
    function of the history alone, which is what makes a resumed study propose what
    the interrupted one would have.
    """
    strategy = make_strategy(handle.strategy, handle.search_space, seed=handle.seed,
                             **handle.strategy_options)
    history = [*handle.prior, *to_trials(records, handle.sign)]
    batch = strategy.propose(history, n) if n > 0 else []
    planned = []
    for number, params in zip(free_numbers(records, len(batch)), batch, strict=True):
        run_id = tracking.create_trial(handle.uri, handle.experiment_id, handle.parent_id,
                                       handle.study, number, round_, handle.strategy)
        planned.append(PlannedTrial(number, round_, params, run_id))
    return planned
