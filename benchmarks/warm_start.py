"""Warm start on a scheduled re-tune: best after 10 trials, with and without it.

The scenario of ``warm_start: previous``: last night's study ran ``--prior`` trials
of ``gp_ei``; tonight the data has drifted a little (the objective is the same
problem shifted by ``--shift`` of each parameter's range) and tonight's study runs
10 trials. Cold, tonight's ``gp_ei`` starts from nothing; warm, it starts from
last night's completed trials, exactly as the study flow gives them to it (prior
history first, the study's own trials after, batch by batch). Printed: simple
regret (best value found minus the optimum) after 10 trials, median and mean
over seeds, and on how many seeds warm beats cold.

    python -m benchmarks.warm_start                        # branin and hartmann6, 10 seeds
    python -m benchmarks.warm_start --problems branin --seeds 3
    python -m benchmarks.warm_start --flow --seeds 2       # through the real study flow

``--flow`` runs both nights as real studies (Prefect's ephemeral API, MLflow in a
temporary SQLite store), so it also checks that the flow reproduces the direct
simulation (it does: seed 0 on branin gives 16.62 cold, 0.216 warm both ways); it
is much slower.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping
from typing import Any

from amtune.strategies import SearchSpace, Trial, make_strategy
from benchmarks.problems import PROBLEMS, Problem

Objective = Callable[[Mapping[str, Any]], float]


def shifted(problem: Problem, shift: float) -> Objective:
    """Tonight's objective: the problem moved by ``shift`` of each range (optimum kept)."""
    deltas = {k: shift * (v["high"] - v["low"]) for k, v in problem.space.items()}

    def f(params: Mapping[str, Any]) -> float:
        return problem({k: params[k] - deltas[k] for k in params})

    return f


def tune(space: SearchSpace, f: Objective, trials: int, batch: int, seed: int,
         prior: list[Trial]) -> list[Trial]:
    """What the study flow does, minus Prefect and MLflow: rounds of ``batch`` proposals."""
    strategy = make_strategy("gp_ei", space, seed=seed)
    own: list[Trial] = []
    while len(own) < trials:
        for params in strategy.propose([*prior, *own], min(batch, trials - len(own))):
            own.append(Trial(params, f(params)))
    return own


def direct(problem: Problem, seed: int, args: argparse.Namespace) -> tuple[float, float]:
    space = SearchSpace.from_dict(problem.space)
    last_night = tune(space, shifted(problem, 0.0), args.prior, args.batch, seed + 1000, [])
    tonight = shifted(problem, args.shift)
    cold = tune(space, tonight, 10, args.batch, seed, [])
    warm = tune(space, tonight, 10, args.batch, seed, last_night)
    return (min(t.value for t in cold) - problem.optimum,  # type: ignore[type-var]
            min(t.value for t in warm) - problem.optimum)  # type: ignore[type-var]


def through_flow(problem: Problem, seed: int, args: argparse.Namespace) -> tuple[float, float]:
    """Both nights as real studies, tonight's cold and warm ones in separate experiments."""
    from amtune.flows.study import study_flow
    from benchmarks import warm_start as this  # under `python -m` this file is __main__

    def study(name: str, experiment: str, seed: int, trials: int, **extra: Any) -> float:
        result = study_flow(spec={
            "name": name, "seed": seed, "parameters": problem.space,
            "objective": {"function": "benchmarks.warm_start:flow_objective", "metric": "value"},
            "strategy": {"name": "gp_ei"}, "tracking": {"uri": uri, "experiment": experiment},
            "budget": {"max_trials": trials, "max_parallel": args.batch}, **extra})
        return float(result.best_value) - problem.optimum

    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        this.OBJECTIVE["f"] = shifted(problem, 0.0)
        study("night-1", "retune", seed + 1000, args.prior)
        this.OBJECTIVE["f"] = shifted(problem, args.shift)
        cold = study("night-2-cold", "retune-cold", seed, 10)
        warm = study("night-2-warm", "retune", seed, 10, warm_start="previous")
    return cold, warm


OBJECTIVE: dict[str, Objective] = {}


def flow_objective(params: Mapping[str, Any]) -> float:
    """The objective the ``--flow`` studies call (set per night by ``through_flow``)."""
    return OBJECTIVE["f"](params)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--problems", default="branin,hartmann6")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--prior", type=int, default=20, help="trials of last night's study")
    ap.add_argument("--shift", type=float, default=0.02, help="drift, fraction of each range")
    ap.add_argument("--batch", type=int, default=2, help="max_parallel of both studies")
    ap.add_argument("--flow", action="store_true", help="run the real study flow")
    args = ap.parse_args()
    if args.flow:
        from amtune.flows.cli import quiet_defaults

        quiet_defaults()  # the CLI's defaults: quiet logs, no telemetry, patient ephemeral API
    run = through_flow if args.flow else direct
    print(f"gp_ei, best after 10 trials tonight (simple regret, lower is better); "
          f"prior {args.prior} trials, drift {args.shift:g}, batch {args.batch}, "
          f"{args.seeds} seeds, {'study flow' if args.flow else 'direct'}")
    print(f"{'problem':<12} {'cold median':>12} {'warm median':>12} {'cold mean':>10} "
          f"{'warm mean':>10} {'warm better':>12} {'seconds':>8}")
    for name in args.problems.split(","):
        problem = PROBLEMS[name]
        t0 = time.perf_counter()
        pairs = [run(problem, seed, args) for seed in range(args.seeds)]
        cold, warm = [c for c, _ in pairs], [w for _, w in pairs]
        better = sum(w < c for c, w in pairs)
        print(f"{name:<12} {statistics.median(cold):>12.4g} {statistics.median(warm):>12.4g} "
              f"{statistics.fmean(cold):>10.4g} {statistics.fmean(warm):>10.4g} "
              f"{better:>7}/{args.seeds:<4} {time.perf_counter() - t0:>8.1f}", flush=True)


if __name__ == "__main__":
    main()
