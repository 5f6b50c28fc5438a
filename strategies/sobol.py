"""Scrambled Sobol sequence: quasi-random points that fill the space evenly."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

from scipy.stats import qmc

from amtune.strategies.base import Strategy, Trial, register
from amtune.strategies.grid import iter_grid

_FIRST_CHUNK = 64  # a power of 2, as Sobol's balance properties want
_MAX_DRAWS = 1 << 16  # in a finite space, stop looking for new points after this many


@register
class SobolSearch(Strategy):
    """Point ``i`` of a study is the i-th *distinct* point of one scrambled Sobol sequence.

    The sequence is a function of the seed only and is replayed from its start
    each round, skipping the first ``len(history)`` distinct points (the ones
    earlier rounds proposed), so proposing 4 then 4 equals proposing 8 and a
    resumed study continues where it stopped. Decoding goes through
    ``SearchSpace.decode``, whose equal cells give every integer and category
    the same share of the sequence; points that decode to an earlier point (small
    discrete spaces) are skipped, deterministically.
    """

    name = "sobol"

    def _sequence(self) -> Iterator[dict[str, Any]]:
        """The distinct decoded points of the sequence, in order."""
        engine = qmc.Sobol(d=self.space.dim, scramble=True, rng=self.seed)
        size = self.space.size()
        limit = None if size is None else max(_MAX_DRAWS, 16 * size)
        seen: set[tuple[Any, ...]] = set()
        chunk, drawn = _FIRST_CHUNK, 0
        while limit is None or drawn < limit:
            for u in engine.random(chunk):
                params = self.space.decode(u)
                key = self.space.key(params)
                if key not in seen:
                    seen.add(key)
                    yield params
                if size is not None and len(seen) >= size:
                    return
            drawn += chunk
            chunk = drawn  # keeps the total a power of 2

    def propose(self, history: Sequence[Trial], n: int) -> list[dict[str, Any]]:
        seen = self._seen(history)
        out: list[dict[str, Any]] = []
        if n <= 0:
            return out
        # Past the points earlier rounds took; then, in a nearly exhausted finite
        # space, any point still unseen (e.g. when the history holds foreign points).
        later = itertools.islice(self._sequence(), len(history), None)
        candidates = itertools.chain(later, self._sequence())
        if self.space.size() is not None:
            candidates = itertools.chain(candidates, iter_grid(self.space))
        for params in candidates:
            key = self.space.key(params)
            if key not in seen:
                seen.add(key)
                out.append(params)
                if len(out) == n:
                    break
        return out
