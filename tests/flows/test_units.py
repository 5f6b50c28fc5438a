"""Pure pieces of the pipeline: completion rules, space changes, overrides, progress lines."""

from __future__ import annotations

import io

import pytest

from amtune.flows.completion import Tally, best_trial, stop_reason
from amtune.flows.progress import Reporter
from amtune.flows.spec import SpecError, validate_spec
from amtune.flows.study import space_change
from amtune.tasks.store.schema import TrialRecord, to_trials
from tests.flows.helpers import spec


def rec(number: int, value: float | None, status: str = "completed") -> TrialRecord:
    return TrialRecord(number=number, round=number // 2, status=status, run_id=f"r{number}",
                       params={"x": float(number)}, value=value)


def test_best_and_direction_handled_by_sign() -> None:
    rs = [rec(0, 3.0), rec(1, 1.0), rec(2, None, "failed"), rec(3, 5.0)]
    assert best_trial(rs, 1.0).number == 1
    assert best_trial(rs, -1.0).number == 3
    assert [t.value for t in to_trials(rs, -1.0)] == [-3.0, -1.0, None, -5.0]
    assert best_trial([rec(0, None, "failed")], 1.0) is None


@pytest.mark.parametrize(("kwargs", "reason"), [
    ({"max_trials": 4}, "max_trials"),
    ({"max_trials": 10}, None),
    ({"max_trials": 10, "max_failed_trials": 1}, "max_failed_trials"),
    ({"max_trials": 10, "target": 1.0}, "target"),
    ({"max_trials": 10, "target": 0.5}, None),
    ({"max_trials": 10, "patience": 2}, "patience"),
    ({"max_trials": 10, "patience": 3}, None),
    ({"max_trials": 10, "max_runtime_s": 5, "elapsed_s": 6}, "max_runtime_s"),
])
def test_stop_reason(kwargs: dict, reason: str | None) -> None:
    rs = [rec(0, 3.0), rec(1, 1.0), rec(2, None, "failed"), rec(3, 5.0), rec(4, 2.0),
          rec(5, None, "killed")]
    assert stop_reason(Tally(1.0, rs), **kwargs) == reason
    one_by_one = Tally(1.0)
    for r in rs:
        one_by_one.add([r])
    assert stop_reason(one_by_one, **kwargs) == reason


def test_maximize_target() -> None:
    rs = [rec(0, 0.8), rec(1, 0.95)]
    assert stop_reason(Tally(-1.0, rs), max_trials=10, target=0.9) == "target"
    assert stop_reason(Tally(-1.0, rs), max_trials=10, target=0.99) is None


def test_tally_kept_as_trials_end_out_of_order_matches_a_full_count() -> None:
    """Trials end out of order: a new best may be numbered below trials already in."""
    import random

    rng = random.Random(0)
    rs = [rec(i, rng.choice([None, *range(20)]), rng.choice(["completed"] * 4 + ["failed"]))
          for i in range(200)]
    rs = [r if r.value is not None or r.status == "failed" else rec(r.number, None, "failed")
          for r in rs]
    order = rs[:]
    rng.shuffle(order)
    tally = Tally(1.0)
    for k, r in enumerate(order, start=1):
        tally.add([r, r])  # a trial reported twice counts once
        seen = order[:k]
        best = best_trial(seen, 1.0)
        assert tally.counted == k
        assert tally.failed == sum(x.status == "failed" for x in seen)
        assert tally.best is best
        assert tally.since_best == (0 if best is None else sum(
            x.status == "completed" and x.number > best.number for x in seen))


def test_to_trials_gives_a_finished_trial_the_same_object_each_time() -> None:
    rs = [rec(0, 3.0), rec(1, None, "failed"), rec(2, None, "running")]
    first, again = to_trials(rs, 1.0), to_trials(rs, 1.0)
    assert first[0] is again[0] and first[1] is again[1]
    assert first[2] is not again[2]  # a running trial may end: made anew
    assert to_trials(rs, -1.0)[0].value == -3.0  # the other direction: not the kept one


def test_space_change_names_the_change() -> None:
    old = {"x": {"type": "float", "low": 0.0, "high": 1.0, "scale": "linear"}}
    assert space_change(old, dict(old)) is None
    assert "added ['y']" in space_change(old, {**old, "y": {"type": "int"}})
    assert "removed ['x']" in space_change(old, {"y": {"type": "int"}})
    new = {"x": {**old["x"], "high": 2.0}}
    assert space_change(old, new).startswith("parameters.x changed")


def test_overrides_are_validated() -> None:
    s = validate_spec(spec("o", "tests.flows.objectives:loss_only"))
    assert s.with_overrides(max_trials=9).budget.max_trials == 9
    assert s.with_overrides(tracking_uri="sqlite:///x.db").tracking.uri == "sqlite:///x.db"
    assert s.sign == 1.0
    with pytest.raises(SpecError, match=r"^budget\.max_trials: 0"):
        s.with_overrides(max_trials=0)


def test_plain_progress_lines() -> None:
    out = io.StringIO()
    with Reporter("loss", 1.0, total=3, stream=out, live=False) as r:
        r.trial(rec(0, 2.0))
        r.trial(TrialRecord(1, 0, "failed", "r1", reason="timeout: 5 s"))
        r.trial(rec(2, 1.5))
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("trial-0000 loss=2  [1/3, best 2]")
    assert "failed (timeout: 5 s)" in lines[1] and "[2/3" in lines[1]
    assert "[3/3, best 1.5]" in lines[2]
    assert (r.done, r.failed, r.best) == (3, 1, 1.5)


def test_live_progress_renders() -> None:
    out = io.StringIO()
    with Reporter("acc", -1.0, total=2, stream=out, live=True) as r:
        r.trial(rec(0, 0.5))
        r.trial(rec(1, 0.7))
    assert "trials 2/2" in out.getvalue() and "best acc 0.7" in out.getvalue()


@pytest.mark.parametrize(("study", "key"), [
    ("svm-breast-cancer", "amtune-top-svm-breast-cancer"),
    ("My Study_v2.1", "amtune-top-my-study-v2-1"),
    ("nightly-20261129T020000Z", "amtune-top-nightly-20261129t020000z"),
    ("___", "amtune-top-study"),
])
def test_artifact_keys_are_per_study_and_valid(study: str, key: str) -> None:
    from amtune.flows.summary import artifact_key

    assert artifact_key("top", study) == key


def test_rounds_run_without_the_flow_heartbeat() -> None:
    from prefect.settings import get_current_settings

    from amtune.flows.rounds import without_heartbeat

    before = get_current_settings().flows.heartbeat_frequency
    assert before is not None
    with without_heartbeat():
        assert get_current_settings().flows.heartbeat_frequency is None
    assert get_current_settings().flows.heartbeat_frequency == before


def test_grid_budget_defaults_to_the_grid_size() -> None:
    def unbudgeted(strategy: dict[str, object]) -> dict[str, object]:
        d = spec("g", "tests.flows.objectives:quadratic", strategy=strategy)
        del d["budget"]["max_trials"]
        return d

    grid = {"name": "grid", "options": {"points": 5}}
    s = validate_spec(unbudgeted(grid))
    assert s.budget.max_trials == 5 * 4 * 2  # x: 5 points, y: 0..3, kind: a or b
    assert s.with_overrides(tracking_uri="sqlite:///other.db").budget.max_trials == 40
    given = validate_spec(spec("g", "tests.flows.objectives:quadratic", strategy=grid))
    assert given.budget.max_trials == 6  # a given budget wins
    assert validate_spec(unbudgeted({"name": "random"})).budget.max_trials == 20
