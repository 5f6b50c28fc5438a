"""Asynchronous rounds in whole studies: real Prefect (shared API), real MLflow.

The first trial to start sleeps for a long time, every other trial briefly. With
asynchronous rounds the other slot keeps running trials meanwhile, through rounds
that overlap the slow one; with barrier rounds nothing new starts until the round
with the slow trial has ended. What Prefect shows is read back from its API.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from typing import Any
from uuid import UUID

import pytest
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterParentFlowRunId,
    TaskRunFilter,
    TaskRunFilterFlowRunId,
)
from prefect.client.schemas.objects import FlowRun, TaskRun

from amtune.flows.loop import ROUND_TRIALS
from amtune.flows.study import study_flow
from tests.flows.helpers import study_runs

# The fast trials last long enough together (9 x 0.4 s) for the next round's subflow to
# start while the slow one runs, even on a busy machine (~3.5 s seen under CI load).
SLOW_S, FAST_S = 5.0, 0.4
_CALLS = [0]
_LOCK = threading.Lock()


def slow_first(params: dict[str, Any]) -> float:
    """The first call of a study (reset by each test) is slow, the others quick."""
    with _LOCK:
        first = _CALLS[0] == 0
        _CALLS[0] += 1
    time.sleep(SLOW_S if first else FAST_S)
    return float(params["x"])


def run(name: str, uri: str, rounds: str, n: int = 10) -> tuple[UUID, list[Any]]:
    _CALLS[0] = 0
    state = study_flow(spec={
        "name": name, "objective": {"function": f"{__name__}:slow_first", "metric": "value"},
        "parameters": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        "strategy": {"name": "random"}, "budget": {"max_trials": n, "max_parallel": 2},
        "execution": {"rounds": rounds}, "seed": 3, "tracking": {"uri": uri}},
        return_state=True)
    assert state.is_completed(), state
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    return flow_run_id, study_runs(uri, name)[1]


def prefect_rounds(flow_run_id: UUID) -> tuple[list[FlowRun], list[TaskRun]]:
    with get_client(sync_client=True) as client:
        rounds = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id])))
        tasks = client.read_task_runs(task_run_filter=TaskRunFilter(
            flow_run_id=TaskRunFilterFlowRunId(any_=[r.id for r in rounds])), limit=200)
    return rounds, tasks


def slow_and_others(children: list[Any]) -> tuple[Any, list[Any]]:
    slow = max(children, key=lambda r: r.info.end_time - r.info.start_time)
    return slow, [r for r in children if r.info.run_id != slow.info.run_id]


def max_in_flight(children: list[Any]) -> int:
    edges = sorted([(r.info.start_time, 1) for r in children]
                   + [(r.info.end_time, -1) for r in children], key=lambda e: (e[0], e[1]))
    level = peak = 0
    for _, step in edges:
        level += step
        peak = max(peak, level)
    return peak


def test_a_slow_trial_does_not_hold_up_the_others(prefect_api: str, tracking_uri: str) -> None:
    flow_run_id, children = run("async-slow-first", tracking_uri, "async")
    assert len(children) == 10 and all(r.info.status == "FINISHED" for r in children)
    assert sorted(int(r.data.tags["amtune.trial"]) for r in children) == list(range(10))
    slow, others = slow_and_others(children)
    during = [r for r in others if slow.info.start_time <= r.info.start_time
              and r.info.end_time <= slow.info.end_time]
    # 5 s against 0.4 s trials: the second slot runs others meanwhile (barrier rounds
    # would run at most the slow trial's partner in its round); few, for busy machines.
    assert len(during) >= 3, [(r.info.start_time, r.info.end_time) for r in others]
    assert max_in_flight(children) <= 2

    rounds, tasks = prefect_rounds(flow_run_id)
    slow_round = next(r for r in rounds if r.name == f"round-{slow.data.tags['amtune.round']}")
    # Overlapping subflows: another round (with trials) started while the slow one ran.
    # How many rounds there are depends on how fast Prefect starts them; while the next
    # is starting, the open round takes the freed slots itself.
    with_trials = {t.flow_run_id for t in tasks if t.name.startswith("trial-")}
    overlapping = [r for r in rounds if r.id != slow_round.id and r.id in with_trials
                   and r.start_time is not None and slow_round.end_time is not None
                   and r.start_time < slow_round.end_time]
    assert overlapping, [(r.name, r.start_time, r.end_time) for r in rounds]
    by_id = {t.id: t for t in tasks}
    trials = [t for t in tasks if t.name.startswith("trial-")]
    assert len(trials) == 10
    # A round keeps the freed slots until it has started ROUND_TRIALS x max_parallel
    # trials; only the last one, cut short by the budget, may have fewer.
    per_round = Counter(int(r.data.tags["amtune.round"]) for r in children)
    assert all(per_round[k] >= ROUND_TRIALS * 2 for k in sorted(per_round)[:-1]), per_round
    for t in trials:  # each trial is wired to the proposal, in its own round, that made it
        # Prefect may add a stray edge of its own: it links plain values to task
        # results by id() alone (prefect#20558), so only the proposal's edge is checked.
        parents = [by_id[i.id] for i in t.task_inputs.get("wait_for", []) if i.id in by_id]
        proposals = [p for p in parents if p.name.startswith("propose_batch")
                     and p.flow_run_id == t.flow_run_id]
        assert proposals, t.task_inputs
        history = [by_id[i.id] for i in proposals[0].task_inputs["history"] if i.id in by_id]
        assert any(h.name.startswith("load_history") and h.flow_run_id == t.flow_run_id
                   for h in history), proposals[0].task_inputs


def test_barrier_rounds_wait_for_their_slowest_trial(prefect_api: str,
                                                     tracking_uri: str) -> None:
    flow_run_id, children = run("barrier-slow-first", tracking_uri, "barrier", n=6)
    assert len(children) == 6
    slow, others = slow_and_others(children)
    later = [r for r in others if r.data.tags["amtune.round"] != slow.data.tags["amtune.round"]]
    assert later and all(r.info.start_time >= slow.info.end_time for r in later)
    rounds, tasks = prefect_rounds(flow_run_id)
    proposals = [t for t in tasks if t.name.startswith("propose_batch")]
    assert len(proposals) == len([r for r in rounds if r.end_time]) == 3  # one batch each
    spans = sorted((r.start_time, r.end_time) for r in rounds)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans))


@pytest.mark.parametrize("rounds", ["async", "barrier"])
def test_exactly_max_trials_when_trials_end_together(prefect_api: str, tracking_uri: str,
                                                     rounds: str) -> None:
    """Instant trials end in bursts: the budget is never overshot, numbers never reused."""
    _CALLS[0] = 1  # no slow trial
    state = study_flow(spec={
        "name": f"burst-{rounds}", "objective": {"function": f"{__name__}:slow_first",
                                                 "metric": "value"},
        "parameters": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        "strategy": {"name": "sobol"}, "budget": {"max_trials": 23, "max_parallel": 4},
        "execution": {"rounds": rounds}, "seed": 0, "tracking": {"uri": tracking_uri}},
        return_state=True)
    assert state.is_completed(), state
    children = study_runs(tracking_uri, f"burst-{rounds}")[1]
    assert sorted(int(r.data.tags["amtune.trial"]) for r in children) == list(range(23))
    assert max_in_flight(children) <= 4
    assert len({r.data.params["x"] for r in children}) == 23  # no point proposed twice


def steady(params: dict[str, Any]) -> float:
    """Long enough for the next proposal to be made meanwhile, even on a busy machine."""
    time.sleep(1.0)
    return float(params["x"])


@pytest.mark.parametrize("ahead", [True, False])
def test_the_next_trial_is_planned_while_the_slot_is_busy(prefect_api: str, tracking_uri: str,
                                                          ahead: bool) -> None:
    """One slot: each trial after the first was proposed before the one before it ended
    (after it, with ``plan_ahead: false``), and its MLflow run still starts only once
    that one has ended."""
    name = f"plan-ahead-{ahead}"
    state = study_flow(spec={
        "name": name, "objective": {"function": f"{__name__}:steady", "metric": "value"},
        "parameters": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        "strategy": {"name": "random"}, "budget": {"max_trials": 4, "max_parallel": 1},
        "execution": {"plan_ahead": ahead}, "seed": 1, "tracking": {"uri": tracking_uri}},
        return_state=True)
    assert state.is_completed(), state
    assert state.state_details.flow_run_id is not None
    children = sorted(study_runs(tracking_uri, name)[1],
                      key=lambda r: int(r.data.tags["amtune.trial"]))
    assert [r.info.status for r in children] == ["FINISHED"] * 4
    for before, after in itertools.pairwise(children):  # MLflow's times are the trials' own
        assert after.info.start_time >= before.info.end_time
    _, tasks = prefect_rounds(state.state_details.flow_run_id)
    by_id = {t.id: t for t in tasks}
    trials = sorted((t for t in tasks if t.name.startswith("trial-")), key=lambda t: t.name)
    assert len(trials) == 4
    for before, after in itertools.pairwise(trials):
        proposal = next(by_id[i.id] for i in after.task_inputs["wait_for"]
                        if i.id in by_id and by_id[i.id].name.startswith("propose_batch"))
        assert proposal.end_time is not None and before.end_time is not None
        assert (proposal.end_time < before.end_time) == ahead, (proposal.name, after.name)


def test_a_trial_planned_ahead_leaves_no_run_when_the_study_ends_first(
        prefect_api: str, tracking_uri: str) -> None:
    state = study_flow(spec={
        "name": "plan-ahead-dropped", "objective": {"function": f"{__name__}:steady",
                                                    "metric": "value"},
        "parameters": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        "strategy": {"name": "random"},
        "budget": {"max_trials": 10, "max_parallel": 1, "target": 1.0},  # the first meets it
        "seed": 1, "tracking": {"uri": tracking_uri}}, return_state=True)
    assert state.is_completed(), state
    assert state.state_details.flow_run_id is not None
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name("plan-ahead-dropped")
    assert exp is not None
    runs = client.search_runs([exp.experiment_id], run_view_type=ViewType.ALL)
    trials = [r for r in runs if "amtune.trial" in r.data.tags]
    assert [(r.info.status, r.info.lifecycle_stage) for r in trials] == [("FINISHED", "active")]
    _, tasks = prefect_rounds(state.state_details.flow_run_id)
    assert len([t for t in tasks if t.name.startswith("propose_batch")]) == 2  # one ahead
