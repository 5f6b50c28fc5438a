"""The study's plots: convergence, parameter importance, parallel coordinates, slices.

Pure functions of the trial records and the search space (matplotlib and scikit-learn,
no Prefect, no MLflow), so the study flow logs them as artifacts of the parent run and
``amtune report`` draws the same ones from what MLflow holds.

Every plot shows failed trials too: a study that failed half its trials must not look
like a clean curve. Values are plotted as the user sees them (``value``); ``sign`` is
+1 to minimise and -1 to maximise, as everywhere in the flow.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from amtune.flows.plot_common import (
    BEST_COLOR,
    FAILED_COLOR,
    STOPPED_COLOR,
    TrialLike,
    apply_value_scale,
    completed,
    direction,
    figure,
    fmt,
    has_value,
    header,
    in_space,
    message_figure,
    param_label,
    png_bytes,
    ranked,
    set_param_xaxis,
)
from amtune.flows.plot_importance import importance_figure
from amtune.flows.plot_parallel import parallel_figure
from amtune.strategies import Categorical, SearchSpace

PLOT_FILES = ("convergence.png", "importance.png", "parallel_coordinates.png", "slices.png")
__all__ = ["PLOT_FILES", "convergence_figure", "importance_figure", "make_plots",
           "parallel_figure", "render_plots", "slices_figure"]


def _counts(records: Sequence[TrialLike]) -> str:
    n = {s: sum(r.status == s for r in records) for s in ("completed", "failed", "stopped")}
    parts = [f"{n['completed']} completed"]
    parts += [f"{v} {k}" for k, v in n.items() if k != "completed" and v]
    return ", ".join(parts)


def _best_text(records: Sequence[TrialLike], sign: float) -> str:
    best = ranked(records, sign)
    return f"best {fmt(best[0].value)} (trial {best[0].number})" if best else "no completed trial"


def _failed_marks(ax: Axes, xs: Sequence[float], sign: float, label: str | None) -> None:
    """Failed trials have no value: a red cross along the worst edge (the top when
    minimising), in axes coordinates so they show whatever the y scale, and away from
    the best trials."""
    if xs:
        y = 0.965 if sign > 0 else 0.035
        ax.scatter(xs, [y] * len(xs), marker="x", s=36, color=FAILED_COLOR, linewidths=1.6,
                   transform=ax.get_xaxis_transform(), clip_on=False, zorder=4, label=label)


def convergence_figure(records: Sequence[TrialLike], *, study: str, metric: str,
                       sign: float) -> Figure:
    """Every trial by number, and the best-so-far step line through the completed ones."""
    shown = [r for r in records if r.status in ("completed", "failed", "stopped")]
    title = f"Convergence of {study}"
    subtitle = f"{metric} ({direction(sign)}) · {_counts(shown)} · {_best_text(shown, sign)}"
    done = completed(shown)
    if not shown:
        return message_figure(title, subtitle, "No finished trial yet.")
    fig = figure(9, 4.6)
    ax = fig.add_subplot()
    if done:
        xs = [r.number for r in done]
        ys = [float(r.value) for r in done]  # type: ignore[arg-type]
        ax.scatter(xs, ys, s=26, color="C0", alpha=0.75, zorder=3, label="completed")
        best, steps = math.inf, []
        for y in ys:
            best = min(best, sign * y)
            steps.append(sign * best)
        last = max(r.number for r in shown)
        ax.step([*xs, last], [*steps, steps[-1]], where="post", color=BEST_COLOR, lw=2,
                zorder=2, label="best so far")
        top = ranked(done, sign)[0]
        ax.scatter([top.number], [top.value], marker="*", s=220, color=BEST_COLOR,
                   edgecolor="white", linewidths=0.8, zorder=5, label=f"best: trial {top.number}")
    stopped = [r for r in shown if r.status == "stopped" and has_value(r)]
    if stopped:
        ax.scatter([r.number for r in stopped], [r.value for r in stopped], s=30,
                   facecolors="none", edgecolors=STOPPED_COLOR, marker="v", zorder=3,
                   label="stopped early (last value)")
    values = [float(r.value) for r in [*done, *stopped]]  # type: ignore[arg-type]
    if values:
        apply_value_scale(ax, "y", values, sign)
    else:
        ax.set_yticks([])
    failed = [r.number for r in shown if r.status == "failed" or
              (r.status == "stopped" and not has_value(r))]
    _failed_marks(ax, failed, sign, "failed (no value)")
    if failed:
        ax.margins(y=0.12)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
    ax.set_xlabel("trial number")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=9)
    header(fig, title, subtitle)
    return fig


def _jitter(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.18, 0.18, n)


def _positions(space: SearchSpace, name: str, rs: Sequence[TrialLike], seed: int) -> np.ndarray:
    p = space.params[space.names.index(name)]
    if isinstance(p, Categorical):
        return np.array([p.index(r.params[name]) for r in rs], float) + _jitter(len(rs), seed)
    return np.array([float(r.params[name]) for r in rs])


def slices_figure(records: Sequence[TrialLike], *, study: str, metric: str, sign: float,
                  space: SearchSpace, seed: int = 0) -> Figure:
    """The objective against each parameter, one panel each, coloured by trial number."""
    usable = in_space(records, space)
    done = completed(usable)
    failed = [r for r in usable if r.status == "failed"]
    stopped = [r for r in usable if r.status == "stopped" and has_value(r)]
    title = f"Slices of {study}"
    subtitle = (f"{metric} ({direction(sign)}) against each parameter · {_counts(usable)} · "
                "colour: trial number")
    if not done:
        return message_figure(title, subtitle, "No completed trial yet.")
    ncols = space.dim if space.dim <= 3 else min(3, math.ceil(math.sqrt(space.dim)))
    nrows = math.ceil(space.dim / ncols)
    fig = figure(3.6 * ncols + 1.2, 3.0 * nrows + 0.9)
    axes = fig.subplots(nrows, ncols, sharey=True, squeeze=False)
    ys = [float(r.value) for r in done]  # type: ignore[arg-type]
    numbers = [r.number for r in done]
    best = ranked(done, sign)[0]
    vmax = max(r.number for r in usable)
    sc = None
    for j, p in enumerate(space.params):
        ax = axes[j // ncols][j % ncols]
        x = _positions(space, p.name, done, seed + j)
        sc = ax.scatter(x, ys, c=numbers, cmap="viridis", vmin=0, vmax=max(vmax, 1), s=24,
                        alpha=0.85, edgecolors="none", zorder=3)
        if stopped:
            ax.scatter(_positions(space, p.name, stopped, seed + 100 + j),
                       [r.value for r in stopped], s=26, marker="v", facecolors="none",
                       edgecolors=STOPPED_COLOR, zorder=3)
        ax.scatter([x[done.index(best)]], [best.value], marker="*", s=200, color=BEST_COLOR,
                   edgecolor="white", linewidths=0.8, zorder=5)
        _failed_marks(ax, list(_positions(space, p.name, failed, seed + j)), sign, None)
        set_param_xaxis(ax, p)
        ax.set_xlabel(param_label(p))
        ax.grid(alpha=0.3)
        if j % ncols == 0:
            ax.set_ylabel(metric)
    apply_value_scale(axes[0][0], "y", ys, sign)
    if failed:
        axes[0][0].margins(y=0.12)
    for j in range(space.dim, nrows * ncols):
        axes[j // ncols][j % ncols].set_axis_off()
    keys = [" · red x: failed" if failed else "", " · open triangle: stopped (last value)"
            if stopped else "", " · star: best"]
    header(fig, title, subtitle + "".join(keys))
    if sc is not None:
        bar = fig.colorbar(sc, ax=axes.ravel().tolist(), fraction=0.03, pad=0.02)
        bar.set_label("trial number")
        bar.locator = MaxNLocator(integer=True)
        bar.update_ticks()
    return fig


def _figures(records: Sequence[TrialLike], study: str, metric: str, sign: float,
             space: SearchSpace, seed: int) -> Iterable[tuple[str, Figure]]:
    yield PLOT_FILES[0], convergence_figure(records, study=study, metric=metric, sign=sign)
    yield PLOT_FILES[1], importance_figure(records, study=study, metric=metric, sign=sign,
                                           space=space, seed=seed)
    yield PLOT_FILES[2], parallel_figure(records, study=study, metric=metric, sign=sign,
                                         space=space, seed=seed)
    yield PLOT_FILES[3], slices_figure(records, study=study, metric=metric, sign=sign,
                                       space=space, seed=seed)


def render_plots(records: Sequence[TrialLike], *, study: str, metric: str, sign: float,
                 space: SearchSpace, seed: int = 0) -> dict[str, bytes]:
    """The four plots as PNG bytes, keyed by file name (for pages that inline them)."""
    return {name: png_bytes(fig) for name, fig in _figures(records, study, metric, sign,
                                                           space, seed)}


def make_plots(directory: Path, records: Sequence[TrialLike], *, study: str, metric: str,
               sign: float, space: SearchSpace, seed: int = 0) -> list[Path]:
    """Write the four plots into ``directory`` (made if missing); their paths, in order."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for name, data in render_plots(records, study=study, metric=metric, sign=sign,
                                   space=space, seed=seed).items():
        path = directory / name
        path.write_bytes(data)
        out.append(path)
    return out
