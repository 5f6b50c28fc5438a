"""What every study plot shares: the trial protocol, the objective's scale, axis helpers.

The plots use matplotlib's object API (``Figure`` without pyplot): no global figure
manager and no backend switch, so drawing them inside a study, in a notebook or a user's
own script leaves that process's pyplot state (open figures, chosen backend) alone.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Iterable, Sequence
from typing import Any, Literal, Protocol

import numpy as np
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.ticker import LogFormatter, MaxNLocator

from amtune.strategies import Categorical, Numeric, SearchSpace

ValueScale = Literal["linear", "log", "symlog"]
DECADES = 2.0  # values spanning this many decades get a log axis
FAILED_COLOR = "#d62728"
STOPPED_COLOR = "#ff7f0e"
BEST_COLOR = "#d62728"
MUTED = "0.35"
DPI = 100


class TrialLike(Protocol):
    """The attributes of a trial record the plots and the report read.

    A protocol rather than the store's record class, so the plots do not depend on
    where that class lives (any object with these attributes will do)."""

    @property
    def number(self) -> int: ...
    @property
    def round(self) -> int: ...
    @property
    def status(self) -> str: ...
    @property
    def run_id(self) -> str: ...
    @property
    def params(self) -> dict[str, Any]: ...
    @property
    def value(self) -> float | None: ...
    @property
    def attempts(self) -> int: ...
    @property
    def duration_s(self) -> float | None: ...
    @property
    def reason(self) -> str | None: ...


def direction(sign: float) -> str:
    return "minimize" if sign > 0 else "maximize"


def has_value(r: TrialLike) -> bool:
    return r.value is not None and math.isfinite(r.value)


def completed(records: Iterable[TrialLike]) -> list[TrialLike]:
    """Completed trials with a finite objective, by trial number."""
    return sorted((r for r in records if r.status == "completed" and has_value(r)),
                  key=lambda r: r.number)


def ranked(records: Iterable[TrialLike], sign: float) -> list[TrialLike]:
    """Completed trials, best first (ties to the earlier trial)."""
    return sorted(completed(records), key=lambda r: (sign * float(r.value or 0.0), r.number))


def in_space(records: Iterable[TrialLike], space: SearchSpace) -> list[TrialLike]:
    """Trials whose params the space can place: not a killed run without params, nor a
    category the space no longer has (a study resumed with an edited space)."""
    out = []
    for r in records:
        try:
            space.encode(r.params)
        except (ValueError, TypeError):  # SpaceError is a ValueError
            continue
        out.append(r)
    return out


def value_scale(values: Sequence[float], sign: float = 1.0) -> ValueScale:
    """Log when same-signed values span decades, else linear.

    A curve of losses from 0.4 down to 0.02 is a flat line on a linear axis once the
    first trials are in; on a log axis the later progress is visible. A log axis
    stretches the end near zero, so it is used from one decade on when the best values
    are there (positive values minimised, negative ones maximised) and only from
    DECADES on otherwise (an accuracy near 1 is better read on a linear axis). Zeros
    (an error of 0) or negative values cannot go on a log axis: they get a symmetric
    log axis, linear within the smallest non-zero magnitude."""
    v = np.asarray([x for x in values if math.isfinite(x)], dtype=float)
    if v.size < 2 or (v.min() < 0 < v.max()):
        return "linear"
    mags = np.abs(v[v != 0])
    near_zero_is_best = (sign > 0) == (v.max() > 0)
    need = 1.0 if near_zero_is_best else DECADES
    if mags.size < 2 or math.log10(mags.max() / mags.min()) < need:
        return "linear"
    return "log" if v.min() > 0 else "symlog"


def symlog_threshold(values: Sequence[float]) -> float:
    mags = [abs(x) for x in values if math.isfinite(x) and x != 0]
    return min(mags) if mags else 1.0


def apply_value_scale(ax: Axes, axis: Literal["x", "y"], values: Sequence[float],
                      sign: float) -> ValueScale:
    scale = value_scale(values, sign)
    setter = ax.set_yscale if axis == "y" else ax.set_xscale
    if scale == "symlog":
        setter("symlog", linthresh=symlog_threshold(values))
    else:
        setter(scale)
    if scale == "log":
        plain_log_labels(ax.yaxis if axis == "y" else ax.xaxis)
    return scale


class _PlainLog(LogFormatter):
    """Log-axis labels as plain numbers (0.02, 0.05) instead of 2x10^-2: a metric is
    read as a number. The parent class still decides which ticks get a label."""

    def __call__(self, x: float, pos: int | None = None) -> str:
        if not super().__call__(x, pos):
            return ""
        return f"{x:g}".replace("e-0", "e-").replace("e+0", "e").replace("e+", "e")


def plain_log_labels(axis: Axis) -> None:
    axis.set_major_formatter(_PlainLog(labelOnlyBase=True))
    axis.set_minor_formatter(_PlainLog(labelOnlyBase=False))


def warp_values(values: Sequence[float], scale: ValueScale, linthresh: float = 1.0) -> np.ndarray:
    """Values in the space their axis shows them in (for colours and the surrogate)."""
    v = np.asarray(values, dtype=float)
    if scale == "log":
        return np.log10(v)
    if scale == "symlog":
        return np.sign(v) * np.log10(1.0 + np.abs(v) / linthresh)
    return v


def short(label: str, n: int = 16) -> str:
    return label if len(label) <= n else label[: n - 1] + "…"


def reverse_log_ticks(low: float, high: float) -> list[float]:
    """0.9, 0.99, 0.999: the values a reverse-log axis (momentum, a decay) is read in."""
    vals = [1 - 10.0 ** -k for k in range(1, 10) if low < 1 - 10.0 ** -k <= high]
    vals = [low, *vals] if not vals or vals[0] - low > 0.05 else vals
    return vals if len(vals) >= 2 else [low, high]


def _reverse_log(x: np.ndarray) -> np.ndarray:
    return -np.log1p(-np.clip(x, None, 1 - 1e-12))


def set_param_xaxis(ax: Axes, p: Numeric | Categorical) -> None:
    """Scale the x axis the way the search space scales the parameter, over its whole
    range (where the strategy could have looked, not only where it did)."""
    if isinstance(p, Categorical):
        labels = [short(str(v)) for v in p.values]
        rotate = sum(map(len, labels)) > 28
        ax.set_xticks(range(p.n_values), labels, rotation=25 if rotate else 0,
                      ha="right" if rotate else "center", rotation_mode="anchor")
        ax.set_xlim(-0.5, p.n_values - 0.5)
        return
    if p.scale == "log":
        ax.set_xscale("log")
        plain_log_labels(ax.xaxis)
        pad = 10 ** (0.03 * np.log10(p.high / p.low))
        ax.set_xlim(p.low / pad, p.high * pad)
        return
    if p.scale == "reverse_log":
        ax.set_xscale("function", functions=(_reverse_log, lambda y: -np.expm1(-y)))
        ticks = reverse_log_ticks(p.low, p.high)
        ax.set_xticks(ticks, [fmt(v) for v in ticks])
        lo, hi = _reverse_log(np.array([p.low, p.high]))
        ax.set_xlim(-np.expm1(-(lo - 0.03 * (hi - lo))), -np.expm1(-(hi + 0.03 * (hi - lo))))
        return
    pad = 0.5 if p.kind == "int" else 0.03 * (p.high - p.low)
    if p.kind == "int":
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(p.low - pad, p.high + pad)


def param_label(p: Numeric | Categorical) -> str:
    if isinstance(p, Categorical):
        return p.name
    return f"{p.name} ({p.scale.replace('_', ' ')})" if p.scale != "linear" else p.name


def fmt(v: Any) -> str:
    """A value as a table or a tick shows it: 4 significant digits, no float noise."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return str(v)
    if isinstance(v, int) or (float(v).is_integer() and abs(v) < 1e6):
        return str(int(v))
    return f"{v:.4g}"


