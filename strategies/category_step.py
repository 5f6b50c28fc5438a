"""``gp_ei``'s forced category step: look for a better basin in another category.

One GP over a mixed space shares its continuous length-scales across categories, so
when most trials sit in the incumbent's category the model learns *that* category's
structure and mispredicts the others. Measured on switch5 (where the best category
depends on other coordinates than the runner-up): after 50 trials the shared GP put the
best category's optimum at +1.9 standardised units with sd 0.28 (log-EI -57) and gave the
coordinate that matters there a length-scale of 5.9, i.e. irrelevant.

The forced step therefore models each alternative category value on its own trials:
for every categorical coordinate and every value other than the incumbent's that has at
least ``MIN_TRIALS`` trials, a GP is fitted on those trials only (fantasies included,
so pending and same-batch points still repel), and log-EI against the value's own best
trial (see below) is maximised over candidates with the value fixed: local moves around
that subset's best points, Sobol points, and the global best points moved into the
value with local moves around them (the ordered part that is good in one category is
the first guess in another, where structure is shared). The values take turns (see
:func:`category_candidates`). With too few trials in every other value, the caller's
global model decides instead.

Before any of that, while the value has no trial (real or pending) within a local step
of the incumbent moved into it, the forced step proposes exactly that point: a joint
move that keeps the ordered part that is good in the incumbent's category. The value's
own GP cannot propose it: with few trials there, all far from the incumbent, every such
point has the prior mean and the largest variance goes to Sobol points instead (mixed6
seed 0: forced steps at regrets 3-15). On cond5, 2 of the 5 failing runs of 30 (linear
solved at x 0.4, regret 0.25; depth 13-14) had their incumbent at 0.12-0.16 in "tree".
Measured on the dev problems, seeds 0-29, batch 1, wrong-basin runs before -> after:
cond5 5 -> 2, mixed6 19 -> 17, switch5 4 -> 6 (there b's incumbent moves in a's
coordinates, which are dead for b, so it stays unexplored in a and most of a's forced
steps become transfers); limiting transfers to one visit in two, or to values whose
best trial is a transfer, gave 26 and 27 in all against 25 (benchmarks/README.md).

The value's own search is scored by log-EI against the value's own best trial, not the
global incumbent (``OWN_INCUMBENT``): a per-category incumbent. Against the global
incumbent, far below every point of a value whose few trials are poor, log-EI is decided
by the posterior sd: the step goes where the value's GP knows least (switch5 seed 1: a's
steps at the bounds of x0, x1, (0.68, 0), (1, 0), (0.45, 0), next to a's optimum but never
in its basin), and the value's best point is never refined. Against its own best it is a
search within the value; what it finds competes with the global incumbent once it is
better, and then becomes the incumbent. Measured on the dev problems, seeds 0-59,
wrong-basin runs before -> after, batch 1; batch 5: switch5 13 -> 7; 15 -> 9, cond5
4 -> 5; 6 -> 4, mixed6 35 -> 36; 32 -> 34 (benchmarks/README.md).

The value's GP predicts with the worst of its own trials as prior mean, as the global
model does (``gp_ei.py``): with the fitted mean and a handful of trials, log-EI was
largest wherever the few trials said nothing, and the forced steps on mixed6 landed
far off (regret 2.6-18 on seed 1, against 0.55-1.7 for the other model-based steps).
On the dev problems neither change separates from the previous version at 10 seeds
(mixed6 median 0.30-0.47 across the variants tried); benchmarks/README.md has the runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
from scipy.stats import qmc

from amtune.strategies.acquisition import log_ei
from amtune.strategies.candidates import SD_RANGE, local_moves
from amtune.strategies.gp import GP, FitError, fit_hyper

MIN_TRIALS = 3  # fewer real trials than this cannot fit length-scales: value skipped
N_TRANSFER = 5  # global best points moved into the value: as many as local centres (LOCAL_TOP)
N_SOBOL = 256  # space-filling candidates per value, next to the local moves
_SAME = 1e-9  # encoded codes are equal (exact values, compared in float)
TRANSFER_FIRST = True  # the incumbent moved into the value comes first (module docstring)
OWN_INCUMBENT = True  # log-EI against the value's own best trial, not the global one (docstring)


def alternatives(x: np.ndarray, n_values: np.ndarray, home: np.ndarray) -> list[tuple[int, float]]:
    """(coordinate, code) of every categorical value but the incumbent's, with enough trials."""
    out = []
    for slot, j in enumerate(np.flatnonzero(n_values > 0)):
        k = int(n_values[j])
        for v in range(k):
            code = (v + 0.5) / k
            if abs(code - home[slot]) > _SAME and (
                    np.abs(x[:, j] - code) < _SAME).sum() >= MIN_TRIALS:
                out.append((int(j), code))
    return out


