"""Slot utilisation when trial durations differ: amtune async, amtune barrier, Optuna.

    python -m benchmarks.utilisation                  # 40 trials, max_parallel 4
    python -m benchmarks.utilisation --trials 80 --parallel 8 --only async,optuna
    python -m benchmarks.utilisation --trials 20 --scale 5   # trials of 1-10 s

Each trial sleeps for a time set by its parameter (``0.2 + 1.8 * x`` seconds, x in
[0, 1], times ``--scale``), as real training runs differ with their hyperparameters.
Each sampler then draws its own durations, and the tail of the run (the last trials,
when slots idle because none is left to start) differs with them. ``--durations
order`` takes that luck out: the k-th trial to start sleeps the k-th of one seeded
list, the same for every contender. Utilisation is
busy trial-seconds / (max_parallel x span), the span running from the first trial's
start to the last trial's end, measured by the trials themselves, so each tool's
one-off start-up and summary are left out. The idle slot-seconds are split into
``gaps`` (before the last trial starts: freed slots waiting for their next trial,
the tool's turnaround; ``per start`` divides them by the trials that started into a
freed slot) and ``tail`` (after it: nothing left to start). All contenders run in one process, one
after the other, each with its own fresh MLflow SQLite store.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from amtune.flows.cli import quiet_defaults  # noqa: E402  (sets Prefect's env before it loads)

_SPANS: list[tuple[float, float]] = []  # (start, end) of every trial of the current run
_ORDER: list[float] = []  # --durations order: the k-th trial to start sleeps _ORDER[k]
_STARTS = [0]
_LOCK = threading.Lock()


def sleepy(params: dict[str, Any]) -> float:
    """The objective: sleeps ``(0.2 + 1.8 x) * AMTUNE_BENCH_SCALE`` seconds (or, with
    ``--durations order``, the next of one seeded list), says when it ran."""
    start = time.time()
    with _LOCK:
        k, _STARTS[0] = _STARTS[0], _STARTS[0] + 1
    scale = float(os.environ.get("AMTUNE_BENCH_SCALE", 1))
    time.sleep(_ORDER[k] if _ORDER else (0.2 + 1.8 * float(params["x"])) * scale)
    with _LOCK:
        _SPANS.append((start, time.time()))
    return float(params["x"])


def in_start_order(n: int, scale: float, seed: int = 0) -> list[float]:
    """Seeded durations of 0.2-2.0 s times ``scale``, one per trial in start order."""
    import numpy as np

    return [float(d) for d in np.random.default_rng(seed).uniform(0.2, 2.0, n) * scale]


def run_amtune(uri: str, n: int, parallel: int, rounds: str) -> int:
    from amtune.flows.study import study_flow

    r = study_flow(spec={
        "name": f"util-{rounds}-{time.time_ns()}",  # a fresh study on a shared server
        "objective": {"function": "benchmarks.utilisation:sleepy", "metric": "value"},
        "parameters": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        "strategy": {"name": "random"}, "budget": {"max_trials": n, "max_parallel": parallel},
        "execution": {"rounds": rounds}, "seed": 0, "tracking": {"uri": uri}})
    assert r.trials == n and r.failed == 0, r
    from mlflow.tracking import MlflowClient

    from amtune.tasks.store.schema import ROUND

    runs = MlflowClient(uri).search_runs([r.experiment_id], f"tags.`{ROUND}` != ''")
    return len({run.data.tags[ROUND] for run in runs})  # the round subflows with trials


def run_optuna(n: int, parallel: int) -> int:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    from benchmarks.utilisation import sleepy as objective

    study.optimize(lambda t: objective({"x": t.suggest_float("x", 0.0, 1.0)}), n_trials=n,
                   n_jobs=parallel)
    return n


def measure(name: str, n: int, parallel: int, order: list[float],
            tracking_uri: str | None = None) -> dict[str, float]:
    # The study imports ``benchmarks.utilisation:sleepy``; run as ``-m``, this file is
    # ``__main__``, so the spans are read from the imported module's list.
    from benchmarks import utilisation as mod

    mod._SPANS.clear()
    mod._STARTS[0] = 0
    mod._ORDER[:] = order
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        uri = tracking_uri or f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        if name == "optuna":
            rounds = 0
            run_optuna(n, parallel)
        else:
            rounds = run_amtune(uri, n, parallel, name)
    wall = time.monotonic() - t0
    spans = list(mod._SPANS)
    busy = sum(e - s for s, e in spans)
    span = max(e for _, e in spans) - min(s for s, _ in spans)
    return {"trials": len(spans), "span_s": span, "wall_s": wall, "rounds": rounds,
            "utilisation": busy / (parallel * span), **idle(spans, parallel)}


def idle(spans: list[tuple[float, float]], parallel: int) -> dict[str, float]:
    """Idle slot-seconds split where they arise: ``gaps`` before the last trial starts
    (a freed slot waiting for its next trial: the tool's turnaround), ``tail`` after it
    (no trial left to start: the durations' luck, the same for every tool)."""
    first = min(s for s, _ in spans)
    last_start = max(s for s, _ in spans)
    end = max(e for _, e in spans)
    busy_before = sum(max(0.0, min(e, last_start) - s) for s, e in spans)
    busy_after = sum(max(0.0, e - max(s, last_start)) for s, e in spans)
    return {"gaps_s": parallel * (last_start - first) - busy_before,
            "tail_s": parallel * (end - last_start) - busy_after,
            "turnaround_s": (parallel * (last_start - first) - busy_before)
            / max(1, len(spans) - parallel)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=40)
    p.add_argument("--parallel", type=int, default=4)
    p.add_argument("--scale", type=float, default=1.0,
                   help="multiply every duration (5: trials of 1-10 s)")
    p.add_argument("--durations", choices=("params", "order"), default="params",
                   help="params: set by each trial's x; order: one seeded list, in start order")
    p.add_argument("--only", default="async,barrier,optuna",
                   help="comma-separated: async, barrier, optuna")
    p.add_argument("--tracking-uri", help="amtune's MLflow, e.g. an `mlflow server` "
                   "(default: a fresh SQLite file per contender)")
    args = p.parse_args(argv)
    quiet_defaults()
    os.environ["AMTUNE_BENCH_SCALE"] = str(args.scale)
    names = [s.strip() for s in args.only.split(",") if s.strip()]
    order = in_start_order(args.trials, args.scale) if args.durations == "order" else []
    print(f"{args.trials} trials of {0.2 * args.scale:g}-{2.0 * args.scale:g} s, "
          f"max_parallel {args.parallel}, durations by {args.durations}", flush=True)
    print(f"{'contender':<10} {'util':>6} {'span s':>8} {'wall s':>8} {'gaps s':>7} "
          f"{'tail s':>7} {'per start':>9} {'rounds':>6}", flush=True)
    # A fresh Prefect database, not the user's: ~/.prefect's grows with every study run
    # on the machine (3.4 GB here), and its API slows with it.
    with tempfile.TemporaryDirectory(prefix="amtune-util-") as tmp:
        os.environ.setdefault("PREFECT_HOME", str(Path(tmp) / "prefect"))
        for name in names:
            r = measure(name, args.trials, args.parallel, order, args.tracking_uri)
            print(f"{name:<10} {r['utilisation']:>6.3f} {r['span_s']:>8.2f} "
                  f"{r['wall_s']:>8.2f} {r['gaps_s']:>7.2f} {r['tail_s']:>7.2f} "
                  f"{r['turnaround_s']:>9.3f} {r['rounds'] or '':>6}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
