"""Gaussian-process regression for ``gp_ei``: Matern-5/2 ARD kernel, MAP hyperparameters.

Pure numpy/scipy. Inputs live in the unit cube of :class:`SearchSpace`; categorical
coordinates use an exact (Hamming) distance so unordered values are never treated as
neighbours. Hyperparameters (inverse squared length-scales, signal variance, noise) are
fitted by maximising the marginal likelihood plus log-priors with L-BFGS-B and analytic
gradients, because fitting dominates proposal time.

Observations can carry their own noise variance: real trials use the fitted noise,
while fantasies (pending, failed and earlier batch points) are conditioned with a tiny
noise so the posterior variance collapses there and the acquisition moves elsewhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.optimize as so

MIN_NOISE = 1e-6  # lower bound of the noise variance (standardised units)
FANTASY_NOISE = 1e-6
_SQRT5 = math.sqrt(5.0)


def matern52(r2: np.ndarray) -> np.ndarray:
    r = np.sqrt(5.0 * r2)
    return (1.0 + r + r * r / 3.0) * np.exp(-r)


def matern52_d(r2: np.ndarray) -> np.ndarray:
    """Derivative with respect to the squared distance (finite at 0, unlike via r)."""
    r = np.sqrt(5.0 * r2)
    return (-5.0 / 6.0) * (1.0 + r) * np.exp(-r)


def sq_diffs(a: np.ndarray, b: np.ndarray, is_cat: np.ndarray) -> np.ndarray:
    """Per-dimension squared differences, shape (d, len(a), len(b)); Hamming for categoricals."""
    diff = a.T[:, :, None] - b.T[:, None, :]
    out = diff * diff
    if is_cat.any():
        out[is_cat] = (np.abs(diff[is_cat]) > 1e-9).astype(float)
    return out


def _weighted_r2(a: np.ndarray, b: np.ndarray, w: np.ndarray, is_cat: np.ndarray) -> np.ndarray:
    """sum_d w_d * sqdiff_d without materialising the (d, n, m) tensor for continuous dims."""
    cont = ~is_cat
    sw = np.sqrt(w[cont])
    ac, bc = a[:, cont] * sw, b[:, cont] * sw
    r2 = (ac * ac).sum(1)[:, None] + (bc * bc).sum(1)[None, :] - 2.0 * ac @ bc.T
    np.maximum(r2, 0.0, out=r2)
    for j in np.flatnonzero(is_cat):
        r2 += w[j] * (np.abs(a[:, j, None] - b[None, :, j]) > 1e-9)
    return r2


@dataclass(frozen=True)
class Hyper:
    """Kernel hyperparameters: inverse squared length-scales, signal variance, noise variance."""

    inv_sq_ls: np.ndarray
    scale: float
    noise: float

    @property
    def length_scales(self) -> np.ndarray:
        return 1.0 / np.sqrt(self.inv_sq_ls)


def _log_prior(theta: np.ndarray, d: int) -> tuple[float, np.ndarray]:
    """Log-prior and its gradient in the raw (log) parametrisation.

    Length-scales: a log-symmetric prior peaked at length-scale 1 (as in Optuna) keeps
    them away from both degenerate ends with few points. Signal variance Gamma(2, 1) on
    standardised outputs; noise Gamma(1.1, 30) favours near-deterministic objectives.
    """
    w, s = np.exp(theta[:d]), math.exp(theta[d])
    en = math.exp(theta[d + 1])
    noise = MIN_NOISE + en
    lp = -(0.1 / w + 0.1 * w).sum() + (math.log(s) - s) + (0.1 * math.log(noise) - 30.0 * noise)
    g = np.empty(d + 2)
    g[:d] = 0.1 / w - 0.1 * w
    g[d] = 1.0 - s
    g[d + 1] = (0.1 / noise - 30.0) * en
    return lp, g


def _neg_log_posterior(
    theta: np.ndarray, sq: np.ndarray, y: np.ndarray
) -> tuple[float, np.ndarray]:
    d, n = sq.shape[0], len(y)
    w, s = np.exp(theta[:d]), math.exp(theta[d])
    en = math.exp(theta[d + 1])
    r2 = np.tensordot(w, sq, axes=1)
    km = matern52(r2)
    k = s * km
    k[np.diag_indices(n)] += MIN_NOISE + en
    try:
        c = sla.cho_factor(k, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        return 1e25, np.zeros_like(theta)
    alpha = sla.cho_solve(c, y, check_finite=False)
    kinv = sla.cho_solve(c, np.eye(n), check_finite=False)
    nll = 0.5 * y @ alpha + np.log(np.diag(c[0])).sum()
    wmat = np.outer(alpha, alpha) - kinv  # 2 * dlogL/dK
    g = np.empty_like(theta)
    dk = wmat * (s * matern52_d(r2))
    g[:d] = -0.5 * np.tensordot(sq, dk, axes=([1, 2], [0, 1])) * w
    g[d] = -0.5 * np.sum(wmat * k) + 0.5 * np.trace(wmat) * (MIN_NOISE + en)
    g[d + 1] = -0.5 * np.trace(wmat) * en
    lp, glp = _log_prior(theta, d)
    return nll - lp, g - glp


def fit_hyper(x: np.ndarray, y: np.ndarray, is_cat: np.ndarray) -> Hyper:
    """MAP hyperparameters from a few deterministic starts (no state between proposals)."""
    d = x.shape[1]
    sq = sq_diffs(x, x, is_cat)
    starts = [
        np.r_[np.zeros(d), 0.0, math.log(1e-2)],
        np.r_[np.full(d, math.log(4.0)), 0.0, math.log(1e-4)],
    ]
    best: so.OptimizeResult | None = None
    for t0 in starts:
        res = so.minimize(
            _neg_log_posterior, t0, args=(sq, y), jac=True, method="L-BFGS-B",
            bounds=[(-9.0, 9.0)] * d + [(-6.0, 4.0), (-20.0, 2.0)],
            options={"maxiter": 200, "gtol": 1e-4},
        )
        if best is None or res.fun < best.fun:
            best = res
    assert best is not None
    t = best.x
    return Hyper(np.exp(t[:d]), math.exp(t[d]), MIN_NOISE + math.exp(t[d + 1]))


class GP:
    """Posterior of a zero-mean GP with fixed hyperparameters, one noise level per point."""

    def __init__(self, x: np.ndarray, y: np.ndarray, noise: np.ndarray, hyper: Hyper,
                 is_cat: np.ndarray) -> None:
        self.x, self.y, self.noise, self.hyper, self.is_cat = x, y, noise, hyper, is_cat
        k = hyper.scale * matern52(_weighted_r2(x, x, hyper.inv_sq_ls, is_cat))
        k[np.diag_indices(len(y))] += noise
        jitter = 0.0
        while True:
            try:
                self._chol = sla.cho_factor(k + jitter * np.eye(len(y)), lower=True,
                                            check_finite=False)
                break
            except np.linalg.LinAlgError:
                jitter = max(1e-9, jitter * 10.0)
        self._alpha = sla.cho_solve(self._chol, y, check_finite=False)

    def condition(self, x_new: np.ndarray, y_new: np.ndarray, noise: float) -> GP:
        """A GP with extra observations and the same hyperparameters (fantasies)."""
        return GP(np.vstack([self.x, x_new]), np.r_[self.y, y_new],
                  np.r_[self.noise, np.full(len(y_new), noise)], self.hyper, self.is_cat)

    def predict(self, xq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and variance of the latent function at ``xq`` (m, d)."""
        h = self.hyper
        kq = h.scale * matern52(_weighted_r2(xq, self.x, h.inv_sq_ls, self.is_cat))
        mean = kq @ self._alpha
        v = sla.solve_triangular(self._chol[0], kq.T, lower=True, check_finite=False)
        var = np.maximum(h.scale - (v * v).sum(0), 1e-12)
        return mean, var

    def predict_grad(self, xq: np.ndarray) -> tuple[np.ndarray, ...]:
        """Mean, variance and their gradients in the continuous coordinates (zero elsewhere)."""
        h = self.hyper
        r2 = _weighted_r2(xq, self.x, h.inv_sq_ls, self.is_cat)
        kq = h.scale * matern52(r2)
        dk_dr2 = h.scale * matern52_d(r2)  # (m, n)
        mean = kq @ self._alpha
        kinv_kq = sla.cho_solve(self._chol, kq.T, check_finite=False)  # (n, m)
        var = np.maximum(h.scale - np.einsum("mn,nm->m", kq, kinv_kq), 1e-12)
        cont = np.flatnonzero(~self.is_cat)
        xc, tc = xq[:, cont], self.x[:, cont]
        wc = 2.0 * h.inv_sq_ls[cont]
        dmean = np.zeros_like(xq)
        dvar = np.zeros_like(xq)
        a = dk_dr2 * self._alpha[None, :]  # (m, n)
        b = dk_dr2 * kinv_kq.T
        # d r2 / d x_c = 2 w_c (x_c - t_c): sum_n coef_mn (x_mc - t_nc)
        dmean[:, cont] = wc * (a.sum(1)[:, None] * xc - a @ tc)
        dvar[:, cont] = -2.0 * wc * (b.sum(1)[:, None] * xc - b @ tc)
        return mean, var, dmean, dvar
