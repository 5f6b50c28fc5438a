"""The shipped command example: its spec is consistent and one trial really trains."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from amtune.strategies import SearchSpace, make_strategy, strategy_names
from amtune.tasks.runners.objective import check_objective, run_objective

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "examples" / "command" / "spec.yaml"


def load_objective() -> tuple[dict, SimpleNamespace]:
    data = yaml.safe_load(SPEC.read_text())
    o = data["objective"]
    metrics = [SimpleNamespace(**m) for m in o["metrics"]]
    return data, SimpleNamespace(
        function=None, command=o["command"], metric=o["metric"], metrics=metrics
    )


def test_spec_is_consistent(monkeypatch):
    monkeypatch.chdir(ROOT)
    data, objective = load_objective()
    check_objective(objective, list(data["parameters"]))
    space = SearchSpace.from_dict(data["parameters"])
    if data["strategy"]["name"] not in strategy_names():
        pytest.fail(f"strategy {data['strategy']['name']!r} is not registered")
    assert len(make_strategy(data["strategy"]["name"], space, seed=0).propose([], 2)) == 2


def test_one_trial_trains_and_reports_every_epoch(monkeypatch):
    monkeypatch.chdir(ROOT)
    _, objective = load_objective()
    params = {"learning_rate": 0.01, "alpha": 1e-4, "hidden_units": 32, "activation": "relu"}
    history: dict[str, list[tuple[int, float]]] = {}

    def report(step: int, metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            history.setdefault(name, []).append((step, value))

    out = run_objective(objective, params, report=report, timeout_s=120)
    assert set(history) == {"accuracy", "val_loss", "train_loss"}
    for name, points in history.items():
        assert [s for s, _ in points] == list(range(8)), name
        assert out.metrics[name] == points[-1][1]
    assert 0.8 < out.metrics["accuracy"] <= 1.0  # 8 epochs of a real MLP on digits
    assert history["train_loss"][-1][1] < history["train_loss"][0][1]
    assert "'learning_rate': 0.01" in out.output  # the appended args reached argparse
