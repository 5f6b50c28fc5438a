"""The trials a study store has read or written, kept so an incremental read costs
what is new, not what the study holds.

``history()`` reads only what it cannot know (runs started in the last moments, runs
still running); picking those out and returning every trial in order walked and sorted
the whole study on every read (3 ms a read at 5,000 trials). Here a record is added
in O(log n), the running ones are a set, the trial order is kept as records arrive,
and the recent finished ones are found from the newest end. The trial numbers held
(``free_numbers``) and, once asked for, the strategy's history (``view.py``) are kept
the same way, so a proposal does not walk the study either.
"""

from __future__ import annotations

import bisect

from amtune.strategies.base import KeyedTrials
from amtune.strategies.space import SearchSpace
from amtune.tasks.store.schema import TrialRecord
from amtune.tasks.store.view import TrialsView


class Known:
    """Records by run id, in trial order (number, then run id)."""

    def __init__(self) -> None:
        self._by_id: dict[str, TrialRecord] = {}  # in the order runs became known
        self._order: list[tuple[int, str]] = []
        self._running: set[str] = set()
        self._local: set[str] = set()  # running runs whose end this process is told of
        self._numbered: dict[str, int] = {}  # run id -> number, for runs not killed
        self._used: dict[int, int] = {}  # number -> how many runs not killed hold it
        self._low = 0  # every number below it is held
        self._view: TrialsView | None = None  # made by the first ``trials`` call

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, run_id: str) -> TrialRecord | None:
        return self._by_id.get(run_id)

    def put(self, record: TrialRecord, local: bool = False) -> None:
        """Add or replace a record; ``local``: a run this process started, whose end it
        is told of (``StudyStore.remember``), so reads need not look for it."""
        rid = record.run_id
        before = self._by_id.get(rid)
        if before is None or before.number != record.number:
            if before is not None:
                self._order.remove((before.number, rid))
            bisect.insort(self._order, (record.number, rid))
        self._by_id[rid] = record
        if record.status == "running":
            self._running.add(rid)
            if local:
                self._local.add(rid)
        else:
            self._running.discard(rid)
            self._local.discard(rid)
        self._number(rid, None if record.status == "killed" else record.number)
        if self._view is not None:
            self._view.put(record)

    def _number(self, rid: str, number: int | None) -> None:
        """Count the number ``rid`` holds (None: a killed run, whose number is free)."""
        old = self._numbered.pop(rid, None)
        if old is not None:
            left = self._used[old] - 1
            if left:
                self._used[old] = left
            else:
                del self._used[old]
                self._low = min(self._low, old)
        if number is not None:
            self._numbered[rid] = number
            self._used[number] = self._used.get(number, 0) + 1
            while self._low in self._used:
                self._low += 1

    def free_numbers(self, n: int) -> list[int]:
        """The ``n`` lowest trial numbers no run holds (a killed run's is given again)."""
        out, k = [], self._low
        while len(out) < n:
            if k not in self._used:
                out.append(k)
            k += 1
        return out

    def trials(self, space: SearchSpace, sign: float) -> KeyedTrials:
        """The strategy's history (``to_trials``, in trial order) with its keys."""
        if self._view is None or not self._view.fits(space, sign):
            self._view = TrialsView(space, sign, self.in_order())
        return self._view.snapshot()

    def in_order(self) -> list[TrialRecord]:
        by_id = self._by_id
        return [by_id[rid] for _, rid in self._order]

    def running_before(self, since_ms: int) -> list[str]:
        """Runs known as running, and not local, that started before ``since_ms`` (or
        at no known time): they may have ended in another process."""
        by_id, local = self._by_id, self._local
        return [rid for rid in self._running
                if rid not in local and (by_id[rid].start_ms or 0) < since_ms]

    def settled_since(self, since_ms: int, slack_ms: int) -> list[str]:
        """Runs known to have started at or after ``since_ms`` that a read need not
        fetch: the finished ones, and the local ones still running.

        Runs become known about in the order they start, so the walk goes from the
        newest and stops at the first run older than ``since_ms - slack_ms``. A run
        missed by that (one known out of order) is only read again, never lost."""
        out = []
        for r in reversed(self._by_id.values()):
            start = r.start_ms
            if start is None:
                continue
            if start < since_ms - slack_ms:
                break
            if start >= since_ms and (r.status != "running" or r.run_id in self._local):
                out.append(r.run_id)
        return out
