"""Parallel coordinates: one vertical axis per parameter and one for the objective.

Each axis is laid out the way the search space scales its parameter (log-scale
parameters in log space, ticks in real units; categories at their own labels), so a
good region of a log-scale learning rate is a band, not a line squashed at one end.
Lines are coloured by the objective, best drawn last and darkest; failed trials are
drawn dashed into a "failed" mark on the objective axis, so failure regions show too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.collections import LineCollection
from matplotlib.colors import LogNorm, Normalize, SymLogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, MaxNLocator

from amtune.flows.plot_common import (
    BEST_COLOR,
    FAILED_COLOR,
    TrialLike,
    direction,
    figure,
    fmt,
    header,
    in_space,
    message_figure,
    param_label,
    ranked,
    reverse_log_ticks,
    short,
    symlog_threshold,
    value_scale,
    warp_values,
)
from amtune.strategies import Categorical, Numeric, SearchSpace

FAILED_GAP = 0.08  # failed trials end on the objective axis this far beyond its worst end
Ticks = list[tuple[float, str]]


def _is_decade(v: float) -> bool:
    return v > 0 and abs(math.log10(v) - round(math.log10(v))) < 1e-9


def _tick_labels(vals: Sequence[float], log: bool) -> list[str]:
    """Powers of ten as 10^k when every tick is one (a wide log axis), else plain numbers:
    a mixed 20, 50, 10^2, 200 reads worse than either."""
    if log and all(_is_decade(v) for v in vals):
        return [f"$10^{{{round(math.log10(v))}}}$" for v in vals]
    return [fmt(v) for v in vals]


def _log_ticks(low: float, high: float) -> list[float]:
    ks = range(math.ceil(math.log10(low) - 1e-9), math.floor(math.log10(high) + 1e-9) + 1)
    vals = [10.0 ** k for k in ks]
    if len(vals) < 3:  # under two decades: 1, 2, 5 times the decades, as a log axis would
        vals = [v for v in LogLocator(subs=(1.0, 2.0, 5.0)).tick_values(low, high)
                if low * (1 - 1e-9) <= v <= high * (1 + 1e-9)]
    if len(vals) < 2:
        vals = [float(v) for v in np.geomspace(low, high, 4)]
    while len(vals) > 7:
        vals = vals[::2]
    return vals


def _param_ticks(p: Numeric | Categorical) -> Ticks:
    if isinstance(p, Categorical):
        return [((i + 0.5) / p.n_values, short(str(v))) for i, v in enumerate(p.values)]
    if p.scale == "log":
        vals = _log_ticks(p.low, p.high)
    elif p.scale == "reverse_log":
        vals = reverse_log_ticks(p.low, p.high)
    else:
        vals = [v for v in MaxNLocator(5, integer=p.kind == "int").tick_values(p.low, p.high)
                if p.low <= v <= p.high]
    pos = p.encode(np.array(vals))
    return list(zip(map(float, pos), _tick_labels(vals, p.scale == "log"), strict=True))


def _param_positions(p: Numeric | Categorical, rs: Sequence[TrialLike],
                     rng: np.random.Generator) -> np.ndarray:
    if isinstance(p, Categorical):
        idx = np.array([p.index(r.params[p.name]) for r in rs], float)
        return (idx + 0.5 + rng.uniform(-0.25, 0.25, len(rs))) / p.n_values
    v = np.array([float(r.params[p.name]) for r in rs])
    u = p.encode(v)
    if p.kind == "int" and (p.n_values or 0) <= 30:  # spread lines over the value's cell
        cell = p.encode(v + 0.5) - p.encode(v - 0.5)
        u = u + rng.uniform(-0.25, 0.25, len(rs)) * cell
    return u


def _draw_axis(ax: Axes, x: float, ticks: Ticks) -> None:
    ax.plot([x, x], [0, 1], color="0.25", lw=1, zorder=1)
    for pos, label in ticks:
        ax.plot([x - 0.03, x], [pos, pos], color="0.25", lw=1, zorder=1)
        ax.text(x - 0.05, pos, label, ha="right", va="center", fontsize=8,
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.7, "pad": 0.5},
                zorder=6)


def parallel_figure(records: Sequence[TrialLike], *, study: str, metric: str, sign: float,
                    space: SearchSpace, seed: int = 0) -> Figure:
    usable = in_space(records, space)
    done = ranked(usable, sign)[::-1]  # worst first, so the best lines are drawn on top
    failed = [r for r in usable if r.status == "failed"]
    title = f"Parallel coordinates of {study}"
    subtitle = (f"one line per trial: {len(done)} completed"
                + (f", {len(failed)} failed (dashed)" if failed else "")
                + f" · colour: {metric} ({direction(sign)}), darker is better")
    if not done:
        return message_figure(title, subtitle, "No completed trial yet.")
    rng = np.random.default_rng(seed)
    d = space.dim
    fig = figure(min(14.0, max(8.0, 1.5 * (d + 1) + 2.5)), 5.2)
    ax = fig.add_subplot()
    cols = np.column_stack([_param_positions(p, done, rng) for p in space.params])
    values = [float(r.value) for r in done]  # type: ignore[arg-type]
    scale = value_scale(values, sign)
    thresh = symlog_threshold(values)
    lo, hi = min(values), max(values)
    norm: Normalize
    if scale == "log":
        norm = LogNorm(lo, hi)
    elif scale == "symlog":
        norm = SymLogNorm(thresh, vmin=lo, vmax=hi)
    else:
        norm = Normalize(lo, hi if hi > lo else lo + 1)
    w = warp_values(values, scale, thresh)
    wlo, whi = float(w.min()), float(w.max())
    obj = (w - wlo) / (whi - wlo) if whi > wlo else np.full(len(w), 0.5)
    cmap = colormaps["viridis" if sign > 0 else "viridis_r"]
    xs = np.arange(d + 1)
    n = len(done)
    # One collection for all lines (drawn in order: worst first), fast for thousands.
    ys = np.column_stack([cols, obj])
    rgba = cmap(norm(np.array(values)))
    # Many trials: fainter and thinner lines, the best ones still stand out.
    floor = 0.3 if n <= 50 else max(0.04, 15 / n)
    rgba[:, 3] = floor + (0.9 - floor) * (np.arange(n) / max(n, 1)) ** (1 if n <= 50 else 2)
    ax.add_collection(LineCollection([np.column_stack([xs, y]) for y in ys[:-1]], zorder=2,
                                     colors=rgba[:-1], linewidths=1.2 if n <= 200 else 0.7))
    ax.plot(xs, ys[-1], color=BEST_COLOR, lw=2.6, zorder=5, label=f"best: trial {done[-1].number}")
    failed_y = 1 + FAILED_GAP if sign > 0 else -FAILED_GAP  # low values at the bottom
    if failed:
        fcols = np.column_stack([_param_positions(p, failed, rng) for p in space.params])
        ax.add_collection(LineCollection(
            [np.column_stack([xs, [*row, failed_y]]) for row in fcols], colors=FAILED_COLOR,
            linewidths=0.9, linestyles="--", alpha=min(0.55, max(0.12, 12 / len(failed))),
            zorder=1))
        ax.scatter([d], [failed_y], marker="x", s=40, color=FAILED_COLOR, zorder=4)
    for j, p in enumerate(space.params):
        _draw_axis(ax, j, _param_ticks(p))
    vticks = (_log_ticks(lo, hi) if scale == "log" and hi > lo else
              [v for v in MaxNLocator(5).tick_values(lo, hi) if lo <= v <= hi] or [lo])
    wt = warp_values(vticks, scale, thresh)
    tpos = (wt - wlo) / (whi - wlo) if whi > wlo else np.full(len(wt), 0.5)
    obj_ticks = list(zip(map(float, tpos), _tick_labels(vticks, False), strict=True))
    _draw_axis(ax, d, obj_ticks + ([(failed_y, "failed")] if failed else []))
    ax.set_xticks(xs, [param_label(p) for p in space.params] + [metric],
                  rotation=20 if d > 5 else 0)
    ax.set_xlim(-0.45, d + 0.2)
    ax.set_ylim(min(-0.04, failed_y - 0.04) if failed else -0.04,
                max(1.04, failed_y + 0.04) if failed else 1.04)
    ax.set_yticks([])
    ax.spines[["left", "right", "top"]].set_visible(False)
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), frameon=False, fontsize=9,
              borderaxespad=0.2)
    header(fig, title, subtitle)
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, fraction=0.03, pad=0.01)
    bar.set_label(metric)
    bar.set_ticks(vticks, labels=_tick_labels(vticks, False))  # the objective axis' ticks
    bar.ax.minorticks_off()
    return fig
