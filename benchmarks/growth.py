"""Does a trial cost more as the history grows? A long study of instant trials.

    python -m benchmarks.growth                       # 5,000 trials, max_parallel 8
    python -m benchmarks.growth --trials 2000 --block 500

Runs one ``random`` study with an instant objective on a fresh MLflow SQLite store
and Prefect's ephemeral API, then prints, per block of trials (in the order they
ended, read back from MLflow), the trials per second and the mean time spent in the
store calls every proposal and trial makes (``trials``, ``start_trial``,
``finish_trial``, timed by wrapping the methods in this process), and the CPU time
per trial of this process and of its child processes (Prefect's ephemeral API), read
every 0.25 s. CPU per trial is what other load on the machine changes least: on a
shared machine compare it, not the rates. The study's one-off start-up and summary
are left out. Flat cost means the last block's rate is no lower than the first's
(and its CPU per trial no higher).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from amtune.flows.cli import quiet_defaults  # noqa: E402  (sets Prefect's env before it loads)

TIMED = ("trials", "start_trial", "finish_trial")  # trials: the read each proposal makes
_CALLS: dict[str, list[tuple[float, float]]] = defaultdict(list)  # name -> (end, seconds)
_LOCK = threading.Lock()
_CPU: list[tuple[float, float, float]] = []  # (epoch s, CPU s of this process, of children)


def _sample_cpu(stop: threading.Event) -> None:
    me = psutil.Process()
    while not stop.wait(0.25):
        kids = 0.0
        for child in me.children(recursive=True):
            try:
                t = child.cpu_times()
                kids += t.user + t.system
            except psutil.Error:  # ended meanwhile
                pass
        t = me.cpu_times()
        _CPU.append((time.time(), t.user + t.system, kids))


def _cpu_at(t: float) -> tuple[float, float]:
    """CPU seconds (this process, children) at epoch ``t``: the last sample before it."""
    best = _CPU[0]
    for sample in _CPU:
        if sample[0] > t:
            break
        best = sample
    return best[1], best[2]


def instant(params: dict[str, Any]) -> float:
    return float(params["x"]) ** 2


def _timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            t1 = time.perf_counter()
            with _LOCK:
                _CALLS[name].append((time.time(), t1 - t0))
    return call


def run(uri: str, n: int, parallel: int) -> list[float]:
    """The study; returns every trial's end time (epoch seconds), in order."""
    from mlflow.tracking import MlflowClient

    from amtune.flows.study import study_flow
    from amtune.tasks.store.study import StudyStore

    for name in TIMED:
        setattr(StudyStore, name, _timed(name, getattr(StudyStore, name)))
    r = study_flow(spec={
        "name": "growth", "objective": {"function": "benchmarks.growth:instant",
                                        "metric": "value"},
        "parameters": {"x": {"type": "float", "low": -1.0, "high": 1.0}},
        "strategy": {"name": "random"}, "budget": {"max_trials": n, "max_parallel": parallel},
        "seed": 0, "tracking": {"uri": uri}})
    assert r.trials == n and r.failed == 0, r
    client = MlflowClient(uri)
    runs = client.search_runs([r.experiment_id], f"tags.`mlflow.parentRunId` = "
                              f"'{r.parent_run_id}'", max_results=50_000)
    return sorted(run.info.end_time / 1000 for run in runs)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=5000)
    p.add_argument("--parallel", type=int, default=8)
    p.add_argument("--block", type=int, default=1000)
    args = p.parse_args(argv)
    quiet_defaults()
    stop = threading.Event()
    sampler = threading.Thread(target=_sample_cpu, args=(stop,), daemon=True)
    sampler.start()
    with tempfile.TemporaryDirectory() as tmp:
        # A fresh Prefect database, not the user's: ~/.prefect's grows with every study
        # run on the machine (3.4 GB here), and its API slows with it.
        os.environ.setdefault("PREFECT_HOME", str(Path(tmp) / "prefect"))
        t0 = time.monotonic()
        ends = run(f"sqlite:///{Path(tmp) / 'mlflow.db'}", args.trials, args.parallel)
        wall = time.monotonic() - t0
    stop.set()
    print(f"{args.trials} instant trials, max_parallel {args.parallel}: {wall:.1f} s in all, "
          f"{ends[-1] - ends[0]:.1f} s from the first trial's end to the last's", flush=True)
    print(f"{'trials':>11} {'trials/s':>9} " + " ".join(f"{n + ' ms':>16}" for n in TIMED)
          + f" {'CPU ms/trial':>13} {'children':>9}")
    for lo in range(0, len(ends), args.block):
        hi = min(lo + args.block, len(ends)) - 1
        t_lo, t_hi = ends[lo], ends[hi]
        rate = (hi - lo) / (t_hi - t_lo) if t_hi > t_lo else float("nan")
        means = []
        for name in TIMED:
            xs = [s for end, s in _CALLS[name] if t_lo <= end <= t_hi]
            means.append(1000 * sum(xs) / len(xs) if xs else float("nan"))
        (me0, kid0), (me1, kid1) = _cpu_at(t_lo), _cpu_at(t_hi)
        cpu = [1000 * (me1 - me0) / (hi - lo), 1000 * (kid1 - kid0) / (hi - lo)]
        print(f"{lo + 1:>5}-{hi + 1:<5} {rate:>9.1f} " + " ".join(f"{m:>16.1f}" for m in means)
              + f" {cpu[0]:>13.1f} {cpu[1]:>9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