def explored(point: np.ndarray, x: np.ndarray, is_cat: np.ndarray, ls: np.ndarray) -> bool:
    """Has a row of ``x`` the categories of ``point`` and its ordered part within a local step?

    A local step is half a length-scale, clipped, per ordered coordinate: the sd of a
    local move (``candidates.SD_RANGE``), so "explored" means a local move could have
    drawn it.
    """
    if not len(x):
        return False
    sd = np.clip(0.5 * ls, *SD_RANGE)
    same = np.all(np.abs(x[:, is_cat] - point[is_cat]) < _SAME, axis=1)
    near = np.all(np.abs(x[:, ~is_cat] - point[~is_cat]) <= sd[~is_cat], axis=1)
    return bool(np.any(same & near))


def category_candidates(gp: GP, n_real: int, n_values: np.ndarray, home: np.ndarray,
                        best: float, rng: np.random.Generator,
                        snap: Callable[[np.ndarray], np.ndarray],
                        turn: int, worst_mean: bool = True) -> np.ndarray | None:
    """Candidates in one alternative category value, by decreasing log-EI, or None.

    ``gp`` is the global model; its first ``n_real`` rows are real trials, the rest
    fantasies. ``home`` holds the incumbent's categorical codes (in coordinate order).
    ``best`` is the global incumbent's value; with ``OWN_INCUMBENT`` the value's own best
    real trial replaces it in the value's log-EI (module docstring). The alternatives
    take turns (``turn``, e.g. the count of forced steps so far): a value whose few
    trials all look bad still gets its share, which an EI contest between the values'
    models did not give it (switch5 seed 0: 10 of 10 forced steps
    went to the broad runner-up "c", none to the narrow best "a"). ``worst_mean``: the
    value's model predicts with its worst trial as prior mean (module docstring).
    """
    is_cat = n_values > 0
    x_all, y_all, noise_all = gp.x, gp.y, gp.noise
    real = np.arange(len(x_all)) < n_real
    options = alternatives(x_all[real], n_values, home)
    if not options:
        return None
    j, code = options[turn % len(options)]
    mask = np.abs(x_all[:, j] - code) < _SAME
    xs, ys = x_all[mask & real], y_all[mask & real]
    incumbent = x_all[real][int(np.argmin(y_all[real]))].copy()
    incumbent[j] = code
    if TRANSFER_FIRST and not explored(incumbent, x_all[mask], is_cat, gp.hyper.length_scales):
        return snap(incumbent[None])  # the guarantee (module docstring); fantasies count
    try:
        hyper = fit_hyper(xs, ys, is_cat)
        if worst_mean:
            hyper = dataclasses.replace(hyper, mean=float(ys.max()))
        noise = np.where(real[mask], hyper.noise, noise_all[mask])  # fantasies keep theirs
        sub = GP(x_all[mask], y_all[mask], noise, hyper, is_cat)
    except FitError:
        return None
    moves = local_moves(xs, ys, n_values, hyper.length_scales, rng)
    sob = qmc.Sobol(x_all.shape[1], scramble=True, rng=rng).random(N_SOBOL)
    x_real, y_real = x_all[real], y_all[real]
    top = x_real[np.argsort(y_real, kind="stable")[:N_TRANSFER]].copy()
    top[:, j] = code
    moved = local_moves(top, y_real[np.argsort(y_real, kind="stable")[:N_TRANSFER]],
                        n_values, hyper.length_scales, rng)
    cands = np.vstack([moves, sob, top, moved])
    cands[:, j] = code
    cands = snap(cands)
    if OWN_INCUMBENT:  # a search within the value (module docstring)
        best = float(ys.min())
    scores = log_ei(sub, cands, best)
    return cands[np.argsort(-scores, kind="stable")]
