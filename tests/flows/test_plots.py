"""The study plots on a small synthetic study: files, scales, marks and importance."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from amtune.flows.plot_common import value_scale
from amtune.flows.plot_importance import parameter_importance
from amtune.flows.plot_parallel import _param_ticks
from amtune.flows.plots import (
    PLOT_FILES,
    convergence_figure,
    importance_figure,
    make_plots,
    parallel_figure,
    slices_figure,
)
from amtune.strategies import SearchSpace

SPACE = SearchSpace.from_dict({
    "lr": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
    "layers": {"type": "int", "low": 1, "high": 8},
    "dead": {"type": "float", "low": 0.0, "high": 1.0},
    "opt": {"type": "categorical", "values": ["adam", "sgd", "rmsprop"]},
})
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DIVERGED = "exception: diverged, loss is nan at step 3"


@dataclass
class Rec:
    """A trial record with the attributes the plots read (the store's has more)."""

    number: int
    status: str
    params: dict[str, Any]
    value: float | None = None
    round: int = 0
    run_id: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    attempts: int = 1
    duration_s: float | None = 1.0
    reason: str | None = None


def loss(params: dict[str, Any], driver: str = "lr") -> float:
    """Spans decades; driven by ``driver`` (lr in log space, or the otherwise dead one)."""
    x = np.log10(params["lr"]) + 3 if driver == "lr" else 4 * params["dead"] - 2
    return 0.01 + 0.5 * x**2 * (1 + 0.05 * params["layers"]) + 0.02 * (params["opt"] == "sgd")


def synthetic_study(n: int = 30, *, sign: float = 1.0, seed: int = 0,
                    driver: str = "lr") -> list[Rec]:
    """Random trials; a large lr diverges (failed), every 7th trial is stopped early."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        params = SPACE.decode(rng.uniform(size=SPACE.dim))
        v = loss(params, driver)
        v = v if sign > 0 else 1 / (1 + v)  # maximised: an accuracy-like score in (0, 1)
        run_id = f"run{i:04d}"
        if driver == "lr" and params["lr"] > 0.03:
            out.append(Rec(i, "failed", params, None, i // 4, run_id, reason=DIVERGED,
                           attempts=2))
        elif i % 7 == 6:
            out.append(Rec(i, "stopped", params, v * (1.5 if sign > 0 else 0.7), i // 4, run_id,
                           reason="stopped at step 2 by the median rule"))
        else:
            out.append(Rec(i, "completed", params, v, i // 4, run_id, {"val_loss": v}))
    return out


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC
    with Image.open(io.BytesIO(data)) as im:
        im.verify()
    with Image.open(io.BytesIO(data)) as im:
        return im.size


def _kw(records: list[Rec], sign: float = 1.0) -> dict[str, Any]:
    return {"study": "synthetic", "metric": "val_loss", "sign": sign}


def test_make_plots_writes_four_readable_pngs(tmp_path):
    records = synthetic_study()
    paths = make_plots(tmp_path / "plots", records, space=SPACE, **_kw(records))
    assert [p.name for p in paths] == list(PLOT_FILES)
    for p in paths:
        w, h = _png_size(p.read_bytes())
        assert w >= 600 and h >= 250, (p.name, w, h)
        assert p.stat().st_size < 200_000, p.name


@pytest.mark.parametrize(("values", "sign", "expected"), [
    ([0.5, 0.6, 0.9], 1.0, "linear"),
    ([1e-3, 0.2, 1.0], 1.0, "log"),
    ([0.02, 0.37], 1.0, "log"),          # minimised: one decade is enough
    ([0.05, 0.9], -1.0, "linear"),       # maximised accuracy: the top matters
    ([1.0, 50.0, 1000.0], -1.0, "log"),  # maximised, but over three decades
    ([0.0, 1e-3, 1.0], 1.0, "symlog"),   # an error of 0 cannot go on a log axis
    ([-1e-3, -1.0], -1.0, "symlog"),
    ([-5.0, 3.0], 1.0, "linear"),
    ([7.0], 1.0, "linear"),
])
def test_value_scale(values, sign, expected):
    assert value_scale(values, sign) == expected


def test_convergence_log_y_when_values_span_decades_and_not_otherwise():
    spread = synthetic_study()
    assert convergence_figure(spread, **_kw(spread)).axes[0].get_yscale() == "log"
    narrow = synthetic_study(sign=-1.0)
    ax = convergence_figure(narrow, **_kw(narrow, -1.0)).axes[0]
    assert ax.get_yscale() == "linear"


def test_convergence_marks_failed_stopped_and_best_so_far():
    records = synthetic_study()
    fig = convergence_figure(records, **_kw(records))
    ax = fig.axes[0]
    by_label = {c.get_label(): c for c in ax.collections}
    n_failed = sum(r.status == "failed" for r in records)
    n_stopped = sum(r.status == "stopped" for r in records)
    assert n_failed and n_stopped
    assert len(by_label["failed (no value)"].get_offsets()) == n_failed
    assert len(by_label["stopped early (last value)"].get_offsets()) == n_stopped
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == "best so far"]
    best = np.asarray(line.get_ydata(), float)
    assert np.all(np.diff(best) <= 0) and best[-1] == min(
        r.value for r in records if r.status == "completed")
    fig.canvas.draw()
    assert all(float(t).is_integer() for t in ax.get_xticks())
    assert "synthetic" in " ".join(t.get_text() for t in fig.texts)


@pytest.mark.parametrize(("sign", "edge"), [(1.0, "top"), (-1.0, "bottom")])
def test_best_so_far_and_failed_marks_follow_the_direction(sign, edge):
    records = synthetic_study(sign=sign)
    ax = convergence_figure(records, **_kw(records, sign)).axes[0]
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == "best so far"]
    steps = np.diff(np.asarray(line.get_ydata(), float))
    assert np.all(sign * steps <= 0) and np.any(steps != 0)
    (failed,) = [c for c in ax.collections if c.get_label() == "failed (no value)"]
    y = failed.get_offsets()[:, 1]  # axes coordinates: on the worst edge, away from the best
    assert np.all(y > 0.9) if edge == "top" else np.all(y < 0.1)


def test_the_store_record_satisfies_the_plots():
    from amtune.tasks.store.schema import TrialRecord

    records = [TrialRecord(number=r.number, round=r.round, status=r.status, run_id=r.run_id,
                           params=r.params, value=r.value, reason=r.reason)
               for r in synthetic_study(8)]
    ax = convergence_figure(records, **_kw(records)).axes[0]
    assert ax.get_xlabel() == "trial number"


@pytest.mark.parametrize(("driver", "other"), [("lr", "dead"), ("dead", "lr")])
def test_importance_ranks_the_driving_parameter_above_a_dead_one(driver, other):
    records = synthetic_study(40, driver=driver, seed=3)
    imp = parameter_importance(records, SPACE, seed=0)
    assert imp is not None
    share = dict(zip(imp.names, imp.share, strict=True))
    assert imp.ranking()[0][0] == driver
    assert share[driver] > 3 * share[other]
    assert abs(sum(imp.share) - 1.0) < 1e-9


def test_importance_is_seeded():
    records = synthetic_study(20)
    a = parameter_importance(records, SPACE, seed=1)
    b = parameter_importance(records, SPACE, seed=1)
    assert a == b


def test_importance_with_too_few_trials_says_so():
    records = [r for r in synthetic_study() if r.status == "completed"][:4]
    assert parameter_importance(records, SPACE) is None
    fig = importance_figure(records, space=SPACE, **_kw(records))
    assert "Not enough trials" in " ".join(t.get_text() for a in fig.axes for t in a.texts)
    _png_size(_render(fig))


def _render(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def test_slices_use_the_space_scales():
    records = synthetic_study()
    fig = slices_figure(records, space=SPACE, **_kw(records))
    axes = {a.get_xlabel(): a for a in fig.axes if a.get_xlabel()}
    assert axes["lr (log)"].get_xscale() == "log"
    assert axes["lr (log)"].get_xlim()[0] < 1e-5 and axes["lr (log)"].get_xlim()[1] > 1e-1
    assert axes["layers"].get_xscale() == "linear"
    assert [t.get_text() for t in axes["opt"].get_xticklabels()] == ["adam", "sgd", "rmsprop"]
    assert axes["lr (log)"].get_yscale() == "log"  # shared objective axis, spans decades


def test_slices_of_reverse_log_and_long_categories():
    space = SearchSpace.from_dict({
        "momentum": {"type": "float", "low": 0.5, "high": 0.999, "scale": "reverse_log"},
        "schedule": {"type": "categorical", "values": ["constant_with_warmup", "cosine"]},
    })
    rng = np.random.default_rng(0)
    records = [Rec(i, "completed", space.decode(rng.uniform(size=2)), float(i + 1))
               for i in range(6)]
    fig = slices_figure(records, space=space, **_kw(records))
    axes = {a.get_xlabel(): a for a in fig.axes if a.get_xlabel()}
    ax = axes["momentum (reverse log)"]
    assert ax.get_xscale() == "function"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.5", "0.9", "0.99", "0.999"]
    lo, hi = ax.get_xlim()
    assert lo < 0.5 and 0.999 < hi < 0.9999  # the range, padded in the axis' own scale
    labels = [t.get_text() for t in axes["schedule"].get_xticklabels()]
    assert labels == ["constant_with_w…", "cosine"]


def test_parallel_axes_are_laid_out_in_the_space_scale():
    lr, layers, _dead, opt = SPACE.params
    ticks = dict((label, pos) for pos, label in _param_ticks(lr))
    assert ticks["$10^{-3}$"] == pytest.approx(0.5)  # the middle of 1e-5..1e-1 in log space
    assert [label for _, label in _param_ticks(opt)] == ["adam", "sgd", "rmsprop"]
    assert all(float(label).is_integer() for _, label in _param_ticks(layers))
    records = synthetic_study()
    fig = parallel_figure(records, space=SPACE, **_kw(records))
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "failed" in texts and "$10^{-3}$" in texts
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == [
        "lr (log)", "layers", "dead", "opt", "val_loss"]
    assert len(fig.axes) == 2  # the plot and its colorbar


@pytest.mark.parametrize("records", [[], [Rec(0, "failed", {}, reason=DIVERGED)]])
def test_plots_without_completed_trials_are_messages_not_errors(records, tmp_path):
    for p in make_plots(tmp_path, records, space=SPACE, **_kw(records)):
        _png_size(p.read_bytes())


def test_trials_the_space_cannot_place_are_left_out(tmp_path):
    records = synthetic_study(12)
    odd = [Rec(100, "killed", {}, reason="process died"),
           Rec(101, "completed", {**records[0].params, "opt": "lion"}, 1e-6)]
    fig = slices_figure([*records, *odd], space=SPACE, **_kw(records))
    ax = next(a for a in fig.axes if a.get_xlabel() == "lr (log)")
    n_done = sum(r.status == "completed" for r in records)
    assert len(ax.collections[0].get_offsets()) == n_done  # not the unknown category's
    for p in make_plots(tmp_path, [*records, *odd], space=SPACE, **_kw(records)):
        _png_size(p.read_bytes())
