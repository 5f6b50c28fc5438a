"""Early-stopping rules: should a running trial stop, given what every trial has reported?

The flow asks once per reported step: ``rule.should_stop(trial, step, value, histories)``.
A rule keeps no state: the answer is a function of its config, the trial's number, the
step, the value and the curves in ``histories`` (what MLflow holds: finished trials'
histories, and what running trials have reported so far). So a resumed study decides
as the interrupted one would have, whatever process asks.

Conventions:

- values are minimised (the flow negates for ``direction: maximize``); NaN counts as
  +inf, the worst value (a diverged run);
- a step is the resource used so far, counted from 1: step 1 is the first epoch done.
  Steps may be irregular (say 100, 200, ...): a trial's value "at" step k is its value
  at the first step it reported at or after k;
- a trial is never stopped at or past the full length (``max_steps``, or else the
  longest completed trial's last step): a trial that ran to its end is a completed
  trial, and stopping it there would only throw its final value away.

Hyperband is a rule here, not a strategy. SageMaker's Hyperband strategy is random
proposals plus asynchronous successive halving in brackets; the bracket of a trial is
a function of its number only, and the stopping decisions need the step-level
histories a strategy never sees (strategies get one value per trial). As a rule it
composes with every proposing strategy (``random`` gives SageMaker's Hyperband,
``gp_ei`` or ``sobol`` a model-based or quasi-random variant), and every stopping
decision stays in one place. ``strategy: {name: hyperband}`` is rejected with a
pointer to ``early_stopping: {rule: hyperband}``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from amtune.strategies.curves import CURVE_STATUSES, Curve, clean

__all__ = ["CURVE_STATUSES", "AshaRule", "Curve", "HyperbandRule", "MedianRule",
           "StoppingRule", "make_rule"]

_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0  # spreads trial numbers evenly over [0, 1)


def _others(trial: int, histories: Mapping[int, Curve]) -> list[Curve]:
    return [c for n, c in histories.items() if n != trial]


def _full_length(max_steps: int | None, histories: Mapping[int, Curve]) -> int | None:
    if max_steps is not None:
        return max_steps
    ends = [c.last_step for c in histories.values() if c.status == "completed"]
    return max((e for e in ends if e is not None), default=None)


def _check_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(
            f"early_stopping.{name}: {value!r} is not allowed; must be a whole number >= {low}"
        )


class StoppingRule(ABC):
    """Decides, at one reported step of one trial, whether that trial stops now."""

    name: ClassVar[str]

    @abstractmethod
    def should_stop(
        self, trial: int, step: int, value: float, histories: Mapping[int, Curve]
    ) -> bool:
        """True: stop ``trial`` at ``step``. ``histories`` may hold the trial itself."""


@dataclass(frozen=True)
class MedianRule(StoppingRule):
    """SageMaker's median rule: stop a trial that is worse, at step k, than the median
    of the other trials' running averages up to k.

    Running averages rather than values at k: a trial is compared with how the others
    did on the way to k, which is kinder to slow starters than their value at k.
    ``min_trials`` finished (completed or stopped) trials must exist first, so the
    median means something. The others compared are the trials still in the race
    that reached k (completed and running ones), not stopped ones: those are judged
    losers already, and counting them pulls the median up, which lets more through
    (dev curve sets: compute 0.39-0.41 instead of 0.52-0.53 at regret 0-0.0016; on the
    stress family regret rises, see ``benchmarks/README.md``).
    """

    name: ClassVar[str] = "median"
    min_steps: int = 1
    min_trials: int = 5
    max_steps: int | None = None

    def __post_init__(self) -> None:
        _check_int("min_steps", self.min_steps, 1)
        _check_int("min_trials", self.min_trials, 1)
        _check_max_steps(self.max_steps, self.min_steps)

    def should_stop(
        self, trial: int, step: int, value: float, histories: Mapping[int, Curve]
    ) -> bool:
        full = _full_length(self.max_steps, histories)
        if step < self.min_steps or (full is not None and step >= full):
            return False
        others = _others(trial, histories)
        if sum(c.finished for c in others) < self.min_trials:
            return False
        averages = [c.running_average(step) for c in others
                    if c.status != "stopped" and c.reached(step)]
        return bool(averages) and clean(value) > float(np.median(averages))


def _check_max_steps(max_steps: int | None, min_steps: int) -> None:
    if max_steps is None:
        return
    _check_int("max_steps", max_steps, 1)
    if max_steps < min_steps:
        raise ValueError(
            f"early_stopping.max_steps: {max_steps!r} is not allowed; "
            f"must be >= min_steps ({min_steps})"
        )


@dataclass(frozen=True)
class AshaRule(StoppingRule):
    """Asynchronous successive halving: rungs at ``min_steps * reduction_factor**i``.

    A trial reaching a rung goes on only if its value there is among the best
    ``max(1, n // reduction_factor)`` of the ``n`` values recorded at that rung so far
    (its own included). Rungs at or past the full length are not judged:
    ``max_steps`` may be left out, the longest completed trial then tells.

    Fewer than ``reduction_factor`` values at a rung cannot tell a top 1/rf (the
    paper's ASHA would pause the trial; a stopped one cannot resume). Such a trial
    goes on only if it is the best there yet *and* still in the top 1/rf at the
    highest lower rung that now holds ``reduction_factor`` values or more; else the
    first trials at each rung run to the end whatever they are worth (as in Optuna).
    The first to reach the last rung before the full length (any rung, while that is
    unknown) is judged on that rung alone, so some trial always completes.
    Measured on dev curve sets in ``benchmarks/README.md``.
    """

    name: ClassVar[str] = "asha"
    min_steps: int = 1
    reduction_factor: int = 3
    max_steps: int | None = None

    def __post_init__(self) -> None:
        _check_int("min_steps", self.min_steps, 1)
        _check_int("reduction_factor", self.reduction_factor, 2)
        _check_max_steps(self.max_steps, self.min_steps)

    def rungs(self, upto: int, full: int | None = None) -> list[int]:
        """The rung steps up to ``upto``, those before the full length only."""
        out, rung = [], self.min_steps
        while rung <= upto and (full is None or rung < full):
            out.append(rung)
            rung *= self.reduction_factor
        return out

    def should_stop(
        self, trial: int, step: int, value: float, histories: Mapping[int, Curve]
    ) -> bool:
        full = _full_length(self.max_steps, histories)
        own = histories.get(trial)
        before = max((s for s in (own.values if own else ()) if s < step), default=0)
        value = clean(value)
        others = _others(trial, histories)
        for rung in self.rungs(step, full):
            if rung <= before:
                continue  # judged at an earlier report
            competing = sorted([value, *(c.at(rung) for c in others if c.reached(rung))])
            if value > competing[self._kept(len(competing)) - 1]:
                return True
            first_at_last = len(competing) == 1 and (
                full is None or rung * self.reduction_factor >= full)
            if len(competing) < self.reduction_factor and not first_at_last \
                    and self._lost_below(rung, own, others):
                return True
        return False

    def _kept(self, n: int) -> int:
        return max(1, n // self.reduction_factor)

    def _lost_below(self, rung: int, own: Curve | None, others: list[Curve]) -> bool:
        """Not in the top 1/rf, now, at the highest rung below ``rung`` that holds
        ``reduction_factor`` values or more (False if there is none)."""
        lower = [r for r in self.rungs(rung - 1) if own is not None and own.reached(r)]
        for r in reversed(lower):
            competing = sorted([own.at(r), *(c.at(r) for c in others if c.reached(r))])
            if len(competing) >= self.reduction_factor:
                return own.at(r) > competing[self._kept(len(competing)) - 1]
        return False


@dataclass(frozen=True)
class HyperbandRule(StoppingRule):
    """Several ASHA brackets; bracket s has its first rung at ``min_steps * rf**s``.

    The brackets trade aggressiveness for safety: bracket 0 judges after ``min_steps``,
    the last runs its trials to ``max_steps`` unjudged, which guards against curves
    that cross late. Trials compete only within their bracket. Bracket weights are
    Hyperband's (the paper's n_s, as Optuna computes them); trial ``t`` goes to the
    bracket where the golden-ratio sequence ``frac((t + 1) * 0.618...)`` falls, a
    deterministic assignment that keeps the shares right in every stretch of trial
    numbers, not only on average.
    """

    name: ClassVar[str] = "hyperband"
    max_steps: int | None = None
    min_steps: int = 1
    reduction_factor: int = 3
    _brackets: tuple[AshaRule, ...] = field(init=False, repr=False, compare=False)
    _edges: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_int("min_steps", self.min_steps, 1)
        _check_int("reduction_factor", self.reduction_factor, 2)
        if self.max_steps is None:
            raise ValueError("early_stopping.max_steps: missing; hyperband needs the full "
                             "length, a whole number >= min_steps")
        _check_max_steps(self.max_steps, self.min_steps)
        rf, lows, full = self.reduction_factor, [self.min_steps], self.max_steps
        while lows[-1] * rf <= full:
            lows.append(lows[-1] * rf)
        n = len(lows)
        weights = [math.ceil(n * rf ** (n - 1 - s) / (n - s)) for s in range(n)]
        brackets = tuple(AshaRule(low, rf, full) for low in lows)
        object.__setattr__(self, "_brackets", brackets)
        object.__setattr__(self, "_edges", np.cumsum(weights)[:-1] / sum(weights))

    @property
    def brackets(self) -> tuple[AshaRule, ...]:
        return self._brackets

    def bracket(self, trial: int) -> int:
        u = ((trial + 1) * _GOLDEN) % 1.0
        return int(np.searchsorted(self._edges, u, side="right"))

    def should_stop(
        self, trial: int, step: int, value: float, histories: Mapping[int, Curve]
    ) -> bool:
        b = self.bracket(trial)
        mates = {n: c for n, c in histories.items() if n == trial or self.bracket(n) == b}
        # the full length is known, so only the bracket's own curves matter
        return self._brackets[b].should_stop(trial, step, value, mates)


RULES: dict[str, type[StoppingRule]] = {
    "median": MedianRule, "asha": AshaRule, "hyperband": HyperbandRule,
}
# What each rule reads from the config; the other known fields are ignored, so a
# config can switch rules by changing `rule` alone.
FIELDS: dict[str, tuple[str, ...]] = {
    "median": ("min_steps", "min_trials", "max_steps"),
    "asha": ("min_steps", "reduction_factor", "max_steps"),
    "hyperband": ("max_steps", "min_steps", "reduction_factor"),
}
KNOWN = ("rule", "min_steps", "reduction_factor", "max_steps", "min_trials")


def make_rule(config: Mapping[str, Any] | None) -> StoppingRule | None:
    """The rule a spec's ``early_stopping`` section describes (None: no early stopping)."""
    if config is None:
        return None
    unknown = sorted(set(config) - set(KNOWN))
    if unknown:
        raise ValueError(f"early_stopping.{unknown[0]}: {config[unknown[0]]!r} is not a "
                         f"field; allowed: {', '.join(KNOWN)}")
    name = config.get("rule")
    if name not in RULES:
        raise ValueError(f"early_stopping.rule: {name!r} is not a rule; "
                         f"allowed: {', '.join(RULES)}")
    kwargs = {k: config[k] for k in FIELDS[name] if config.get(k) is not None}
    return RULES[name](**kwargs)
