"""The study report: one self-contained HTML page (inline CSS and images, no scripts).

It is logged as ``report.html`` on the parent run, where MLflow's artifact viewer shows
it, and written locally by ``amtune report``. Nothing is fetched when it is opened:
the plots are PNG data URIs, so the page can be mailed, archived or opened offline.
Links (to MLflow runs) are plain anchors, used only if the reader follows them.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from amtune.flows.plot_common import TrialLike, direction, fmt, ranked
from amtune.flows.plots import PLOT_FILES, make_plots, render_plots
from amtune.strategies import SearchSpace

RunUrl = Callable[[str], str]
REASONS = {
    "max_trials": "the trial budget (max_trials) was used",
    "max_failed_trials": "too many trials failed (max_failed_trials)",
    "target": "the target value was reached",
    "patience": "no improvement within the patience",
    "max_runtime_s": "the time budget (max_runtime_s) ran out",
}
CAPTIONS = {
    "convergence.png": "Every trial by number and the best value so far; "
                       "red crosses on the worst edge are failed trials.",
    "importance.png": "How much the objective depends on each parameter, "
                      "estimated on a random-forest surrogate of the completed trials.",
    "parallel_coordinates.png": "One line per trial through its parameters to its value; "
                                "the darkest lines are the best trials.",
    "slices.png": "The objective against each parameter over its whole search range.",
}
CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: #222; max-width: 1100px; margin: 24px auto; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 2px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.sub { color: #666; margin: 0 0 16px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 8px 14px; min-width: 150px; }
.card b { display: block; font-size: 20px; } .card span { color: #666; font-size: 12px; }
.bad b { color: #c62828; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 4px 10px; border-bottom: 1px solid #eee; }
th { background: #f6f6f6; font-weight: 600; white-space: nowrap; }
tr.best td { background: #fff6e0; }
td.num, th.num { text-align: right; } .muted { color: #777; }
table.kv { width: auto; min-width: 320px; }
figure { margin: 0 0 20px; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #666; font-size: 13px; }
"""


def _e(v: object) -> str:
    return html.escape(str(v), quote=True)


def _link(text: str, run_id: str, run_url: RunUrl | None) -> str:
    if run_url is None or not run_id:
        return _e(text)
    return f'<a href="{_e(run_url(run_id))}">{_e(text)}</a>'


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int],
           marked: int | None = None, cls: str = "") -> str:
    th = "".join(f'<th class="num">{_e(h)}</th>' if j in numeric else f"<th>{_e(h)}</th>"
                 for j, h in enumerate(head))
    body = []
    for i, row in enumerate(rows):
        tds = "".join(f'<td class="num">{c}</td>' if j in numeric else f"<td>{c}</td>"
                      for j, c in enumerate(row))
        body.append(f'<tr class="best">{tds}</tr>' if i == marked else f"<tr>{tds}</tr>")
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}><thead><tr>{th}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _card(value: str, label: str, bad: bool = False) -> str:
    return f'<div class="card{" bad" if bad else ""}"><b>{value}</b><span>{_e(label)}</span></div>'


def _duration(s: float | None) -> str:
    if s is None:
        return ""
    if s < 1:  # an instant objective is not "0.0 s"
        return f"{1000 * s:.0f} ms"
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"


def _split_reason(reason: str | None) -> tuple[str, str]:
    """``cause: detail`` as the store writes it, into its two parts."""
    if not reason:
        return "unknown", ""
    cause, _, detail = reason.partition(": ")
    return cause, detail


def _images(plots: Mapping[str, bytes] | Sequence[Path] | None, render: Callable[[], dict[str,
            bytes]]) -> dict[str, bytes]:
    if plots is None:
        return render()
    if isinstance(plots, Mapping):
        return dict(plots)
    return {Path(p).name: Path(p).read_bytes() for p in plots}


