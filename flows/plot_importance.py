"""Parameter importance: permutation importance on a random-forest surrogate.

A random forest fitted to the completed trials stands in for the objective; shuffling
one parameter's column and measuring how much the forest's fit (R²) drops says how much
the objective depends on that parameter. It is model-agnostic, needs only
scikit-learn, and handles categorical and log-scale parameters once they are encoded
the way the strategies see them: ``SearchSpace.encode`` (log-scale parameters in log
space, categories as ordinal cells). The objective is taken on the scale its plots use
(log when it spans decades), so one huge loss does not decide the ranking.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from amtune.flows.plot_common import (
    MUTED,
    TrialLike,
    completed,
    direction,
    figure,
    header,
    in_space,
    message_figure,
    symlog_threshold,
    value_scale,
    warp_values,
)
from amtune.strategies import SearchSpace

MIN_TRIALS = 5
METHOD = "permutation importance on a random-forest surrogate (scikit-learn)"


@dataclass(frozen=True)
class Importance:
    """Share of the surrogate's fit lost when each parameter is shuffled (sums to 1)."""

    names: tuple[str, ...]
    share: tuple[float, ...]
    spread: tuple[float, ...]  # standard deviation over the shuffles, same units
    n_trials: int
    oob_r2: float | None  # how well the forest predicts trials it did not see

    def ranking(self) -> list[tuple[str, float]]:
        return sorted(zip(self.names, self.share, strict=True), key=lambda t: -t[1])


def parameter_importance(records: Sequence[TrialLike], space: SearchSpace, *, sign: float = 1.0,
                         seed: int = 0, n_repeats: int = 10) -> Importance | None:
    """Importance of each parameter, or None with fewer than MIN_TRIALS completed trials
    or an objective that never changed (nothing to explain)."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.inspection import permutation_importance

    done = in_space(completed(records), space)
    if len(done) < MIN_TRIALS:
        return None
    values = [float(r.value) for r in done]  # type: ignore[arg-type]
    y = warp_values(values, value_scale(values, sign), symlog_threshold(values))
    if np.ptp(y) == 0:
        return None
    x = space.encode_many([r.params for r in done])
    forest = RandomForestRegressor(n_estimators=100, min_samples_leaf=1, oob_score=True,
                                   random_state=seed, n_jobs=1)
    with warnings.catch_warnings():  # few trials: some are in every bootstrap sample
        warnings.simplefilter("ignore", UserWarning)
        forest.fit(x, y)
    oob = float(forest.oob_score_) if np.isfinite(forest.oob_score_) else None
    result = permutation_importance(forest, x, y, n_repeats=n_repeats, random_state=seed,
                                    n_jobs=1)
    mean = np.clip(result.importances_mean, 0.0, None)
    total = float(mean.sum())
    if total <= 0:
        share, spread = np.zeros_like(mean), np.zeros_like(mean)
    else:
        share, spread = mean / total, result.importances_std / total
    return Importance(space.names, tuple(map(float, share)), tuple(map(float, spread)),
                      len(done), oob)


def importance_figure(records: Sequence[TrialLike], *, study: str, metric: str, sign: float,
                      space: SearchSpace, seed: int = 0) -> Figure:
    """Horizontal bars, most important at the top, with the method and fit quality said."""
    title = f"Parameter importance in {study}"
    imp = parameter_importance(records, space, sign=sign, seed=seed)
    n_done = len(completed(records))
    if imp is None:
        why = (f"Not enough trials yet: {n_done} completed, importance needs {MIN_TRIALS}."
               if n_done < MIN_TRIALS else
               "Every completed trial has the same value: no parameter explains anything.")
        return message_figure(title, f"{metric} ({direction(sign)}) · {METHOD}", why)
    order = [n for n, _ in imp.ranking()][::-1]  # barh draws bottom-up
    idx = [imp.names.index(n) for n in order]
    share = np.array(imp.share)[idx] * 100
    spread = np.array(imp.spread)[idx] * 100
    fig = figure(8, 1.4 + 0.5 * len(order) + 0.72)
    ax = fig.add_subplot()
    ax.barh(range(len(order)), share, xerr=spread, color="C0", alpha=0.85, height=0.6,
            error_kw={"ecolor": MUTED, "capsize": 3, "lw": 1})
    ax.set_yticks(range(len(order)), order)
    for i, (s, e) in enumerate(zip(share, spread, strict=True)):
        ax.text(s + e + 1.0, i, f"{s:.0f}%", va="center", fontsize=9)
    ax.set_xlim(0, max(100.0, float((share + spread).max()) + 8))
    ax.set_xlabel("share of the surrogate's fit lost when the parameter is shuffled (%)")
    ax.spines[["top", "right"]].set_visible(False)
    fit = f", out-of-bag R² {imp.oob_r2:.2f}" if imp.oob_r2 is not None else ""
    header(fig, title, f"{metric} ({direction(sign)}) · {METHOD} · "
                       f"{imp.n_trials} completed trials{fit}")
    return fig
