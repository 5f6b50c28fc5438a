"""Gaussian-process regression for ``gp_ei``: Matern-5/2 ARD kernel, MAP hyperparameters.

Pure numpy/scipy. Inputs live in the unit cube of :class:`SearchSpace`; categorical
coordinates use an exact (Hamming) distance so unordered values are never treated as
neighbours. Hyperparameters (inverse squared length-scales, signal variance, noise) are
fitted by maximising the marginal likelihood plus log-priors with L-BFGS-B and analytic
gradients, because fitting dominates proposal time.

The prior mean is a constant fitted with the other hyperparameters (a profile in the
marginal likelihood, so the priors below, which assume standardised data, see data
centred on the fitted level rather than on an arbitrary shift).

Observations can carry their own noise variance: real trials use the fitted noise,
while fantasies (pending, failed and earlier batch points) are conditioned with a tiny
noise so the posterior variance collapses there and the acquisition moves elsewhere.

Numerics fail softly: the Cholesky factorisation adds a bounded, growing jitter and
raises :class:`FitError` beyond it (non-finite inputs included), and a hyperparameter
fit that finds no finite optimum falls back to the neutral starting point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.optimize as so

MIN_NOISE = 1e-6  # lower bound of the noise variance (standardised units)
FANTASY_NOISE = 1e-6  # fantasies: variance collapses there, still factorisable
JITTERS = (0.0, 1e-9, 1e-7, 1e-5, 1e-3)  # tried in turn (x signal variance); then FitError
_FAILED_FIT = 1e25  # objective value the fit sees where K cannot be factorised
LS_PRIOR = 0.1  # log-prior -0.1 (w + 1/w) on inverse squared length-scales: peak at 1
NOISE_PRIOR = (1.1, 30.0)  # Gamma(shape, rate) on the noise: mean 0.04, near-deterministic
LOG_BOUNDS = ((-9.0, 9.0), (-6.0, 4.0), (-20.0, 2.0))  # log w, log signal, log extra noise
FIT_STARTS = (0.0, math.log(4.0))  # log w of the starts: length-scale 1 and 0.5
VAR_FLOOR = 1e-12  # posterior variance floor: keeps sqrt and log-EI finite at data points
FIT_OPTIONS = {"maxiter": 200, "gtol": 1e-4}  # converges in tens of steps; bound the worst


class FitError(ValueError):
    """The kernel matrix could not be factorised (non-finite, or singular beyond jitter)."""


def cholesky(k: np.ndarray, scale: float) -> tuple[np.ndarray, bool]:
    """Lower Cholesky factor with the smallest jitter of ``JITTERS`` that works."""
    if not np.all(np.isfinite(k)):
        raise FitError("kernel matrix has non-finite entries")
    eye = np.eye(len(k))
    for jitter in JITTERS:
        try:
            return sla.cho_factor(k + jitter * scale * eye, lower=True, check_finite=False)
        except np.linalg.LinAlgError:
            continue
    raise FitError(f"kernel matrix not positive definite with jitter {JITTERS[-1]:g}")


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
    mean: float = 0.0  # constant prior mean (fitted; 0 = data's own zero)

    @property
    def length_scales(self) -> np.ndarray:
        return 1.0 / np.sqrt(self.inv_sq_ls)


def _log_prior(theta: np.ndarray, d: int) -> tuple[float, np.ndarray]:
    """Log-prior and its gradient in the raw (log) parametrisation.

    Length-scales: a log-symmetric prior peaked at length-scale 1 (as in Optuna) keeps
    them away from both degenerate ends with few points. Signal variance Gamma(2, 1) on
    standardised outputs; noise Gamma(1.1, 30) favours near-deterministic objectives.
    The constant mean (last entry) has a flat prior within its bounds.
    """
    w, s = np.exp(theta[:d]), math.exp(theta[d])
    en = math.exp(theta[d + 1])
    noise = MIN_NOISE + en
    shape, rate = NOISE_PRIOR
    lp = (-(LS_PRIOR / w + LS_PRIOR * w).sum() + (math.log(s) - s)
          + ((shape - 1.0) * math.log(noise) - rate * noise))
    g = np.zeros(len(theta))
    g[:d] = LS_PRIOR / w - LS_PRIOR * w
    g[d] = 1.0 - s
    g[d + 1] = ((shape - 1.0) / noise - rate) * en
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
    fit_mean = len(theta) > d + 2
    yc = y - theta[d + 2] if fit_mean else y
    try:
        c = cholesky(k, s)
    except FitError:  # steer the line search back: gradient towards the neutral point
        return _FAILED_FIT * (1.0 + 0.5 * theta @ theta), _FAILED_FIT * theta
    alpha = sla.cho_solve(c, yc, check_finite=False)
    kinv = sla.cho_solve(c, np.eye(n), check_finite=False)
    nll = 0.5 * yc @ alpha + np.log(np.diag(c[0])).sum()
    wmat = np.outer(alpha, alpha) - kinv  # 2 * dlogL/dK
    g = np.empty_like(theta)
    dk = wmat * (s * matern52_d(r2))
    g[:d] = -0.5 * np.tensordot(sq, dk, axes=([1, 2], [0, 1])) * w
    g[d] = -0.5 * np.sum(wmat * k) + 0.5 * np.trace(wmat) * (MIN_NOISE + en)
    g[d + 1] = -0.5 * np.trace(wmat) * en
    if fit_mean:
        g[d + 2] = -alpha.sum()
    lp, glp = _log_prior(theta, d)
    return nll - lp, g - glp


MEAN_BOUND = 3.0  # the fitted mean stays within 3 sd of the (standardised) data's centre


def fit_hyper(x: np.ndarray, y: np.ndarray, is_cat: np.ndarray,
              fit_mean: bool = True) -> Hyper:
    """MAP hyperparameters from a few deterministic starts (no state between proposals).

    With ``fit_mean`` the constant prior mean is fitted too; otherwise it is 0.
    If no start reaches a finite optimum (a singular kernel everywhere), the neutral
    start (length-scales 1, unit signal, noise 1e-2) is returned rather than garbage.
    """
    d = x.shape[1]
    sq = sq_diffs(x, x, is_cat)
    extra = [float(np.mean(y))] if fit_mean else []
    # two starts: smooth (length-scale 1) and wiggly (0.5), with a little noise each
    starts = [np.r_[np.full(d, lw), 0.0, math.log(ln), extra]
              for lw, ln in zip(FIT_STARTS, (1e-2, 1e-4), strict=True)]
    lo, hi = float(np.min(y, initial=0.0)), float(np.max(y, initial=0.0))
    mean_bounds = [(lo - MEAN_BOUND, hi + MEAN_BOUND)] if fit_mean else []
    best: so.OptimizeResult | None = None
    for t0 in starts:
        res = so.minimize(
            _neg_log_posterior, t0, args=(sq, y), jac=True, method="L-BFGS-B",
            bounds=[LOG_BOUNDS[0]] * d + list(LOG_BOUNDS[1:]) + mean_bounds,
            options=FIT_OPTIONS,
        )
        if np.all(np.isfinite(res.x)) and res.fun < _FAILED_FIT and (
                best is None or res.fun < best.fun):
            best = res
    t = best.x if best is not None else starts[0]
    mean = float(t[d + 2]) if fit_mean else 0.0
    return Hyper(np.exp(t[:d]), math.exp(t[d]), MIN_NOISE + math.exp(t[d + 1]), mean)


class GP:
    """Posterior of a constant-mean GP with fixed hyperparameters, one noise level per point.

    Raises :class:`FitError` when the kernel matrix cannot be factorised.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, noise: np.ndarray, hyper: Hyper,
                 is_cat: np.ndarray) -> None:
        self.x, self.y, self.noise, self.hyper, self.is_cat = x, y, noise, hyper, is_cat
        k = hyper.scale * matern52(_weighted_r2(x, x, hyper.inv_sq_ls, is_cat))
        k[np.diag_indices(len(y))] += noise
        self._chol = cholesky(k, hyper.scale)
        self._alpha = sla.cho_solve(self._chol, y - hyper.mean, check_finite=False)

    def condition(self, x_new: np.ndarray, y_new: np.ndarray, noise: float) -> GP:
        """A GP with extra observations and the same hyperparameters (fantasies)."""
        return GP(np.vstack([self.x, x_new]), np.r_[self.y, y_new],
                  np.r_[self.noise, np.full(len(y_new), noise)], self.hyper, self.is_cat)

    def predict(self, xq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and variance of the latent function at ``xq`` (m, d)."""
        h = self.hyper
        kq = h.scale * matern52(_weighted_r2(xq, self.x, h.inv_sq_ls, self.is_cat))
        mean = h.mean + kq @ self._alpha
        v = sla.solve_triangular(self._chol[0], kq.T, lower=True, check_finite=False)
        var = np.maximum(h.scale - (v * v).sum(0), VAR_FLOOR)
        return mean, var

    def predict_grad(self, xq: np.ndarray) -> tuple[np.ndarray, ...]:
        """Mean, variance and their gradients in the continuous coordinates (zero elsewhere)."""
        h = self.hyper
        r2 = _weighted_r2(xq, self.x, h.inv_sq_ls, self.is_cat)
        kq = h.scale * matern52(r2)
        dk_dr2 = h.scale * matern52_d(r2)  # (m, n)
        mean = h.mean + kq @ self._alpha
        kinv_kq = sla.cho_solve(self._chol, kq.T, check_finite=False)  # (n, m)
        var = np.maximum(h.scale - np.einsum("mn,nm->m", kq, kinv_kq), VAR_FLOOR)
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
