"""The benchmark harness without Optuna: a cached run, and the printed summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks import runners, strategies


@pytest.fixture(autouse=True)
def _tmp_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(runners.RESULTS_ENV, str(tmp_path))
    monkeypatch.setattr(runners, "single_thread", lambda: None)  # no global side effect


def test_a_run_is_written_then_read_back_until_fresh(tmp_path: Path) -> None:
    first = runners.run_one("branin", "sobol", seed=1, batch=3, budget=10)
    assert not first["cached"]
    assert len(first["values"]) == 10
    assert len(first["times"]) == 4  # rounds of 3, 3, 3, 1
    path = tmp_path / "branin" / "sobol" / "n10-b3-s1.json"
    assert json.loads(path.read_text())["values"] == first["values"]
    again = runners.run_one("branin", "sobol", seed=1, batch=3, budget=10)
    assert again["cached"] and again["values"] == first["values"]
    assert not runners.run_one("branin", "sobol", seed=1, batch=3, budget=10,
                               fresh=True)["cached"]


def test_a_stale_fingerprint_is_rerun(tmp_path: Path) -> None:
    runners.run_one("branin", "random", seed=0, batch=1, budget=4)
    path = tmp_path / "branin" / "random" / "n4-b1-s0.json"
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "fingerprint": "old code"}))
    assert not runners.run_one("branin", "random", seed=0, batch=1, budget=4)["cached"]


def test_the_fingerprint_covers_the_modules_a_strategy_uses() -> None:
    import sys

    mods = {m.__name__ for m in runners._module_closure(sys.modules["amtune.strategies.sobol"])}
    assert {f"amtune.strategies.{m}" for m in ("sobol", "base", "space", "grid")} <= mods


def test_grid_points_fit_the_budget() -> None:
    from benchmarks.problems import PROBLEMS

    assert runners.grid_points(PROBLEMS["branin"], 50) == 7  # 49 points
    assert runners.grid_points(PROBLEMS["rosenbrock4"], 50) is None  # 3**4 > 50
    assert runners.grid_points(PROBLEMS["rosenbrock4"], 81) == 3
    assert runners.grid_points(PROBLEMS["mixed6"], 700) == 3  # 3**4 * 4 * 2 = 648


def _run(problem: str, optimizer: str, values: list[float], optimum: float = 0.0) -> dict[str, Any]:
    return {"problem": problem, "optimizer": optimizer, "batch": 1, "values": values,
            "times": [0.5], "optimum": optimum}


def test_tables_show_quartiles_and_mean_rank(capsys: pytest.CaptureFixture[str]) -> None:
    args = strategies._parse(["--problems", "branin,rosenbrock4", "--optimizers",
                              "random,sobol", "--seeds", "3", "--budget", "3", "--batch", "1"])
    results = [
        _run("branin", "random", [5.0, 4.0, 3.0]),   # final regrets 3, 1, 2: median 2
        _run("branin", "random", [1.0, 1.0, 1.0]),
        _run("branin", "random", [9.0, 2.0, 8.0]),
        _run("branin", "sobol", [1.0, 0.5, 9.0]),     # 0.5: better on branin
        _run("rosenbrock4", "random", [1.0, 9.0, 9.0]),
        _run("rosenbrock4", "sobol", [7.0, 8.0, 9.0]),  # worse on rosenbrock4
    ]
    strategies.print_tables(results, args)
    out = capsys.readouterr().out
    assert "| branin | random | 2 | 1.5 | 2.5 | - | 2 | 0.5 |" in out
    assert "| branin | sobol | 0.5 |" in out
    assert "| **mean rank** | 1.50 | 1.50 |" in out
    assert "median final regret, batch 1, public" in out


def test_wrong_basin_fraction_and_sets_are_reported(capsys: pytest.CaptureFixture[str]) -> None:
    args = strategies._parse(["--problems", "switch5,intcat4", "--optimizers", "random,sobol",
                              "--seeds", "4", "--budget", "2", "--batch", "1"])
    # switch5's basin threshold is 0.3: final regrets 0.1, 0.2, 0.4, 0.5 -> 2 of 4 wrong
    results = [_run("switch5", "random", [1.0, v]) for v in (0.1, 0.2, 0.4, 0.5)]
    results += [_run("switch5", "sobol", [v, 1.0]) for v in (0.0, 0.1, 0.2, 0.9)]
    results += [_run("intcat4", "sobol", [0.05, 1.0]) for _ in range(4)]
    strategies.print_tables(results, args)
    out = capsys.readouterr().out
    assert "| switch5 | random | 0.3 | 0.175 | 0.425 | 50% |" in out
    assert "| switch5 | sobol | 0.15 | 0.075 | 0.375 | 25% |" in out
    assert "median final regret, batch 1, mixed (dev)" in out
    assert "median final regret, batch 1, held-out" in out
    assert "| switch5 | 50% | 25% |" in out
    assert "| intcat4 | - | 0% |" in out


def test_a_failing_run_is_reported_and_the_others_still_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = runners.run_one

    def run_one(problem: str, optimizer: str, *rest: Any) -> dict[str, Any]:
        if optimizer == "sobol":
            raise RuntimeError("boom")
        return real(problem, optimizer, *rest)

    monkeypatch.setattr(strategies, "run_one", run_one)
    args = strategies._parse(["--problems", "branin", "--optimizers", "random,sobol",
                              "--seeds", "2", "--budget", "4", "--batch", "1", "--jobs", "1"])
    results, errors = strategies.run_all(args)
    assert sorted(r["seed"] for r in results) == [0, 1]
    assert {r["optimizer"] for r in results} == {"random"}
    assert len(errors) == 2 and all("sobol" in e and "RuntimeError: boom" in e for e in errors)
