"""Chaos on a small scale: flaky trials and a SIGKILLed study still end consistent.

Two studies (different seeds) run side by side, each killed once at a random moment
and rerun until done; then every invariant of the chaos harness must hold. The large
run is ``python benchmarks/chaos.py``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.chaos.harness import ChaosConfig, Verdict, check_study, drive, write_study


def run_one(root: Path, seed: int, prefect_api: str) -> tuple[Verdict, list[int], int]:
    cfg = ChaosConfig(seed=seed, max_trials=8, max_parallel=2, fail_rate=0.3, kills=1)
    run = drive(write_study(root, f"chaos-{seed}", cfg, prefect_api), cfg)
    return check_study(run, cfg), run.exit_codes, run.kills


@pytest.mark.timeout(900)  # a minute on an idle 2-core machine; much more on a shared one
def test_chaos_small(tmp_path: Path, prefect_api: str) -> None:
    """Both studies share the session's Prefect server, which outlives the killed runs."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(lambda seed: run_one(tmp_path, seed, prefect_api), (11, 12)))
    for verdict, exit_codes, kills in outcomes:
        assert verdict.violations == [], (verdict.name, exit_codes, verdict.violations)
        assert kills == 1, exit_codes  # the study really was killed once
        assert verdict.terminal == 8
        assert verdict.lost == 0 and verdict.duplicated == 0
    # the chaos really happened: attempts misbehaved, and the failures show in MLflow
    modes = [
        line.split()[1]
        for log in tmp_path.glob("chaos-*/attempts/*.log")
        for line in log.read_text().splitlines()
    ]
    assert len(set(modes) - {"ok"}) >= 2, modes
