"""One benchmark run = (problem, optimizer, seed, protocol): run it, or read it from the cache.

amtune strategies are driven only through the public contract
``make_strategy(...).propose(history, n)``; Optuna samplers through ask/tell.
Two protocols:

* **batch** ``b``: propose ``b``, evaluate them all, repeat (Optuna: ask ``b``, tell
  ``b``; the asked trials are pending meanwhile).
* **async** with ``w`` workers: each trial takes a simulated duration, drawn per trial
  from a seeded generator (the same for every optimizer at a seed), so trials finish
  out of order. At the start ``w`` points are proposed at once; then every time a
  worker frees, one point is proposed with the other ``w - 1`` passed as ``running``
  trials (Optuna: asked and not yet told), as amtune's study flow does with
  overlapping rounds. Values are recorded in the order trials finish.

Proposal time is the wall time of ``propose`` (or of the ``n`` asks) divided by
``n``. Each result is cached as JSON together with a fingerprint of the code
that produced it, so editing a strategy reruns exactly the runs it affects.
"""

from __future__ import annotations

import hashlib
import heapq
import inspect
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from benchmarks.problems import PROBLEMS, Problem

RESULTS = Path(__file__).resolve().parent / "results"
RESULTS_ENV = "AMTUNE_BENCH_RESULTS"  # another cache directory, e.g. one shared by worktrees
ASYNC_SALT = 7919  # seeds the durations apart from every optimizer's own generators
DURATION_SIGMA = 0.5  # log-normal durations: the slowest of 4 often takes 2x the fastest
OPTUNA = {"optuna_gp": "GPSampler", "optuna_tpe": "TPESampler", "optuna_random": "RandomSampler"}
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def single_thread() -> None:
    """One BLAS/OpenMP thread per process: runs go in parallel, timings stay comparable."""
    for var in _THREAD_VARS:
        os.environ[var] = "1"
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


GRID_MIN_POINTS = 3  # with 2 a grid only probes the corners of the box: not a fair baseline


def grid_points(problem: Problem, budget: int) -> int | None:
    """The largest per-parameter resolution whose grid fits the budget (None: none fits)."""
    from amtune.strategies import Categorical, SearchSpace

    space = SearchSpace.from_dict(problem.space)
    best = None
    for k in range(GRID_MIN_POINTS, budget + 1):
        size = math.prod(
            p.n_values if isinstance(p, Categorical) else min(k, p.n_values or k)
            for p in space.params
        )
        if size > budget:
            break
        best = k
    return best


def _is_strategy_module(name: str) -> bool:
    """``amtune.strategies.*`` (the installed name) or ``strategies.*`` (a bare checkout)."""
    parts = name.split(".")
    return parts[0] == "strategies" or parts[:2] == ["amtune", "strategies"]


def _module_closure(module: ModuleType) -> list[ModuleType]:
    """``module`` and every ``strategies`` module it uses, directly or indirectly."""
    seen: dict[str, ModuleType] = {}
    todo = [module]
    while todo:
        mod = todo.pop()
        if mod.__name__ in seen:
            continue
        seen[mod.__name__] = mod
        for value in vars(mod).values():
            name = value.__name__ if isinstance(value, ModuleType) else getattr(
                value, "__module__", None)
            if isinstance(name, str) and _is_strategy_module(name) and name in sys.modules:
                todo.append(sys.modules[name])
    return sorted(seen.values(), key=lambda m: m.__name__)


def fingerprint(optimizer: str, problem: Problem, workers: int = 0) -> str:
    """Changes whenever the optimizer's code, the problem or the async protocol changes."""
    h = hashlib.sha256(repr((problem.space, problem.optimum)).encode())
    if workers:
        h.update(f"async {ASYNC_SALT} {DURATION_SIGMA}".encode())
    if optimizer in OPTUNA:
        import optuna

        h.update(f"optuna {optuna.__version__}".encode())
    else:
        from amtune.strategies.base import _lookup

        for mod in _module_closure(sys.modules[_lookup(optimizer).__module__]):
            h.update(inspect.getsource(mod).encode())
    return h.hexdigest()[:16]


def cache_path(problem: str, optimizer: str, seed: int, batch: int, budget: int,
               workers: int = 0) -> Path:
    root = Path(os.environ.get(RESULTS_ENV) or RESULTS)
    mode = f"a{workers}" if workers else f"b{batch}"
    return root / problem / optimizer / f"n{budget}-{mode}-s{seed}.json"


def load_cached(path: Path, fp: str) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if data.get("fingerprint") == fp else None


def durations(seed: int, budget: int) -> np.ndarray:
    """Simulated duration of the k-th started trial, the same for every optimizer at a seed."""
    return np.random.default_rng([seed, ASYNC_SALT]).lognormal(0.0, DURATION_SIGMA, budget)