def render_report(records: Sequence[TrialLike], *, study: str, metric: str, sign: float,
                  space: SearchSpace, reason: str | None, strategy: str | None = None,
                  run_url: RunUrl | None = None, study_url: str | None = None,
                  plots: Mapping[str, bytes] | Sequence[Path] | None = None, top_k: int = 10,
                  seed: int = 0, now: datetime | None = None) -> str:
    """The page as a string. ``run_url`` maps a run id to its MLflow page (links to the
    best and the top trials), ``study_url`` links the study's runs view; ``plots``
    reuses PNGs already drawn (bytes by file name, or ``make_plots``' paths)."""
    images = _images(plots, lambda: render_plots(records, study=study, metric=metric,
                                                 sign=sign, space=space, seed=seed))
    count = {s: sum(r.status == s for r in records)
             for s in ("completed", "failed", "stopped", "running", "killed")}
    top = ranked(records, sign)
    best = top[0] if top else None
    sub = [f"{metric} ({direction(sign)})"]
    if strategy:
        sub.append(f"strategy {strategy}")
    if reason:
        sub.append(f"ended because {REASONS.get(reason, reason)}")
    parts = [f"<h1>Study {_e(study)}</h1>", f'<p class="sub">{_e(" · ".join(sub))}</p>']
    if study_url:
        parts.append(f'<p><a href="{_e(study_url)}">Open the study in MLflow</a></p>')
    finished = count["completed"] + count["failed"] + count["stopped"]
    cards = [_card(_e(fmt(best.value)) if best else "none", f"best {metric}"),
             _card(_link(f"#{best.number}", best.run_id, run_url) if best else "none",
                   "best trial"),
             _card(str(finished), "trials finished"),
             _card(str(count["failed"]), "failed", bad=count["failed"] > 0),
             _card(str(count["stopped"]), "stopped early")]
    cards += [_card(str(count[s]), s, bad=s == "killed") for s in ("running", "killed")
              if count[s]]
    parts.append(f'<div class="cards">{"".join(cards)}</div>')
    names = list(space.names)
    if best is not None:
        parts.append("<h2>Best trial</h2>")
        rows = [[_e(n), _e(fmt(best.params.get(n, "")))] for n in names]
        rows.append([_e(metric), f"<b>{_e(fmt(best.value))}</b>"])
        parts.append(_table(["parameter", f"trial {best.number}"], rows, set(), cls="kv"))
    parts.append(f"<h2>Top {min(top_k, len(top))} of {len(top)} completed trials</h2>")
    if top:
        rows = [[str(i + 1), _link(f"#{r.number}", r.run_id, run_url), _e(fmt(r.value)),
                 *(_e(fmt(r.params.get(n, ""))) for n in names), _e(_duration(r.duration_s)),
                 str(r.attempts)] for i, r in enumerate(top[:top_k])]
        parts.append(_table(["rank", "trial", metric, *names, "duration", "attempts"], rows,
                            {0, 2, len(names) + 3, len(names) + 4}, marked=0))
    else:
        parts.append('<p class="muted">No trial has completed.</p>')
    parts.append(_failures(records, names, run_url))
    parts.append("<h2>Plots</h2>")
    for name in PLOT_FILES:
        if name in images:
            data = base64.b64encode(images[name]).decode("ascii")
            parts.append(f'<figure><img src="data:image/png;base64,{data}" alt="{_e(name)}">'
                         f"<figcaption>{_e(CAPTIONS[name])}</figcaption></figure>")
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    parts.append(f'<p class="muted">Written {stamp} from {len(records)} trial records.</p>')
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(study)}: study report</title><style>{CSS}</style></head>"
            f"<body>{''.join(parts)}</body></html>\n")


def _failures(records: Sequence[TrialLike], names: list[str], run_url: RunUrl | None) -> str:
    """Failed, stopped and killed trials with why: the question a green run hides."""
    bad = sorted((r for r in records if r.status in ("failed", "stopped", "killed")),
                 key=lambda r: r.number)
    head = "<h2>Failed and stopped trials</h2>"
    if not bad:
        return head + '<p class="muted">None: every finished trial completed.</p>'
    rows = []
    for r in bad:
        cause, detail = _split_reason(r.reason)
        params = ", ".join(f"{n}={fmt(r.params[n])}" for n in names if n in r.params)
        last = _e(fmt(r.value)) if r.value is not None else ""
        rows.append([_link(f"#{r.number}", r.run_id, run_url), _e(r.status), f"<b>{_e(cause)}</b>",
                     _e(detail), last, str(r.attempts), _e(params)])
    return head + _table(["trial", "status", "cause", "detail", "last value", "attempts",
                          "params"], rows, {4, 5})


def write_report(path: Path, records: Sequence[TrialLike], *, study: str, metric: str,
                 sign: float, space: SearchSpace, reason: str | None,
                 strategy: str | None = None, run_url: RunUrl | None = None,
                 study_url: str | None = None,
                 plots: Mapping[str, bytes] | Sequence[Path] | None = None,
                 top_k: int = 10, seed: int = 0) -> Path:
    """Write the page to ``path`` (parent directories made); the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(records, study=study, metric=metric, sign=sign, space=space,
                                  reason=reason, strategy=strategy, run_url=run_url,
                                  study_url=study_url, plots=plots, top_k=top_k, seed=seed),
                    encoding="utf-8")
    return path


def mlflow_run_url(base: str, experiment_id: str) -> RunUrl:
    """Links to runs in an MLflow UI at ``base`` (``http://127.0.0.1:5000``)."""
    root = base.rstrip("/")
    return lambda run_id: f"{root}/#/experiments/{experiment_id}/runs/{run_id}"


def study_files(directory: Path, records: Sequence[TrialLike], *, study: str, metric: str,
                sign: float, space: SearchSpace, reason: str | None,
                strategy: str | None = None, run_url: RunUrl | None = None,
                study_url: str | None = None, seed: int = 0) -> dict[str, Path]:
    """The four plots and the report, drawn once, as artifact path -> local file
    (``plots/convergence.png``, ..., ``report.html``): what the parent run carries."""
    directory = Path(directory)
    paths = make_plots(directory / "plots", records, study=study, metric=metric, sign=sign,
                       space=space, seed=seed)
    report = write_report(directory / "report.html", records, study=study, metric=metric,
                          sign=sign, space=space, reason=reason, strategy=strategy,
                          run_url=run_url, study_url=study_url, plots=paths, seed=seed)
    return {**{f"plots/{p.name}": p for p in paths}, "report.html": report}
