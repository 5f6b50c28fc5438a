"""The store's reads of trials: the study's own, incrementally, and another study's.

A mixin of ``StudyStore`` (``study.py``), like ``ParentRun``: its methods use the
store's fields, client and live parts.
"""

from __future__ import annotations

from operator import attrgetter
from typing import TYPE_CHECKING, Any

from amtune.strategies.base import KeyedTrials
from amtune.strategies.space import SearchSpace
from amtune.tasks.store import schema as S
from amtune.tasks.store.metrics import now_ms
from amtune.tasks.store.schema import StudyRun, TrialRecord

_MARGIN_MS = 2000  # runs started this long before the last read are looked for again
_IN_CHUNK = 100  # run ids per ``run_id IN (...)`` filter
_NOT_IN_MAX = 1000  # known runs left out of a read by id; more: read them again
_ORDER = attrgetter("number", "run_id")  # trial order


class TrialReads:
    """``history``, ``trials`` and ``free_numbers`` of the study; ``trials_of`` another."""

    if TYPE_CHECKING:  # the store's fields, client and live parts
        client: Any
        experiment_id: str | None
        parent_id: str | None
        metric: str
        _live: Any

        @property
        def search_space(self) -> SearchSpace: ...

    def history(self) -> list[TrialRecord]:
        """Every trial of the study in trial order, read as ``_read`` says."""
        live = self._live
        self._read()
        with live.lock:
            return live.known.in_order()

    def trials(self, space: SearchSpace, sign: float) -> KeyedTrials:
        """The history as a strategy is given it (``to_trials``), read as ``_read`` says.

        Each record is converted and keyed once, as it becomes known (``view.py``)."""
        live = self._live
        self._read()
        with live.lock:
            return live.known.trials(space, sign)

    def free_numbers(self, n: int) -> list[int]:
        """The lowest trial numbers no trial holds (a killed trial's is given again)."""
        with self._live.lock:
            return self._live.known.free_numbers(n)

    def _read(self) -> None:
        """Every trial of the study, read incrementally: finished runs never change.

        After one full read, a call fetches the runs started since the previous read
        (runs created elsewhere; none while this runner holds the lease, so usually
        none at all) and the ones it last saw running, which may have ended in another
        process. Runs this process started are not fetched again: their ends reach the
        store here (``remember``: from the trial's thread, or from its task's future on
        Dask), and a running trial gives the strategy only its params, known from the
        start; re-reading the trials in flight was ~25 ms a proposal of the study
        process's CPU. The finished runs it knows are left out of the first query by
        id: re-reading every run of the last ``_MARGIN_MS`` was most of a read's time
        at 20 trials/s. Running runs started in that window come back in
        the same query; only older ones need a second, by id, so at high trial rates a
        read is one query. Those queries filter by time and id only: the study's tag,
        as a SQL filter, made MLflow match every run of the study (6 ms a read at
        5,000 trials); it is checked on the few runs they return. What is known is
        kept in ``Known``, so a read no longer walks the whole study.
        """
        flt = f"tags.`{S.PARENT}` = '{self.parent_id}'"
        live = self._live
        with live.lock:
            last = live.last_read
            since = None if last is None else last - _MARGIN_MS
            running, recent = ([], []) if since is None else (
                live.known.running_before(since), live.known.settled_since(since, _MARGIN_MS))
        now = now_ms()
        if since is None:
            fresh = self._search(flt)
        else:  # the study's tag is checked here, not in SQL, where it costs O(study)
            known = f" and attributes.run_id NOT IN ({_ids(recent)})" if recent and \
                len(recent) <= _NOT_IN_MAX else ""
            fresh = self._search(f"attributes.start_time >= {since}{known}",
                                 parent=self.parent_id)
        seen = {r.run_id for r in fresh}
        again = [i for i in running if i not in seen]
        for k in range(0, len(again), _IN_CHUNK):
            chunk = again[k:k + _IN_CHUNK]
            fresh += self._search(f"attributes.run_id IN ({_ids(chunk)})", parent=self.parent_id)
        fresh.sort(key=lambda r: r.start_ms or 0)  # Known finds recent runs from the newest
        with live.lock:
            for r in fresh:
                live.known.put(r)
            live.last_read = now

    def trials_of(self, run: StudyRun, space: SearchSpace, metric: str) -> list[TrialRecord]:
        """Every trial of another study (warm start, results), decoded."""
        return sorted(self._search(f"tags.`{S.PARENT}` = '{run.run_id}'", run.experiment_id,
                                   space, metric), key=_ORDER)

    def _search(self, flt: str, experiment_id: str | None = None,
                space: SearchSpace | None = None, metric: str | None = None,
                parent: str | None = None) -> list[TrialRecord]:
        """The runs ``flt`` finds, decoded; with ``parent``, only that parent's."""
        space = space or self.search_space
        metric = metric or self.metric
        out: list[TrialRecord] = []
        token = None
        while True:
            page = self.client.search_runs([experiment_id or self.experiment_id], flt,
                                           max_results=50000, page_token=token)
            out.extend(S.decode(r, space, metric) for r in page
                       if parent is None or r.data.tags.get(S.PARENT) == parent)
            token = page.token
            if not token:
                return out


def _ids(run_ids: list[str]) -> str:
    return ", ".join(f"'{i}'" for i in run_ids)
