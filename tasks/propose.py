"""The two planning tasks of a round: read the history back, propose the next batch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from amtune.strategies import SearchSpace, Trial, make_strategy
from amtune.strategies.base import KeyedTrials
from amtune.tasks.context import PlannedTrial
from amtune.tasks.store.study import StudyStore

if TYPE_CHECKING:
    from amtune.flows.spec import StudySpec


class History:
    """``load_history``'s trials as one object.

    Prefect links a task's result to its state element by element (a weak reference
    and a dict entry per trial: 5% of a study's CPU at 5,000 trials); one object is
    one link, and the graph edge history -> proposal stays.
    """

    __slots__ = ("trials",)

    def __init__(self, trials: KeyedTrials) -> None:
        self.trials = trials


@task(name="load_history", cache_policy=NO_CACHE, persist_result=False)
def load_history(store: StudyStore, space: SearchSpace, sign: float) -> History:
    """Every trial of the study as MLflow holds it, the ones still running included, as
    the strategy takes them (minimised values, trial order)."""
    return History(store.trials(space, sign))


@task(name="propose_batch", cache_policy=NO_CACHE, persist_result=False)
def propose_batch(spec: StudySpec, store: StudyStore, history: History, n: int,
                  round_: int, prior: tuple[Trial, ...] = (),
                  open_runs: bool = True) -> list[PlannedTrial]:
    """Ask the strategy for ``n`` points and open one MLflow child run for each.

    The strategy is rebuilt from (space, seed, options) every round: the batch is a
    function of the history alone (trials still running included, as pending), which
    is what makes a resumed study propose what the interrupted one would have.
    ``open_runs=False`` (a trial planned ahead): the runs are opened when the trials
    start (``open_run``), so MLflow's start times and durations stay the trials' own;
    their run ids are empty until then.
    """
    strategy = make_strategy(spec.strategy.name, spec.space, seed=spec.seed,
                             **spec.strategy.options)
    trials = history.trials.after(prior, spec.space) if prior else history.trials
    batch: list[dict[str, Any]] = strategy.propose(trials, n) if n > 0 else []
    planned = []
    for number, params in zip(store.free_numbers(len(batch)), batch, strict=True):
        run_id = store.start_trial(number, round_, params, spec.strategy.name) if open_runs \
            else ""
        planned.append(PlannedTrial(number, round_, params, run_id))
    return planned


def open_run(spec: StudySpec, store: StudyStore, plan: PlannedTrial) -> PlannedTrial:
    """The MLflow run of a trial planned ahead, opened as it starts."""
    if plan.run_id:
        return plan
    run_id = store.start_trial(plan.number, plan.round, plan.params, spec.strategy.name)
    return PlannedTrial(plan.number, plan.round, plan.params, run_id)