def figure(width: float, height: float) -> Figure:
    """A figure whose layout (colorbars, legends outside the axes) is solved at draw time."""
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def header(fig: Figure, title: str, subtitle: str) -> None:
    """A bold title and a grey subtitle (wrapped to the width) above the plot area.

    The strip is reserved in inches, so one helper fits figures of any size; the
    layout engine then fits axes, colorbars and legends below it."""
    h, w = fig.get_figheight(), fig.get_figwidth()
    lines = textwrap.wrap(subtitle, width=max(40, int(w * 100 / 6.8))) or [""]
    fig.text(0.012, 1 - 0.14 / h, title, ha="left", va="top", fontsize=13, fontweight="bold")
    fig.text(0.012, 1 - 0.43 / h, "\n".join(lines), ha="left", va="top", fontsize=9,
             color=MUTED, linespacing=1.4)
    top = 1 - (0.62 + 0.18 * len(lines)) / h
    engine = fig.get_layout_engine()
    if isinstance(engine, ConstrainedLayoutEngine):
        engine.set(rect=(0.0, 0.0, 1.0, top))


def message_figure(title: str, subtitle: str, message: str) -> Figure:
    """A readable placeholder for a plot that cannot be drawn yet (too few trials)."""
    fig = figure(8, 3)
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=12, color=MUTED,
            transform=ax.transAxes, wrap=True)
    header(fig, title, subtitle)
    return fig


def png_bytes(fig: Figure) -> bytes:
    """PNG with a 256-colour palette: a third of the size of full colour for these plots
    (hundreds of translucent lines), which matters once they are inlined in a page."""
    from PIL import Image  # matplotlib's own dependency

    raw = io.BytesIO()
    fig.savefig(raw, format="png", dpi=DPI)
    raw.seek(0)
    with Image.open(raw) as im:
        small = im.convert("RGB").quantize(256, dither=Image.Dither.NONE)
    out = io.BytesIO()
    small.save(out, format="png", optimize=True)
    return out.getvalue()
