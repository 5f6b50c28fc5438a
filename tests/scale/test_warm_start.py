"""Warm start: a study proposes from the completed trials of an earlier one.

Real Prefect (the session's API) and real MLflow (a SQLite store per test).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from mlflow import MlflowClient

from amtune.flows.spec import SpecError
from amtune.flows.study import study_flow
from amtune.strategies import SearchSpace, Trial, make_strategy
from tests.scale.objectives import spec


def _study(client: MlflowClient, exp_id: str, name: str) -> Any:
    runs = client.search_runs([exp_id], f"tags.`amtune.study` = '{name}' and "
                                        "tags.`amtune.role` = 'study'")
    assert len(runs) == 1
    return runs[0]


def _children(client: MlflowClient, exp_id: str, parent_id: str) -> list:
    runs = client.search_runs([exp_id], f"tags.`mlflow.parentRunId` = '{parent_id}'")
    return sorted(runs, key=lambda r: int(r.data.tags["amtune.trial"]))


def test_previous_study_warm_starts_the_next(prefect_api: str, tracking_uri: str) -> None:
    common = {"tracking": {"uri": tracking_uri, "experiment": "nightly"}}
    first = study_flow(spec=spec("night-1", tracking_uri, budget={"max_trials": 6,
                                                                  "max_parallel": 3}, **common))
    assert first.trials == 6
    second = study_flow(spec=spec(
        "night-2", tracking_uri, strategy={"name": "gp_ei"}, warm_start="previous",
        budget={"max_trials": 3, "max_parallel": 3}, **common))
    assert second.trials == 3  # the 6 prior trials are not counted in the budget

    client = MlflowClient(tracking_uri)
    exp_id = client.get_experiment_by_name("nightly").experiment_id
    parent1 = _study(client, exp_id, "night-1")
    parent2 = _study(client, exp_id, "night-2")
    tags = parent2.data.tags
    assert tags["amtune.warm_start"] == "previous"
    assert json.loads(tags["amtune.warm_start.studies"]) == ["night-1"]
    assert tags["amtune.warm_start.trials"] == "6"
    assert "amtune.warm_start.studies" not in parent1.data.tags
    assert len(_children(client, exp_id, parent1.info.run_id)) == 6  # untouched
    kids2 = _children(client, exp_id, parent2.info.run_id)
    assert [r.info.status for r in kids2] == ["FINISHED"] * 3

    # The batch is exactly what gp_ei proposes from night-1's trials as history.
    space = SearchSpace.from_dict(spec("x", tracking_uri)["parameters"])
    prior = [Trial({k: float(v) for k, v in r.data.params.items()}, r.data.metrics["loss"])
             for r in _children(client, exp_id, parent1.info.run_id)]
    expected = make_strategy("gp_ei", space, seed=0).propose(prior, 3)
    got = [{k: float(v) for k, v in r.data.params.items()} for r in kids2]
    assert got == [pytest.approx(p) for p in expected]
    cold = make_strategy("gp_ei", space, seed=0).propose([], 3)
    assert got != cold


def test_named_warm_start_and_its_errors(prefect_api: str, tracking_uri: str) -> None:
    study_flow(spec=spec("base", tracking_uri, budget={"max_trials": 4, "max_parallel": 2}))
    wider = spec("wider", tracking_uri, budget={"max_trials": 1})
    wider["parameters"]["x"]["high"] = 2.0
    study_flow(spec=wider)

    with pytest.raises(SpecError, match=r"warm_start: 'nope' — no such study"):
        study_flow(spec=spec("w1", tracking_uri, warm_start=["nope"]))
    with pytest.raises(SpecError, match=r"warm_start: 'wider' — that study searched a "
                                        "different space"):
        study_flow(spec=spec("w1", tracking_uri, warm_start=["base", "wider"]))
    done = study_flow(spec=spec("w2", tracking_uri, warm_start=["base"],
                                budget={"max_trials": 2, "max_parallel": 2}))
    assert done.trials == 2
    client = MlflowClient(tracking_uri)
    exp_id = client.get_experiment_by_name("w2").experiment_id
    tags = _study(client, exp_id, "w2").data.tags
    assert json.loads(tags["amtune.warm_start.studies"]) == ["base"]
    assert tags["amtune.warm_start.trials"] == "4"
    assert tags["amtune.warm_start"] == '["base"]'
