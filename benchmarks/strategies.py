"""Benchmark amtune's strategies side by side with Optuna's samplers.

    python -m benchmarks.strategies            # full: 10 seeds, budget 50, batch 1 and 5
    python -m benchmarks.strategies --quick    # 3 seeds, budget 30, batch 1
    python -m benchmarks.strategies --problems branin,svc_cancer --optimizers gp_ei,optuna_gp
    python -m benchmarks.strategies --timing             # one batch of 5 at 300 trials in 6-D
    python -m benchmarks.strategies --protocol async --workers 4   # out-of-order finishes

Prints, per batch size and problem, the median final simple regret with its
quartiles, the median regret at 25 trials, the median proposal time per trial,
then a matrix of median final regrets with each optimizer's mean rank across
problems. Results are cached under ``benchmarks/results/`` (see runners.py), so
a rerun only computes what is missing or what changed code invalidated.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

import numpy as np
from scipy.stats import rankdata

from benchmarks.problems import DEV, HELD_OUT, PROBLEMS, PUBLIC
from benchmarks.runners import (
    GRID_MIN_POINTS,
    OPTUNA,
    RESULTS_ENV,
    grid_points,
    run_one,
    single_thread,
)

_NEEDS_OPTUNA = (
    "optuna is not installed; the benchmark compares against Optuna's samplers.\n"
    "Install the optional bench extra with `python3 dev.py bench-setup` (CPU torch first, "
    "then optuna), or pass --optimizers with amtune strategies only."
)


def _require_optuna() -> None:
    try:
        import optuna  # noqa: F401
    except ImportError:
        sys.exit(_NEEDS_OPTUNA)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    from amtune.strategies import strategy_names

    ap = argparse.ArgumentParser(prog="python -m benchmarks.strategies", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", default=",".join(PROBLEMS),
                    help=f"comma-separated; allowed: {', '.join(PROBLEMS)}")
    ap.add_argument("--optimizers", default=",".join([*strategy_names(), *OPTUNA]),
                    help=f"comma-separated; allowed: {', '.join([*strategy_names(), *OPTUNA])}")
    ap.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (default 10)")
    ap.add_argument("--budget", type=int, default=None, help="trials per run (default 50)")
    ap.add_argument("--batch", choices=["1", "5", "both"], default=None,
                    help="trials per proposal (default both)")
    ap.add_argument("--protocol", choices=["batch", "async"], default="batch",
                    help="batch: propose --batch, evaluate all, repeat (default); async: "
                         "simulated durations, one proposal per freed worker (runners.py)")
    ap.add_argument("--workers", type=int, default=4,
                    help="simulated workers of the async protocol (default 4)")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--quick", action="store_true", help="3 seeds, budget 30, batch 1")
    ap.add_argument("--fresh", action="store_true", help="ignore cached results")
    ap.add_argument("--results", default=None,
                    help=f"cache directory (default benchmarks/results, or ${RESULTS_ENV})")
    ap.add_argument("--timing", action="store_true",
                    help="only time one batch of 5 at 300 completed trials in 6-D")
    args = ap.parse_args(argv)
    args.seeds = args.seeds or (3 if args.quick else 10)
    args.budget = args.budget or (30 if args.quick else 50)
    args.batch = args.batch or ("1" if args.quick else "both")
    args.batches = [1, 5] if args.batch == "both" else [int(args.batch)]
    if args.workers < 1:
        ap.error(f"--workers: {args.workers}; must be >= 1")
    # (batch, workers) per setting; workers 0 = the batch protocol
    args.settings = ([(1, args.workers)] if args.protocol == "async"
                     else [(b, 0) for b in args.batches])
    args.problems = [p for p in args.problems.split(",") if p]
    args.optimizers = [o for o in args.optimizers.split(",") if o]
    for p in args.problems:
        if p not in PROBLEMS:
            ap.error(f"--problems: {p!r} is not a problem; allowed: {', '.join(PROBLEMS)}")
    valid = [*strategy_names(), *OPTUNA]
    for o in args.optimizers:
        if o not in valid:
            ap.error(f"--optimizers: {o!r} is not an optimizer; allowed: {', '.join(valid)}")
    return args


def _jobs(args: argparse.Namespace) -> tuple[list[tuple[Any, ...]], list[str]]:
    jobs, notes = [], []
    for problem in args.problems:
        for optimizer in args.optimizers:
            if optimizer == "grid" and grid_points(PROBLEMS[problem], args.budget) is None:
                notes.append(f"grid skipped on {problem}: {GRID_MIN_POINTS} points per parameter "
                             f"exceed the budget of {args.budget}")
                continue
            for batch, workers in args.settings:
                for seed in range(args.seeds):
                    jobs.append((problem, optimizer, seed, batch, args.budget, args.fresh,
                                 workers))
    # Slow runs first so the pool is not left waiting on one straggler.
    slow = {"hgb_cancer": 0, "svc_cancer": 1}
    jobs.sort(key=lambda j: (j[1] not in {"gp_ei", "optuna_gp"}, slow.get(j[0], 2)))
    return jobs, notes


def run_all(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[str]]:
    """Every run's result, and the runs that raised (the others still finish and cache)."""
    jobs, notes = _jobs(args)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    results: list[dict[str, Any]] = []
    errors: list[str] = []

    def report(i: int, job: tuple[Any, ...], outcome: dict[str, Any] | BaseException) -> None:
        problem, optimizer, seed, batch = job[:4]
        mode = f"a{job[6]}" if job[6] else f"b{batch}"
        where = f"[{i}/{len(jobs)}] {problem} {optimizer} {mode} s{seed}"
        if isinstance(outcome, BaseException):
            errors.append(f"{where}: {type(outcome).__name__}: {outcome}")
            print(f"{where}: FAILED {type(outcome).__name__}: {outcome}", file=sys.stderr)
            return
        results.append(outcome)
        if "values" in outcome:
            regret = min(outcome["values"]) - outcome["optimum"]
            how = "cached" if outcome["cached"] else f"{outcome['wall_s']:.1f} s"
            print(f"{where}: regret {regret:.4g} ({how})", file=sys.stderr, flush=True)

    if args.jobs <= 1:
        for i, job in enumerate(jobs, 1):
            try:
                outcome: dict[str, Any] | BaseException = run_one(*job)
            except Exception as e:  # report it and go on: the other runs are still useful
                outcome = e
            report(i, job, outcome)
        return results, errors
    single_thread()  # inherited by the spawned workers before they import numpy
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=ctx) as pool:
        futures = {pool.submit(run_one, *job): job for job in jobs}
        for i, fut in enumerate(as_completed(futures), 1):
            report(i, futures[fut], fut.exception() or fut.result())
    return results, errors


