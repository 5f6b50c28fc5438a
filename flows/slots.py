"""The hand-over between the study loop and its rounds: slots, gos, plans made ahead.

The loop (``flows/loop.py``) counts the trials in flight and gives rounds their gos;
rounds (``flows/rounds.py``) wait for them, plan, start trials and report them here
as they end. Everything is guarded by one condition, which both sides wait on.
"""

from __future__ import annotations

import threading
from collections import deque

from amtune.tasks.store.schema import TrialRecord

PLAN_AHEAD = -1  # a go that asks a round to plan one trial and hold it for the next go


class Slots:
    """Trials in flight across all rounds, the ones that ended since the last look, and
    the hand-over of freed slots to rounds.

    The next rounds' subflows are started before they are needed and wait here for
    their first ``go``, so Prefect's cost of starting a subflow (~0.25 s, seconds on a
    busy machine) is paid while trials run, not while a slot stands empty. A round
    that has started stays open for more gos until the loop closes it (a go of 0).

    While every slot is busy, one round plans the next trial ahead (a go of
    ``PLAN_AHEAD``): it reads the history, proposes the trial and holds it. The next
    freed slot goes to that round, which opens the held trial's run and starts it at
    once, so the proposal's cost (history read, strategy: ~30 ms, a GP fit more) is
    not paid while the slot stands empty. ``held`` names that round.

    ``__slots__`` (no ``__dict__``) also keeps Prefect from walking it when it records
    round parameters.
    """

    __slots__ = ("_cond", "_go", "ended", "error", "exhausted", "held", "in_flight",
                 "planning", "waiting")

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.in_flight = 0
        self.planning = 0  # gos given that have not been planned yet
        self.exhausted = False  # a strategy proposed fewer points than asked
        self.error: BaseException | None = None  # the first error that stops the study
        self.waiting: set[int] = set()  # rounds waiting for a go
        self.held: int | None = None  # the round holding a trial planned ahead
        self._go: dict[int, deque[int]] = {}
        self.ended: list[TrialRecord] = []

    def __reduce__(self) -> tuple[type[Slots], tuple[()]]:
        """A fresh, unused copy: Prefect's Dask runner pickles the round's flow-run
        context, parameters included, with every trial; the trials never use it."""
        return (Slots, ())

    def await_go(self, k: int) -> int:
        """In round ``k``: block until the loop says how many more trials (0: no more;
        ``PLAN_AHEAD``: plan one and hold it)."""
        with self._cond:
            self.waiting.add(k)
            self._cond.notify_all()
            while not self._go.get(k):
                self._cond.wait()
            self.waiting.discard(k)
            return self._go[k].popleft()

    def go(self, k: int, n: int) -> None:
        """In the loop: let round ``k`` propose ``n`` more trials; 0 closes it (a round
        that never had a trial then ends at once, an open one once its trials end);
        ``PLAN_AHEAD`` asks it to plan one trial ahead."""
        with self._cond:
            self._go.setdefault(k, deque()).append(n)
            self.in_flight += max(n, 0)
            self.planning += n != 0
            if n > 0 and self.held == k:
                self.held = None  # the held trial is started with this go
            self.waiting.discard(k)  # taken: the loop never gives it two gos at once
            self._cond.notify_all()

    def planned(self, asked: int, got: int, failed: bool = False) -> None:
        with self._cond:
            self.in_flight -= asked - got
            self.planning -= 1
            self.exhausted |= got < asked and not failed
            self._cond.notify_all()

    def planned_ahead(self, k: int, got: int, failed: bool = False) -> None:
        """Round ``k`` planned a trial ahead (``got`` 1) or the strategy had none left."""
        with self._cond:
            self.planning -= 1
            self.held = k if got else None
            self.exhausted |= not got and not failed
            self._cond.notify_all()

    def fail(self, err: BaseException) -> None:
        """A trial met an error that stops the study (an outage, a lost lease)."""
        with self._cond:
            self.error = self.error or err
            self._cond.notify_all()

    def ended_trial(self, record: TrialRecord) -> None:
        with self._cond:
            self.in_flight -= 1
            self.ended.append(record)
            self._cond.notify_all()

    def wait(self, timeout_s: float) -> None:
        """Until something changed (a trial ended, a batch was planned) or the timeout."""
        with self._cond:
            self._cond.wait(timeout_s)

    def notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def drain(self) -> tuple[list[TrialRecord], int]:
        """The trials that ended since the last call, and the trials in flight now.

        Read together: a trial that ends between two separate reads would be neither
        in flight nor among the ended ones, and the budget would be overshot.
        """
        with self._cond:
            out, self.ended = self.ended, []
            return out, self.in_flight
