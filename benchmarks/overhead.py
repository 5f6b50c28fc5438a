"""Per-trial cost of amtune's machinery, side by side with the alternatives.

    python -m benchmarks.overhead                 # 200 trials, max_parallel 4
    python -m benchmarks.overhead --trials 100 --only amtune,bare

An instant objective, so what is measured is orchestration plus tracking:

- ``bare``: a plain loop writing the same MLflow parent and child runs with
  ``MlflowClient`` (create, one ``log_batch``, terminate), default SQLite journal;
- ``bare-wal``: the same loop on a database in WAL mode (what amtune uses);
- ``optuna``: ``study.optimize`` with Optuna's ``MLflowCallback`` (nested runs);
- ``prefect-floor``: Prefect alone in amtune's shape (a flow, one subflow per round
  without heartbeat, a planning task and ``max_parallel`` trial tasks per round),
  empty bodies and no MLflow at all: the least any round-per-subflow design costs;
- ``prefect-tasks``: the same tasks with each round as plain code in one flow (no
  subflows): what Prefect costs when rounds are not subflows (not run by default);
- ``amtune``: the real study flow (round subflows, trial tasks, MLflow) on
  Prefect's ephemeral API, started once beforehand and reported separately;
  ``amtune-barrier``: the same with ``execution.rounds: barrier``.

Each contender gets its own fresh SQLite database in a temp dir.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from amtune.flows.cli import quiet_defaults  # noqa: E402  (sets Prefect's env before it loads)

SPACE = {"x": {"type": "float", "low": -5.0, "high": 5.0},
         "y": {"type": "float", "low": -5.0, "high": 5.0}}


def instant(params: dict[str, Any]) -> float:
    return params["x"] ** 2 + params["y"] ** 2


def bare(uri: str, n: int, wal: bool) -> None:
    import random
    import sqlite3

    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    c = MlflowClient(uri)
    if wal:
        with sqlite3.connect(uri.removeprefix("sqlite:///")) as db:
            db.execute("PRAGMA journal_mode=WAL")
    exp = c.create_experiment("bare")
    parent = c.create_run(exp, run_name="bare", tags={"amtune.study": "bare"}).info.run_id
    rng = random.Random(0)
    for i in range(n):
        params = {"x": rng.uniform(-5, 5), "y": rng.uniform(-5, 5)}
        run = c.create_run(exp, run_name=f"trial-{i:04d}",
                           tags={"mlflow.parentRunId": parent, "amtune.trial": str(i)})
        value = instant(params)
        ts = int(time.time() * 1000)
        c.log_batch(run.info.run_id, metrics=[Metric("value", value, ts, 0)],
                    params=[Param(k, str(v)) for k, v in params.items()],
                    tags=[RunTag("amtune.attempts", "1")])
        c.set_terminated(run.info.run_id, "FINISHED")
    c.set_terminated(parent, "FINISHED")


def optuna_mlflow(uri: str, n: int) -> None:
    import logging
    import warnings

    import mlflow
    import optuna
    from optuna.integration.mlflow import MLflowCallback

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("optuna")
    warnings.filterwarnings("ignore", category=FutureWarning)  # deprecated in optuna 4.9+
    callback = MLflowCallback(tracking_uri=uri, metric_name="value", create_experiment=False,
                              mlflow_kwargs={"nested": True})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    with mlflow.start_run(run_name="optuna"):
        study.optimize(lambda t: instant({"x": t.suggest_float("x", -5, 5),
                                          "y": t.suggest_float("y", -5, 5)}),
                       n_trials=n, callbacks=[callback])


def amtune(uri: str, n: int, parallel: int, rounds: str = "async") -> dict[str, Any]:
    from mlflow.tracking import MlflowClient

    from amtune.flows.study import study_flow

    spec = {"name": "overhead", "objective": {"function": "benchmarks.overhead:instant",
                                              "metric": "value"},
            "parameters": SPACE, "strategy": {"name": "random"},
            "budget": {"max_trials": n, "max_parallel": parallel},
            "trial": {"retries": 1, "retry_delay_s": 0}, "seed": 0,
            "execution": {"rounds": rounds}, "tracking": {"uri": uri}}
    r = study_flow(spec=spec)
    assert r.trials == n and r.failed == 0, r
    c = MlflowClient(uri)
    runs = c.search_runs([r.experiment_id], "tags.`amtune.trial` != ''", max_results=50000)
    return {"rounds": len({run.data.tags["amtune.round"] for run in runs})}


def prefect_floor(n: int, parallel: int, subflows: bool = True) -> dict[str, Any]:
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE
    from prefect.task_runners import ThreadPoolTaskRunner

    from amtune.flows.rounds import without_heartbeat

    @task(cache_policy=NO_CACHE, persist_result=False)
    def plan(n: int) -> list[int]:
        return list(range(n))

    @task(cache_policy=NO_CACHE, persist_result=False)
    def trial(i: int) -> int:
        return i

    @flow(name="floor-round", persist_result=False, validate_parameters=False)
    def round_(n: int) -> list[int]:
        return [f.result() for f in trial.map(plan(n))]

    @flow(name="floor-study", persist_result=False,
          task_runner=ThreadPoolTaskRunner(max_workers=parallel))
    def study() -> None:
        for k in range(0, n, parallel):
            if not subflows:  # the same tasks, the round as plain code in the study flow
                round_.fn(min(parallel, n - k))
                continue
            sub = round_.with_options(flow_run_name=f"round-{k}",
                                      task_runner=ThreadPoolTaskRunner(max_workers=parallel))
            with without_heartbeat():
                sub(min(parallel, n - k))

    study()
    return {"rounds": -(-n // parallel)}


def prepare(uri: str, name: str) -> None:
    """Untimed: imports and the database schema (MLflow migrates a new SQLite file)."""
    from mlflow.tracking import MlflowClient

    MlflowClient(uri).search_experiments(max_results=1)
    if name == "optuna":
        import optuna  # noqa: F401
        from optuna.integration.mlflow import MLflowCallback  # noqa: F401
    if name.startswith("amtune"):
        import amtune.flows.study  # noqa: F401
        from amtune.tasks.store.client import connect
        from amtune.tasks.store.outage import OutageGuard

        connect(uri, OutageGuard())  # schema and WAL, as the study's store sets them up


def trial_span_s(uri: str) -> float:
    """First trial run's start to last trial run's end, from MLflow: the steady state,
    without each tool's one-off set-up and summary costs."""
    from mlflow.tracking import MlflowClient

    c = MlflowClient(uri)
    ids = [e.experiment_id for e in c.search_experiments()]
    runs = [r for r in c.search_runs(ids, max_results=50000)
            if "mlflow.parentRunId" in r.data.tags]
    return (max(r.info.end_time for r in runs) - min(r.info.start_time for r in runs)) / 1000


