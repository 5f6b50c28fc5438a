"""`amtune results` and `amtune report` on a study with every kind of trial, in real MLflow.

The study is written through ``StudyStore`` exactly as a run and a resume write it
(params at start, then finished, failed or closed as KILLED), so no Prefect is needed.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from amtune.flows.views import view_key
from amtune.tasks.store.schema import TrialRecord
from amtune.tasks.store.study import StudyStore
from tests.conftest import Runner
from tests.flows.test_report import parse

PARAMS = {"x": {"type": "float", "low": -5.0, "high": 5.0},
          "kind": {"type": "categorical", "values": ["a", "b"]}}


@pytest.fixture
def study(tracking_uri: str) -> dict[str, TrialRecord]:
    """Trials 0-2 completed, 3 failed, 4 killed (left running by a crash), 5 and 6 stopped
    early (at steps 3 and 1, as a rule stops them: FINISHED, tagged with the step)."""
    store = StudyStore(uri=tracking_uri, experiment="res", study="res", space=PARAMS,
                       metric="loss")
    store.open({"amtune.strategy": "random", "amtune.metric": "loss",
                "amtune.direction": "minimize"}, {"name": "res"})
    out: dict[str, TrialRecord] = {}
    for n, (x, kind) in enumerate([(1.0, "a"), (-2.5, "b"), (0.5, "a"), (3.0, "b"),
                                   (4.0, "a"), (2.0, "b"), (-4.5, "a")]):
        params = {"x": x, "kind": kind}
        run_id = store.start_trial(n, n // 2, params, "random")
        rec = TrialRecord(n, n // 2, "running", run_id, params, duration_s=0.1 * (n + 1))
        buf = store.buffer(run_id)
        if n < 3:
            rec.status, rec.metrics, rec.value = "completed", {"loss": x * x}, x * x
            store.finish_trial(rec, buf)
        elif n == 3:
            rec.status, rec.reason = "failed", "exception: ValueError: bad x"
            store.fail_attempt(rec, buf, failure_tags={"cause": "exception"}, final=True)
        elif n == 4:
            store.close_stale([rec], "killed: left running by an interrupted study")
        else:
            step = 3 if n == 5 else 1
            for k in range(step):
                buf(k, {"loss": x * x + step - k})
            rec.status, rec.stopped_at = "stopped", step
            rec.value = x * x + 1
            rec.metrics = {"loss": rec.value}
            store.finish_trial(rec, buf, stopped_at=step)
        out[rec.status + str(n)] = rec
    return out


def test_json_lists_every_trial_best_first(amtune: Runner, tracking_uri: str,
                                           study: dict[str, TrialRecord]) -> None:
    r = amtune("results", "res", "--tracking-uri", tracking_uri, "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    rows = data["top"]
    # completed by value, then by number
    assert [t["number"] for t in rows] == [2, 0, 1, 3, 4, 5, 6]
    assert [t["status"] for t in rows] == ["completed"] * 3 + [
        "failed", "killed", "stopped", "stopped"]
    assert (data["trials"], data["failed"], data["killed"]) == (6, 1, 1)
    for t in rows:
        rec = next(s for s in study.values() if s.number == t["number"])
        assert t["params"] == rec.params and t["run_id"] == rec.run_id
        assert set(t) >= {"round", "attempts", "metrics", "duration_s", "reason", "value"}
    assert rows[0]["metrics"] == {"loss": 0.25} and rows[0]["duration_s"] == pytest.approx(0.3)
    assert rows[3]["reason"] == "exception: ValueError: bad x" and rows[3]["value"] is None
    assert rows[4]["reason"].startswith("killed")
    assert [t["stopped_at_step"] for t in rows] == [None] * 5 + [3, 1]
    assert rows[5]["value"] == 5.0  # a stopped trial's last value
    top = json.loads(amtune("results", "res", "--tracking-uri", tracking_uri, "--json",
                            "--top", "2").stdout)["top"]
    assert [t["number"] for t in top] == [2, 0]


def test_table_shows_stopped_trials_with_their_step(amtune: Runner, tracking_uri: str,
                                                   study: dict[str, TrialRecord]) -> None:
    r = amtune("results", "res", "--tracking-uri", tracking_uri)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "6 trials (1 failed, 2 stopped early)" in lines[0]
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in lines if "│" in line]
    completed = [c for c in cells if "completed" in c]
    stopped = [c for c in cells if "stopped" in c]
    assert [c[0] for c in completed] == ["2", "0", "1"]
    # furthest first: trial 5 at step 3 (last loss 5), trial 6 at step 1 (last 21.25)
    assert [(c[0], c[1], c[2], c[3]) for c in stopped] == [
        ("5", "stopped", "3", "5"), ("6", "stopped", "1", "21.25")]
    headers = [[c.strip() for c in line.split("┃")[1:-1]] for line in lines if "┃" in line]
    header = next(h for h in headers if "step" in h)
    assert header[:4] == ["trial", "status", "step", "loss"]
    row = dict(zip(header, stopped[0], strict=True))
    assert (row["x"], row["kind"], row["attempts"]) == ("2", "b", "1")  # its params
    few = amtune("results", "res", "--tracking-uri", tracking_uri, "--top", "1").stdout
    assert "(1 more)" in few and few.count("stopped │") == 1


def test_csv_marks_killed_runs_and_keeps_their_params(amtune: Runner, tracking_uri: str,
                                                      study: dict[str, TrialRecord],
                                                      tmp_path: Path) -> None:
    out = tmp_path / "t.csv"
    r = amtune("results", "res", "--tracking-uri", tracking_uri, "--csv", str(out))
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    killed = [row for row in rows if row["number"] == "4"]
    assert len(rows) == 7 and len(killed) == 1
    assert killed[0]["status"] == "killed" and killed[0]["reason"].startswith("killed")
    assert (killed[0]["param.x"], killed[0]["param.kind"]) == ("4.0", "a")


def test_report_and_ui_link(amtune: Runner, tracking_uri: str, study: dict[str, TrialRecord],
                            tmp_path: Path) -> None:
    out = tmp_path / "page" / "res.html"
    r = amtune("report", "res", "--tracking-uri", tracking_uri, "--out", str(out))
    assert r.returncode == 0, r.stderr
    p = parse(out.read_text(encoding="utf-8"))
    assert len(p.images) == 4 and "bad x" in " ".join(p.text)
    best = study["completed2"].run_id
    assert any(link.endswith(f"/runs/{best}") for link in p.links), p.links
    link = amtune("results", "res", "--tracking-uri", tracking_uri, "--ui").stdout
    assert f"viewStateShareKey={view_key('res')}&workflowType=machine_learning" in link
    missing = amtune("report", "nope", "--tracking-uri", tracking_uri)
    assert missing.returncode == 2 and "no such study" in missing.stderr

