"""Log expected improvement and its maximisation over a mixed unit-cube space.

log-EI (Ament et al., 2023) is computed in log space with an ``erfcx`` branch, so it
stays finite and informative where plain EI underflows to zero far from the incumbent;
that is what lets gradient ascent start anywhere.

Maximisation: score many candidates (scrambled Sobol plus perturbations of the best
observed points), start L-BFGS-B from the best few over the continuous coordinates
(all starts in one vectorised problem, as BoTorch does), then sweep each integer and
categorical coordinate exhaustively over its values, and alternate until nothing moves.
Discrete coordinates are therefore always exact values, never a rounded continuous optimum.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.optimize as so
from scipy.special import erfcx, ndtr

from amtune.strategies.gp import GP
from amtune.strategies.space import Categorical, Param, SearchSpace

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_SQRT_HALF_PI = math.sqrt(0.5 * math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_MAX_DISCRETE_SWEEP = 256  # larger int ranges sweep a subset around the current value
_SWEEP_NEAR = 32  # ... the 32 values on each side of the current one
_SWEEP_SPREAD = 128  # ... and about 128 values spread over the whole range
_POLISH_OPTIONS = {"maxiter": 200, "ftol": 1e-12, "gtol": 1e-6}  # log-EI is flat far out
_LS_CLIP = (1e-3, 1e3)  # coordinate scaling by length-scale, bounded for conditioning


def log_h(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log(z*Phi(z) + phi(z)) and its derivative Phi(z)/h(z), stable for all z."""
    z = np.asarray(z, dtype=float)
    out = np.empty_like(z)
    dout = np.empty_like(z)
    hi = z > -1.0
    zh = z[hi]
    h = zh * ndtr(zh) + np.exp(-0.5 * zh * zh) * _INV_SQRT_2PI
    out[hi] = np.log(h)
    dout[hi] = ndtr(zh) / h
    zl = z[~hi]
    r = _SQRT_HALF_PI * erfcx(-zl / math.sqrt(2.0))  # Phi(z)/phi(z)
    t = np.maximum(1.0 + zl * r, 1e-300)
    out[~hi] = -0.5 * zl * zl - _LOG_SQRT_2PI + np.log(t)
    dout[~hi] = r / t
    return out, dout


def log_ei(gp: GP, x: np.ndarray, best: float) -> np.ndarray:
    """log E[max(best - f(x), 0)] for minimisation."""
    mean, var = gp.predict(x)
    sd = np.sqrt(var)
    return log_h((best - mean) / sd)[0] + np.log(sd)


def log_ei_grad(gp: GP, x: np.ndarray, best: float) -> tuple[np.ndarray, np.ndarray]:
    mean, var, dmean, dvar = gp.predict_grad(x)
    sd = np.sqrt(var)
    z = (best - mean) / sd
    lh, dlh = log_h(z)
    dsd = dvar / (2.0 * sd[:, None])
    grad = dlh[:, None] * (-dmean / sd[:, None] - (z / sd)[:, None] * dsd) + dsd / sd[:, None]
    return lh + np.log(sd), grad


@dataclass(frozen=True)
class Discrete:
    """The encoded values of one integer or categorical coordinate, and how to snap to them."""

    index: int
    choices: np.ndarray  # sorted encoded values
    snap: Callable[[np.ndarray], np.ndarray]


def _snapper(p: Param) -> Callable[[np.ndarray], np.ndarray]:
    if isinstance(p, Categorical):
        k = p.n_values
        return lambda u: (np.minimum(np.floor(np.clip(u, 0.0, 1.0) * k), k - 1) + 0.5) / k
    return lambda u: p.encode(p.decode(u))


def discrete_coords(space: SearchSpace) -> list[Discrete]:
    """The integer and categorical coordinates of ``space``, with their exact codes."""
    out = []
    for j, p in enumerate(space.params):
        if isinstance(p, Categorical):
            choices = (np.arange(p.n_values) + 0.5) / p.n_values
        elif p.kind == "int":
            choices = p.encode(np.arange(int(p.low), int(p.high) + 1, dtype=float))
        else:
            continue
        out.append(Discrete(j, np.sort(choices), _snapper(p)))
    return out


def _polish_continuous(gp: GP, best: float, xs: np.ndarray, cont: np.ndarray,
                       ls: np.ndarray) -> np.ndarray:
    """L-BFGS-B on all starts at once; coordinates scaled by length-scales for conditioning."""
    m, k = len(xs), len(cont)
    if k == 0:
        return xs
    fixed = xs.copy()
    scale = np.clip(ls[cont], *_LS_CLIP)

    def fun(zflat: np.ndarray) -> tuple[float, np.ndarray]:
        x = fixed.copy()
        x[:, cont] = zflat.reshape(m, k) * scale
        v, g = log_ei_grad(gp, x, best)
        return -float(v.sum()), -(g[:, cont] * scale).ravel()

    bounds = [(0.0, 1.0 / s) for s in scale] * m
    res = so.minimize(fun, (xs[:, cont] / scale).ravel(), jac=True, method="L-BFGS-B",
                      bounds=bounds, options=_POLISH_OPTIONS)
    out = fixed.copy()
    out[:, cont] = np.clip(res.x.reshape(m, k) * scale, 0.0, 1.0)
    return out


def _sweep_discrete(gp: GP, best: float, xs: np.ndarray, vals: np.ndarray,
                    discrete: list[Discrete]) -> tuple[np.ndarray, np.ndarray, bool]:
    """One pass of exhaustive coordinate search over each discrete coordinate."""
    moved = False
    for dd in discrete:
        ch = dd.choices
        for i in range(len(xs)):
            cand = ch
            if len(ch) > _MAX_DISCRETE_SWEEP:
                pos = int(np.searchsorted(ch, xs[i, dd.index]))
                near = ch[max(0, pos - _SWEEP_NEAR) : pos + _SWEEP_NEAR]
                cand = np.unique(np.r_[ch[:: len(ch) // _SWEEP_SPREAD + 1], near])
            trial = np.repeat(xs[i : i + 1], len(cand), axis=0)
            trial[:, dd.index] = cand
            f = log_ei(gp, trial, best)
            j = int(np.argmax(f))
            if f[j] > vals[i] + 1e-12:
                xs[i], vals[i], moved = trial[j], f[j], True
    return xs, vals, moved


MAX_ROUNDS = 4  # polish/sweep alternations; in practice 1-2 until nothing moves


def maximise(gp: GP, best: float, candidates: np.ndarray,
             discrete: list[Discrete], n_starts: int = 10,
             max_rounds: int = MAX_ROUNDS) -> tuple[np.ndarray, np.ndarray]:
    """Locally optimised points sorted by decreasing log-EI (rows are distinct starts)."""
    vals = log_ei(gp, candidates, best)
    order = np.argsort(-vals, kind="stable")[:n_starts]
    xs, fx = candidates[order].copy(), vals[order].copy()
    is_discrete = np.isin(np.arange(candidates.shape[1]), [dd.index for dd in discrete])
    cont = np.flatnonzero(~is_discrete)
    ls = gp.hyper.length_scales
    for _ in range(max_rounds):
        new = _polish_continuous(gp, best, xs, cont, ls)
        fnew = log_ei(gp, new, best)
        better = fnew > fx
        xs[better], fx[better] = new[better], fnew[better]
        if not discrete:
            break
        xs, fx, moved = _sweep_discrete(gp, best, xs, fx, discrete)
        if not moved:
            break
    order = np.argsort(-fx, kind="stable")
    return xs[order], fx[order]
