"""report.html: one valid, self-contained page with the summary, tables and plots."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser

from amtune.flows.plot_common import fmt
from amtune.flows.plots import PLOT_FILES, make_plots
from amtune.flows.report import mlflow_run_url, render_report, study_files, write_report
from tests.flows.test_plots import DIVERGED, PNG_MAGIC, SPACE, synthetic_study

VOID = {"meta", "img", "br", "hr", "link", "input", "col", "area", "base", "source", "wbr"}


class Page(HTMLParser):
    """Collects what the assertions need and checks that tags are balanced."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.images: list[str] = []
        self.resources: list[str] = []  # URLs the browser would fetch on opening the page
        self.links: list[str] = []
        self.tags: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.add(tag)
        if tag == "img":
            self.images.append(a.get("src") or "")
        if tag == "a":
            self.links.append(a.get("href") or "")
        for key in ("src", "srcset", "data", "poster"):
            if a.get(key):
                self.resources.append(a[key] or "")
        if tag == "link" and a.get("href"):
            self.resources.append(a["href"] or "")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, (tag, self.stack[-5:])
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> Page:
    p = Page()
    p.feed(page)
    p.close()
    assert p.stack == [], p.stack
    return p


def _kw() -> dict:
    return {"study": "synthetic", "metric": "val_loss", "sign": 1.0, "space": SPACE}


def test_report_is_one_self_contained_page(tmp_path):
    records = synthetic_study()
    path = write_report(tmp_path / "out" / "report.html", records, reason="max_trials",
                        strategy="random", **_kw())
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    p = parse(page)
    assert not {"script", "iframe", "object", "embed"} & p.tags
    assert len(p.images) == len(PLOT_FILES)
    for src in p.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == PNG_MAGIC
    assert all(r.startswith("data:") for r in p.resources), p.resources
    assert not re.search(r"https?://", page)  # no links were asked for
    assert "@import" not in page and "url(" not in page.split("<body>")[0]
    text = " ".join(p.text)
    best = min(r.value for r in records if r.status == "completed")
    assert fmt(best) in text
    assert "exception" in text and DIVERGED.split(": ", 1)[1] in text
    assert "max_trials" in text and "random" in text


def test_report_counts_and_ranks_trials():
    records = synthetic_study()
    p = parse(render_report(records, reason="patience", plots={}, **_kw()))
    text = " ".join(p.text)
    done = sorted((r for r in records if r.status == "completed"), key=lambda r: r.value)
    n_failed = sum(r.status == "failed" for r in records)
    assert f"Top 10 of {len(done)} completed trials" in text
    assert re.search(rf"\b{n_failed}\s+failed", text)
    top = [f"#{r.number}" for r in done[:10]]
    seen = [t for t in p.text if t.startswith("#")]
    assert seen[1:11] == top  # after the best-trial card: the table, best first
    assert "no improvement within the patience" in text


def test_report_links_runs_when_asked():
    records = synthetic_study()
    page = render_report(records, reason="max_trials", plots={},
                         run_url=lambda rid: f"http://mlflow.example/#/runs/{rid}",
                         study_url="http://mlflow.example/#/experiments/1", **_kw())
    p = parse(page)
    best = min((r for r in records if r.status == "completed"), key=lambda r: r.value)
    assert f"http://mlflow.example/#/runs/{best.run_id}" in p.links
    assert "http://mlflow.example/#/experiments/1" in p.links
    assert p.resources == []  # links only: nothing is fetched on opening


def test_report_reuses_plots_already_drawn(tmp_path):
    records = synthetic_study(12)
    paths = make_plots(tmp_path, records, study="synthetic", metric="val_loss", sign=1.0,
                       space=SPACE)
    page = render_report(records, reason=None, plots=paths, **_kw())
    inline = {base64.b64decode(s.split(",", 1)[1]) for s in parse(page).images}
    assert inline == {p.read_bytes() for p in paths}


def test_report_of_a_study_where_everything_failed_is_still_a_page():
    records = [r for r in synthetic_study() if r.status == "failed"]
    assert records
    p = parse(render_report(records, reason="max_failed_trials", **_kw()))
    text = " ".join(p.text)
    assert "No trial has completed." in text and "too many trials failed" in text
    assert len(p.images) == len(PLOT_FILES)


def test_study_files_are_the_parent_runs_artifacts(tmp_path):
    records = synthetic_study(10)
    files = study_files(tmp_path, records, reason="max_trials",
                        run_url=mlflow_run_url("http://127.0.0.1:5000/", "7"), **_kw())
    assert list(files) == [f"plots/{n}" for n in PLOT_FILES] + ["report.html"]
    assert all(p.is_file() and p.is_relative_to(tmp_path) for p in files.values())
    page = parse(files["report.html"].read_text(encoding="utf-8"))
    inline = {base64.b64decode(s.split(",", 1)[1]) for s in page.images}
    assert inline == {files[f"plots/{n}"].read_bytes() for n in PLOT_FILES}
    best = min((r for r in records if r.status == "completed"), key=lambda r: r.value)
    assert f"http://127.0.0.1:5000/#/experiments/7/runs/{best.run_id}" in page.links