def _regrets(runs: list[dict[str, Any]], at: int | None) -> np.ndarray:
    return np.array([min(r["values"][:at]) - r["optimum"] for r in runs])


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _sets(problems: list[str]) -> list[tuple[str, list[str]]]:
    """The problems grouped as public, our own mixed (dev) and held-out, in that order."""
    groups = [("public", PUBLIC), ("mixed (dev)", DEV), ("held-out", HELD_OUT)]
    out = [(name, [p for p in problems if p in members]) for name, members in groups]
    rest = [p for p in problems if not any(p in m for _, m in groups)]
    return [(n, ps) for n, ps in [*out, ("other", rest)] if ps]


def _wrong(final: np.ndarray, problem: str) -> str:
    basin = PROBLEMS[problem].basin
    return "-" if basin is None else f"{np.mean(final > basin):.0%}"


def _matrix(title: str, rows: dict[str, dict[str, str]], opts: list[str]) -> None:
    print(f"\n{title}\n")
    print("| problem | " + " | ".join(opts) + " |")
    print("|---|" + "---|" * len(opts))
    for problem, row in rows.items():
        print(f"| {problem} | " + " | ".join(row.get(o, "-") for o in opts) + " |")


def _label(batch: int, workers: int) -> str:
    return f"async {workers} workers" if workers else f"batch {batch}"


