"""The strategy contract: ``Trial`` in, a batch of params out, no state in between."""

from __future__ import annotations

import importlib
import inspect
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar, Literal

import numpy as np

from amtune.strategies.space import SearchSpace

# completed: a final value. failed: no value, but its point is spent. running: pending,
# never to be proposed again. stopped: ended by an early-stopping rule; its value is the
# last intermediate one: on a falling (minimised) curve an upper bound on what it would
# have reached, not a final value. Every status blocks its point: a strategy never
# proposes a point already in the history.
Status = Literal["completed", "failed", "running", "stopped"]
STATUSES: tuple[str, ...] = ("completed", "failed", "running", "stopped")


@dataclass(frozen=True)
class Trial:
    """One evaluated (or pending) point. ``value`` is always minimised."""

    params: Mapping[str, Any]
    value: float | None = None
    status: Status = "completed"
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"Trial.status: {self.status!r}; allowed: {', '.join(STATUSES)}")
        if self.status == "completed" and self.value is None:
            raise ValueError("Trial.value: a completed trial needs a value")


class Strategy(ABC):
    """Proposes batches as a pure function of (space, seed, options, history).

    Subclasses take their options as keyword-only ``__init__`` arguments with
    defaults; :func:`make_strategy` checks user options against that signature.
    """

    name: ClassVar[str]

    def __init__(self, space: SearchSpace, seed: int = 0) -> None:
        self.space = space
        self.seed = int(seed)

    @abstractmethod
    def propose(self, history: Sequence[Trial], n: int) -> list[dict[str, Any]]:
        """Return up to ``n`` new points; never one already in ``history``."""

    def size(self) -> int | None:
        """How many distinct points this strategy can ever propose (None: unbounded).

        A finite space bounds every strategy, so a budget can default to it.
        """
        return self.space.size()

    def _seen(self, history: Iterable[Trial]) -> set[tuple[Any, ...]]:
        if isinstance(history, KeyedTrials) and history.space_sig == self._space_sig:
            return set(history.keys)
        return {_key(self.space, self._space_sig, t) for t in history}

    @cached_property
    def _space_sig(self) -> str:
        """The space as text: a trial's key is kept for the space it was made for."""
        return space_signature(self.space)

    def _rng(self, *salt: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, *salt])


class KeyedTrials(list[Trial]):
    """A history that carries the set of its trials' keys (``space.key``) for the space
    whose ``space_signature`` is ``space_sig``.

    Whoever keeps a history as trials arrive can key each trial once; a strategy given
    such a history takes a copy of the keys instead of keying every trial again (at
    5,000 trials, the longest part of a random proposal). The keys must be exactly
    those of the trials.
    """

    def __init__(self, trials: Iterable[Trial], keys: set[tuple[Any, ...]],
                 space_sig: str) -> None:
        super().__init__(trials)
        self.keys = keys
        self.space_sig = space_sig

    def after(self, first: Sequence[Trial], space: SearchSpace) -> KeyedTrials:
        """``first`` (e.g. a warm start's trials), then these trials, keys included."""
        keys = self.keys | {_key(space, self.space_sig, t) for t in first}
        return KeyedTrials([*first, *self], keys, self.space_sig)


def space_signature(space: SearchSpace) -> str:
    """The space as text: equal spaces, equal text."""
    return repr(space.to_dict())


def _key(space: SearchSpace, sig: str, t: Trial) -> tuple[Any, ...]:
    """``space.key(t.params)``, kept on the trial for the next proposal.

    A study passes the same Trial objects round after round, and keying thousands of
    them anew was most of a random proposal's time at 5,000 trials. Keys depend on
    nothing but the params and the space, so a cached key is the key.
    """
    memo = t.__dict__.get("_amtune_key")
    if memo is not None and memo[0] == sig:
        return memo[1]  # type: ignore[no-any-return]
    key = space.key(t.params)
    object.__setattr__(t, "_amtune_key", (sig, key))  # a cache, not a field
    return key


_REGISTRY: dict[str, type[Strategy]] = {}
# The built-in strategies, imported when first named: gp_ei and sobol pull in
# scipy.stats (~1 s), which checking a spec or starting the CLI should not pay.
_BUILTIN = {"grid": "amtune.strategies.grid", "random": "amtune.strategies.random_search",
            "sobol": "amtune.strategies.sobol", "gp_ei": "amtune.strategies.gp_ei"}


# Names users bring from other tools that amtune spells differently.
_HINTS = {"hyperband": " (Hyperband is an early-stopping rule here: "
                       "early_stopping: {rule: hyperband, max_steps: N} with any strategy)"}


def register(cls: type[Strategy]) -> type[Strategy]:
    _REGISTRY[cls.name] = cls
    return cls


def strategy_names() -> list[str]:
    return sorted({*_REGISTRY, *_BUILTIN})


def strategy_options(name: str) -> dict[str, Any]:
    """The options a strategy accepts, with their defaults."""
    sig = inspect.signature(_lookup(name).__init__)
    return {
        p.name: p.default
        for p in sig.parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def _lookup(name: str) -> type[Strategy]:
    if name not in _REGISTRY and name in _BUILTIN:
        importlib.import_module(_BUILTIN[name])  # registers it
    if name not in _REGISTRY:
        raise ValueError(
            f"strategy.name: {name!r} is not a strategy; allowed: {', '.join(strategy_names())}"
            + _HINTS.get(name, "")
        )
    return _REGISTRY[name]


def make_strategy(name: str, space: SearchSpace, seed: int = 0, **options: Any) -> Strategy:
    """Build a registered strategy; unknown names or options list the valid ones."""
    cls = _lookup(name)
    valid = strategy_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        allowed = ", ".join(valid) if valid else "none"
        raise ValueError(
            f"strategy.options.{unknown[0]}: {options[unknown[0]]!r} is not an option of "
            f"{name!r}; allowed: {allowed}"
        )
    return cls(space, seed, **options)
