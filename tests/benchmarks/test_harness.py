"""The benchmark harness without Optuna: a cached run, and the printed summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
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
    import amtune.strategies.sobol as sobol  # imported here: no reliance on an earlier test

    mods = {m.__name__ for m in runners._module_closure(sobol)}
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


def test_async_protocol_proposes_one_per_freed_worker_with_the_others_pending() -> None:
    from benchmarks.problems import PROBLEMS

    calls: list[tuple[int, int]] = []  # (n asked, trials pending at the time)
    pending: set[int] = set()
    finished: list[int] = []

    def propose(n: int) -> list[dict[str, float]]:
        calls.append((n, len(pending)))
        first = len(pending) + len(finished)  # trial k is the k-th proposed
        pending.update(range(first, first + n))
        return [{"x0": 0.0, "x1": float(k)} for k in range(first, first + n)]

    def tell(k: int, value: float) -> None:
        pending.remove(k)
        finished.append(k)

    out = runners.simulate_async(propose, tell, PROBLEMS["branin"], seed=0, budget=12, workers=4)
    assert len(out["values"]) == 12 and len(out["times"]) == len(calls)
    assert calls[0] == (4, 0)
    assert all(c == (1, 3) for c in calls[1:])  # one at a time, three others running
    assert sorted(finished) == list(range(12))
    assert finished != list(range(12))  # simulated durations: trials finish out of order


def test_async_durations_are_seeded_and_shared_by_every_optimizer() -> None:
    a, b = runners.durations(3, 20), runners.durations(3, 20)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, runners.durations(4, 20))
    assert np.all(a > 0)


def test_an_async_run_is_cached_apart_from_batch_runs(tmp_path: Path) -> None:
    run = runners.run_one("branin", "random", seed=0, batch=5, budget=9, workers=3)
    assert len(run["values"]) == 9 and run["workers"] == 3 and run["batch"] == 1
    assert len(run["times"]) == 1 + 6  # a first batch of 3, then one per finished trial
    assert (tmp_path / "branin" / "random" / "n9-a3-s0.json").exists()
    assert not (tmp_path / "branin" / "random" / "n9-b1-s0.json").exists()
    assert runners.run_one("branin", "random", seed=0, batch=1, budget=9, workers=3)["cached"]


def test_async_tables_are_labelled_and_keep_batch_runs_out(
        capsys: pytest.CaptureFixture[str]) -> None:
    args = strategies._parse(["--problems", "branin", "--optimizers", "random", "--seeds", "1",
                              "--budget", "2", "--protocol", "async", "--workers", "3"])
    assert args.settings == [(1, 3)]
    results = [_run("branin", "random", [1.0, 2.0]) | {"workers": 3},
               _run("branin", "random", [9.0, 9.0])]  # a batch-1 run: not in this table
    strategies.print_tables(results, args)
    out = capsys.readouterr().out
    assert "### async 3 workers: budget 2, 1 seeds" in out
    assert "| branin | random | 1 | 1 | 1 |" in out