def print_tables(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    at = min(25, args.budget)
    for batch, workers in args.settings:
        label = _label(batch, workers)
        print(f"\n### {label}: budget {args.budget}, {args.seeds} seeds\n")
        print(f"| problem | optimizer | median final regret | q25 | q75 | wrong basin "
              f"| median regret @{at} | median s/trial |")
        print("|---|---|---|---|---|---|---|---|")
        medians: dict[str, dict[str, float]] = {}
        wrong: dict[str, dict[str, str]] = {}
        for problem in args.problems:
            for optimizer in args.optimizers:
                runs = [r for r in results if r["problem"] == problem and
                        r["optimizer"] == optimizer and r["batch"] == batch and
                        r.get("workers", 0) == workers and "values" in r]
                if not runs:
                    continue
                final = _regrets(runs, None)
                q25, med, q75 = np.percentile(final, [25, 50, 75])
                medians.setdefault(problem, {})[optimizer] = med
                if PROBLEMS[problem].basin is not None:
                    wrong.setdefault(problem, {})[optimizer] = _wrong(final, problem)
                t = np.median(np.concatenate([r["times"] for r in runs]))
                print(f"| {problem} | {optimizer} | {_fmt(med)} | {_fmt(q25)} | {_fmt(q75)} "
                      f"| {_wrong(final, problem)} | {_fmt(np.median(_regrets(runs, at)))} "
                      f"| {t:.3g} |")
        opts = [o for o in args.optimizers if any(o in m for m in medians.values())]
        ranks: dict[str, dict[str, float]] = {}  # problem -> optimizer -> rank
        for problem, row in medians.items():
            names = [o for o in opts if o in row]
            ranks[problem] = dict(zip(names, map(float, rankdata([row[o] for o in names])),
                                      strict=True))
        for set_name, problems in _sets([p for p in args.problems if p in medians]):
            rows = {p: {o: _fmt(v) for o, v in medians[p].items()} for p in problems}
            rows["**mean rank**"] = {o: f"{np.mean(rs):.2f}" for o in opts
                                     if (rs := [ranks[p][o] for p in problems if o in ranks[p]])}
            _matrix(f"median final regret, {label}, {set_name} (rank 1 = best; mean rank "
                    "over the problems each optimizer ran):", rows, opts)
        if len(medians) > 1:
            overall = {o: f"{np.mean(rs):.2f}" for o in opts
                       if (rs := [r[o] for r in ranks.values() if o in r])}
            _matrix(f"mean rank over all {len(medians)} problems, {label}:",
                    {"**all**": overall}, opts)
        if wrong:
            _matrix(f"wrong-basin fraction, {label} (share of seeds whose final regret "
                    "is above the problem's basin threshold):", wrong, opts)


def timing(n_trials: int = 300, batch: int = 5, dim: int = 6, repeats: int = 3) -> None:
    """Proposal time of one batch at a large history, gp_ei vs GPSampler, in this process."""
    import optuna

    from amtune.strategies import SearchSpace, Trial, make_strategy, strategy_names
    from benchmarks.runners import make_optuna_sampler, optuna_distributions

    problem = PROBLEMS["hartmann6"]
    assert len(problem.space) == dim
    rng = np.random.default_rng(0)
    points = [{f"x{i}": float(v) for i, v in enumerate(row)} for row in rng.random((n_trials, dim))]
    values = [problem(p) for p in points]
    print(f"\nproposal time of one batch of {batch} after {n_trials} completed trials, "
          f"{dim}-D (hartmann6), median of {repeats}; in this process with each "
          "library's default threads")
    if "gp_ei" in strategy_names():
        history = [Trial(params=p, value=v) for p, v in zip(points, values, strict=True)]
        space = SearchSpace.from_dict(problem.space)
        times = []
        for seed in range(repeats):
            t0 = time.perf_counter()
            make_strategy("gp_ei", space, seed=seed).propose(history, batch)
            times.append(time.perf_counter() - t0)
        print(f"  gp_ei:     {np.median(times):.2f} s per batch")
    else:
        print("  gp_ei:     not registered")
    dists = optuna_distributions(problem.space)
    times = []
    for seed in range(repeats):
        study = optuna.create_study(sampler=make_optuna_sampler("optuna_gp", seed, None))
        study.add_trials([optuna.trial.create_trial(params=p, distributions=dists, value=v)
                          for p, v in zip(points, values, strict=True)])
        t0 = time.perf_counter()
        for _ in range(batch):
            study.ask(dists)
        times.append(time.perf_counter() - t0)
    print(f"  optuna_gp: {np.median(times):.2f} s per batch")


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    if args.results:
        os.environ[RESULTS_ENV] = os.path.abspath(args.results)  # seen by the workers too
    if args.timing or any(o in OPTUNA for o in args.optimizers):
        _require_optuna()
    if args.timing:
        timing()
        return
    t0 = time.perf_counter()
    results, errors = run_all(args)
    cmd = "python -m benchmarks.strategies " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"\n`{cmd.strip()}` ({time.perf_counter() - t0:.0f} s wall, jobs {args.jobs})")
    print_tables(results, args)
    notes = _jobs(args)[1]
    if notes:
        print("\nNotes:\n\n" + "\n".join(f"- {note}" for note in notes))
    if errors:
        print(f"\n{len(errors)} runs failed (not in the tables):\n\n" + "\n".join(errors))
        sys.exit(1)


if __name__ == "__main__":
    main()