def start_prefect() -> float:
    """Bring up Prefect's ephemeral API (a one-off cost per process) and time it."""
    from prefect.client.orchestration import get_client

    t0 = time.perf_counter()
    with get_client(sync_client=True) as client:
        client.hello()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("--only",
                    default="bare,bare-wal,optuna,prefect-floor,amtune,amtune-barrier")
    args = ap.parse_args(argv)
    quiet_defaults()
    wanted = args.only.split(",")
    with tempfile.TemporaryDirectory(prefix="amtune-overhead-") as tmp:
        os.environ.setdefault("PREFECT_HOME", str(Path(tmp) / "prefect"))
        os.chdir(tmp)  # MLflow's default artifact root is relative to the working dir
        runs: dict[str, Callable[[str], Any]] = {
            "bare": lambda u: bare(u, args.trials, wal=False),
            "bare-wal": lambda u: bare(u, args.trials, wal=True),
            "optuna": lambda u: optuna_mlflow(u, args.trials),
            "prefect-floor": lambda u: prefect_floor(args.trials, args.parallel),
            "prefect-tasks": lambda u: prefect_floor(args.trials, args.parallel, subflows=False),
            "amtune": lambda u: amtune(u, args.trials, args.parallel),
            "amtune-barrier": lambda u: amtune(u, args.trials, args.parallel, "barrier"),
        }
        if {"amtune", "amtune-barrier", "prefect-floor", "prefect-tasks"} & set(wanted):
            print(f"prefect ephemeral API start-up: {start_prefect():.2f} s (once per process, "
                  "not counted below)", flush=True)
        rows = []
        for name in wanted:
            uri = f"sqlite:///{Path(tmp) / (name + '.db')}"
            prepare(uri, name)
            t0 = time.perf_counter()
            extra = runs[name](uri)
            wall = time.perf_counter() - t0
            span = wall if name.startswith("prefect-") else trial_span_s(uri)
            rows.append((name, wall, span))
            print(f"{name:13s} {wall:7.2f} s  {1000 * wall / args.trials:7.1f} ms/trial"
                  + (f"  ({extra})" if extra else ""), flush=True)
    n = args.trials
    base = {name: (wall, span) for name, wall, span in rows}.get("bare")
    print(f"\n{n} trials, instant objective, amtune max_parallel {args.parallel}")
    print("wall: the whole call; trials: first trial start to last trial end (steady state)")
    print(f"{'contender':13s} {'wall s':>7s} {'ms/trial':>9s} {'x bare':>7s}   "
          f"{'trials s':>8s} {'ms/trial':>9s} {'x bare':>7s}")
    for name, wall, span in rows:
        r1 = f"{wall / base[0]:7.2f}" if base else "      -"
        r2 = f"{span / base[1]:7.2f}" if base else "      -"
        print(f"{name:13s} {wall:7.2f} {1000 * wall / n:9.1f} {r1}   "
              f"{span:8.2f} {1000 * span / n:9.1f} {r2}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