def simulate_async(propose: Callable[[int], list[Any]], tell: Callable[[int, float], None],
                   problem: Problem, seed: int, budget: int, workers: int) -> dict[str, Any]:
    """Event loop of ``workers`` simulated workers; ``propose(n)`` knows the pending trials.

    ``propose(n)`` returns up to ``n`` new params (trial ``k`` is the k-th proposed);
    ``tell(k, value)`` reports trial ``k`` finished. Values in the order they finish.
    """
    dur = durations(seed, budget)
    clock = 0.0
    running: list[tuple[float, int]] = []  # (end time, trial index), a heap
    started: list[Any] = []
    values: list[float] = []
    times: list[float] = []
    while len(started) < budget or running:
        n = min(workers - len(running), budget - len(started))
        if n > 0:
            t0 = time.perf_counter()
            new = propose(n)
            if new:
                times.append((time.perf_counter() - t0) / len(new))
            for params in new:
                heapq.heappush(running, (clock + float(dur[len(started)]), len(started)))
                started.append(params)
            if not running:
                break  # an exhausted grid
        clock, k = heapq.heappop(running)
        value = problem(started[k])
        tell(k, value)
        values.append(value)
    return {"values": values, "times": times}


def _run_amtune(name: str, problem: Problem, seed: int, budget: int, batch: int,
                workers: int = 0) -> dict[str, Any]:
    from amtune.strategies import SearchSpace, Trial, make_strategy

    options: dict[str, Any] = {}
    if name == "grid":
        points = grid_points(problem, budget)
        if points is None:
            return {"skipped": f"{GRID_MIN_POINTS} points per parameter exceed the budget"}
        options["points"] = points
    strategy = make_strategy(name, SearchSpace.from_dict(problem.space), seed=seed, **options)
    history: list[Trial] = []
    if workers:  # history in trial order, as the store lists it: completed and running
        def propose(n: int) -> list[Any]:
            new = strategy.propose(history, n)
            history.extend(Trial(params=p, value=None, status="running") for p in new)
            return new

        def tell(k: int, value: float) -> None:
            history[k] = Trial(params=history[k].params, value=value, status="completed")

        return simulate_async(propose, tell, problem, seed, budget, workers) | {
            "options": options}
    values: list[float] = []
    times: list[float] = []
    while len(history) < budget:
        n = min(batch, budget - len(history))
        t0 = time.perf_counter()
        proposed = strategy.propose(history, n)
        elapsed = time.perf_counter() - t0
        if not proposed:
            break  # an exhausted grid
        times.append(elapsed / len(proposed))
        for params in proposed:
            value = problem(params)
            history.append(Trial(params=params, value=value, status="completed"))
            values.append(value)
    return {"values": values, "times": times, "options": options}


def optuna_distributions(space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    out: dict[str, Any] = {}
    for name, d in space.items():
        if d.get("scale") == "reverse_log":
            raise ValueError(f"{name}: Optuna has no reverse_log scale to compare on")
        log = bool(d.get("log")) or d.get("scale") == "log"
        if d["type"] == "categorical":
            out[name] = CategoricalDistribution(d["values"])
        elif d["type"] == "int":
            out[name] = IntDistribution(int(d["low"]), int(d["high"]), log=log)
        else:
            out[name] = FloatDistribution(float(d["low"]), float(d["high"]), log=log)
    return out


def make_optuna_sampler(name: str, seed: int, threads: int | None = 1) -> Any:
    """Optuna's sampler with its defaults; ``threads`` caps torch (None: torch's default)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if threads is not None:
        try:
            import torch

            torch.set_num_threads(threads)
        except ImportError:
            pass
    return getattr(optuna.samplers, OPTUNA[name])(seed=seed)


def _run_optuna(name: str, problem: Problem, seed: int, budget: int, batch: int,
                workers: int = 0) -> dict[str, Any]:
    import optuna

    study = optuna.create_study(direction="minimize", sampler=make_optuna_sampler(name, seed))
    dists = optuna_distributions(problem.space)
    if workers:  # asked and not yet told = running, as in Optuna's own parallel use
        asked: list[Any] = []

        def propose(n: int) -> list[Any]:
            new = [study.ask(dists) for _ in range(n)]
            asked.extend(new)
            return [t.params for t in new]

        def tell(k: int, value: float) -> None:
            study.tell(asked[k], value)

        return simulate_async(propose, tell, problem, seed, budget, workers)
    values: list[float] = []
    times: list[float] = []
    while len(values) < budget:
        n = min(batch, budget - len(values))
        t0 = time.perf_counter()
        trials = [study.ask(dists) for _ in range(n)]
        times.append((time.perf_counter() - t0) / n)
        for trial in trials:
            value = problem(trial.params)
            study.tell(trial, value)
            values.append(value)
    return {"values": values, "times": times}


def run_one(problem: str, optimizer: str, seed: int, batch: int, budget: int,
            fresh: bool = False, workers: int = 0) -> dict[str, Any]:
    """Run (or read from the cache) one run; written atomically so a crash loses nothing.

    ``workers`` > 0 selects the async protocol (``batch`` is then ignored and stored as 1).
    """
    single_thread()
    prob = PROBLEMS[problem]
    batch = 1 if workers else batch
    fp = fingerprint(optimizer, prob, workers)
    path = cache_path(problem, optimizer, seed, batch, budget, workers)
    if not fresh and (cached := load_cached(path, fp)) is not None:
        return cached | {"cached": True}
    runner = _run_optuna if optimizer in OPTUNA else _run_amtune
    t0 = time.perf_counter()
    result = runner(optimizer, prob, seed, budget, batch, workers)
    result |= {"problem": problem, "optimizer": optimizer, "seed": seed, "batch": batch,
               "workers": workers, "budget": budget, "optimum": prob.optimum, "fingerprint": fp,
               "wall_s": round(time.perf_counter() - t0, 3)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(result))
    tmp.replace(path)
    return result | {"cached": False}
