"""Uniform random search in the scaled space."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from amtune.strategies.base import Strategy, Trial, register
from amtune.strategies.space import SearchSpace

_MAX_REDRAWS = 64


@register
class RandomSearch(Strategy):
    """Point ``i`` of the study is drawn from a generator seeded by ``(seed, i)``.

    So proposing 4 then 4 gives the same 8 points as proposing 8, and a resumed
    study proposes what the interrupted one would have. A draw that repeats an
    earlier point (possible in small discrete spaces) is redrawn.
    """

    name = "random"

    def propose(self, history: Sequence[Trial], n: int) -> list[dict[str, Any]]:
        seen = self._seen(history)
        size = self.space.size()
        out: list[dict[str, Any]] = []
        start = len(history)
        for i in range(start, start + n):
            if size is not None and len(seen) >= size:
                break
            for attempt in range(_MAX_REDRAWS):
                params = self.space.decode(self._rng(i, attempt).random(self.space.dim))
                key = self.space.key(params)
                if key not in seen:
                    break
            else:  # nearly exhausted discrete space: take the first unseen point in order
                params = next(
                    (p for p in _enumerate(self.space) if self.space.key(p) not in seen), None
                )
                if params is None:
                    break
                key = self.space.key(params)
            seen.add(key)
            out.append(params)
        return out


def _enumerate(space: SearchSpace) -> Iterator[dict[str, Any]]:
    axes = [
        [(k + 0.5) / (p.n_values or 1) for k in range(p.n_values or 1)] for p in space.params
    ]
    for combo in itertools.product(*axes):
        yield space.decode(np.array(combo))
