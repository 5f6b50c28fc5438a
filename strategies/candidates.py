"""Candidate points for ``gp_ei``'s acquisition search, in the unit cube of a mixed space.

Local candidates are moves around *centres*: the best observed points and, so that one
good category cannot hide the others, the best observed point of every value of every
categorical parameter (a per-category incumbent). A move perturbs the ordered
coordinates (floats, ints) with Gaussian noise scaled by the GP's length-scales, and
treats categorical coordinates the way the kernel does, as unordered: a move keeps
them, or resamples exactly one of them uniformly among its other values. (Perturbing
an encoded category with Gaussian noise and snapping would only ever reach the
neighbouring codes, an ordering the Hamming kernel does not have.)
"""

from __future__ import annotations

import numpy as np

LOCAL_TOP = 5  # best points overall whose neighbourhoods are searched
LOCAL_PER = 64  # moves per centre and scale: 128 per centre, cheap next to the GP fit
SCALES = (0.02, 0.2, 1.0)  # step sizes, in multiples of half a length-scale: polish, refine, jump
SD_RANGE = (0.01, 0.2)  # half a length-scale, clipped: never frozen, never global
SWAP_SHARE = 0.5  # share of moves that also resample one categorical coordinate


def centres(x: np.ndarray, y: np.ndarray, n_values: np.ndarray,
            per_category: bool = True) -> np.ndarray:
    """Indices of the best ``LOCAL_TOP`` points, then each category value's best point."""
    order = np.argsort(y, kind="stable")
    picked = list(order[:LOCAL_TOP])
    if per_category:
        for j in np.flatnonzero(n_values):
            codes = np.floor(x[order, j] * n_values[j]).astype(int)
            for v in range(int(n_values[j])):
                hit = np.flatnonzero(codes == v)
                if len(hit):
                    picked.append(order[hit[0]])
    return np.array(list(dict.fromkeys(picked)), dtype=int)


def resample_one_category(u: np.ndarray, n_values: np.ndarray,
                          rng: np.random.Generator) -> np.ndarray:
    """Each row with one categorical coordinate moved to a uniformly chosen other value."""
    cats = np.flatnonzero(n_values > 1)
    out = u.copy()
    if not len(cats):
        return out
    which = cats[rng.integers(len(cats), size=len(u))]
    k = n_values[which].astype(int)
    cur = np.minimum(np.floor(u[np.arange(len(u)), which] * k), k - 1).astype(int)
    new = (cur + 1 + rng.integers(np.iinfo(np.int32).max, size=len(u)) % (k - 1)) % k
    out[np.arange(len(u)), which] = (new + 0.5) / k
    return out


def category_swaps(t: np.ndarray, n_values: np.ndarray) -> np.ndarray:
    """``t`` with exactly one categorical coordinate changed, every way (ordered part kept)."""
    rows = []
    for j in np.flatnonzero(n_values > 1):
        k = int(n_values[j])
        for v in range(k):
            code = (v + 0.5) / k
            if abs(code - t[j]) > 1e-9:
                row = t.copy()
                row[j] = code
                rows.append(row)
    return np.array(rows).reshape(-1, len(t))


def local_moves(x: np.ndarray, y: np.ndarray, n_values: np.ndarray, ls: np.ndarray,
                rng: np.random.Generator, per_category: bool = True) -> np.ndarray:
    """Moves around every centre (rows not yet snapped to the discrete values)."""
    d = x.shape[1]
    is_cat = n_values > 0
    sd = np.where(is_cat, 0.0, np.clip(0.5 * ls, *SD_RANGE))
    out = []
    for t in x[centres(x, y, n_values, per_category)]:
        for scale in SCALES:
            moves = t + rng.normal(size=(LOCAL_PER, d)) * sd * scale
            swap = rng.random(LOCAL_PER) < SWAP_SHARE
            moves[swap] = resample_one_category(moves[swap], n_values, rng)
            out.append(moves)
        out.append(category_swaps(t, n_values))
        out.append(t[None])
    return np.vstack(out)
