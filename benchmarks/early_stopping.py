"""Early stopping: amtune's median / asha / hyperband rules against Optuna's pruners.

    python -m benchmarks.early_stopping [--mode sim|processes|pipeline] [--sleep S]

Every method sees the same 48 configurations of one curve set (``benchmarks/curves``:
27 epochs, curves that cross), 4 workers, asynchronous: a worker takes the next
configuration as soon as its trial ends or is stopped. Per method and curve set:

- compute = epochs run / epochs of running all 48 to the end;
- regret = final value of the best trial run to the end, minus the best final value
  any of the 48 configurations reaches at 27 epochs (0: the best one was kept);
- decided = epochs up to each trial's stop or end, over the same total: the compute the
  decisions cost. In ``processes`` and ``pipeline`` modes compute is counted by the
  training script, so it also holds the epochs a trial ran between the line that
  decided its stop and its end (the stop's latency); in ``sim`` the two are equal.

Two groups of curve sets: *dev* seeds (0-9; 10-39 were used as more dev sets when
the rules' mechanisms were chosen), and *held-out* seeds (100-119), reported apart and
never tuned on. ``--family strong`` runs the stress family (``benchmarks/curves``).

Modes: ``sim`` (default) a deterministic discrete-event loop, no processes;
``processes`` the real ``benchmarks/curves/train.py`` command per trial, stopped by
SIGTERM, its epochs counted by the script itself; ``pipeline`` amtune's side as a real
``amtune run`` of a spec with ``early_stopping:`` (grid over the configuration index,
so the same 48 configurations), its epochs counted by the script; Optuna's side as in
``processes``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.curves.family import EPOCHS, FAMILIES, N_CONFIGS, curves
from benchmarks.curves.loop import (
    AmtuneJudge,
    Judge,
    NoStopping,
    OptunaJudge,
    Outcome,
    run_processes,
    simulate,
    train_command,
)

DEV_SEEDS = list(range(10))
HELD_OUT_SEEDS = list(range(100, 120))
RULES: dict[str, dict[str, Any]] = {
    "median": {"rule": "median"},
    "asha": {"rule": "asha", "max_steps": EPOCHS},  # the full length given, as users know it
    "asha_inferred": {"rule": "asha"},  # full length inferred from the first completed trial
    "hyperband": {"rule": "hyperband", "max_steps": EPOCHS},
}
METHODS: dict[str, Callable[[int], Judge]] = {
    "none": lambda seed: NoStopping(),
    **{f"amtune_{k}": (lambda seed, c=c: AmtuneJudge(c)) for k, c in RULES.items()},
    "optuna_median": lambda seed: OptunaJudge("median", seed),
    "optuna_sh": lambda seed: OptunaJudge("sh", seed),
    "optuna_sh_default": lambda seed: OptunaJudge("sh_default", seed),
    "optuna_hyperband": lambda seed: OptunaJudge("hyperband", seed),
}
TARGETS = {"amtune_median": (0.55, 0.005), "amtune_asha": (0.15, 0.01)}
MATCH = {"amtune_median": "optuna_median", "amtune_asha": "optuna_sh",
         "amtune_hyperband": "optuna_hyperband"}


def score(outcome: Outcome, seed: int, family: str) -> dict[str, float]:
    reference = float(curves(seed, family=family)[:, -1].min())
    spent = outcome.counted if outcome.counted is not None else sum(outcome.epochs.values())
    best = min(outcome.completed.values()) if outcome.completed else float("inf")
    # epochs up to each trial's stop (or its end): what the decisions cost, without the
    # epochs a command runs between the line that decided its stop and its end
    decided = sum(outcome.epochs.values())
    return {"compute": spent / (N_CONFIGS * EPOCHS), "regret": best - reference,
            "full_runs": len(outcome.completed), "decided": decided / (N_CONFIGS * EPOCHS)}


def run_pipeline(method: str, seed: int, sleep: float, family: str, work: Path) -> Outcome:
    """One real ``amtune run`` of the curves as command trials under ``early_stopping:``.

    Each run is a fresh CLI process (its own ephemeral Prefect API, ~1 min with 48
    trials at the default sleep): the numbers include amtune's real latencies (a
    trial's start, the rule's view of the other trials), so they move a little from
    run to run, unlike ``sim``.
    """
    import yaml

    name = f"es-{family}-{method}-{seed}"
    uri = f"sqlite:///{work / 'mlflow.db'}"
    command = train_command(seed, "{config}", sleep, family)
    spec: dict[str, Any] = {
        "name": name,
        "objective": {"command": ["python", *command[1:]], "metric": "val_loss",
                      "direction": "minimize",
                      "metrics": [{"name": "val_loss", "regex": r"val_loss=([0-9.eE+-]+)"}]},
        "parameters": {"config": {"type": "int", "low": 0, "high": N_CONFIGS - 1}},
        "strategy": {"name": "grid"},
        "budget": {"max_trials": N_CONFIGS, "max_parallel": 4},
        "trial": {"retries": 0, "timeout_s": 600},
        "seed": seed,
        "tracking": {"uri": uri},
    }
    if method != "none":
        spec["early_stopping"] = RULES[method.removeprefix("amtune_")]
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    counter = work / f"{name}.epochs"
    env = {**os.environ, "AMTUNE_CURVES_COUNTER": str(counter)}
    amtune = [sys.executable, "-m", "amtune.flows.cli"]
    subprocess.run([*amtune, "run", str(path)], env=env, check=True)
    out = subprocess.run([*amtune, "results", name, "--tracking-uri", uri, "--json",
                          "--top", str(N_CONFIGS)], env=env, check=True,
                         capture_output=True, text=True).stdout
    top = json.loads(out)["top"]  # every trial; stopped ones are not full runs
    completed = {int(t["params"]["config"]): float(t["value"]) for t in top
                 if t["status"] == "completed"}
    epochs = {int(t["params"]["config"]): t["stopped_at_step"] or EPOCHS for t in top
              if t["status"] in ("completed", "stopped")}
    counted = len(counter.read_text().splitlines()) if counter.exists() else 0
    return Outcome(epochs, completed, counted)


def run(method: str, seed: int, args: argparse.Namespace, work: Path) -> dict[str, float]:
    if args.mode == "pipeline" and not method.startswith("optuna"):
        outcome = run_pipeline(method, seed, args.sleep, args.family, work)
    elif args.mode == "sim":
        outcome = simulate(METHODS[method](seed), seed, N_CONFIGS, args.family,
                           barrier=args.barrier)
    else:
        outcome = run_processes(METHODS[method](seed), seed, N_CONFIGS, args.sleep, args.family)
    return score(outcome, seed, args.family)


def table(title: str, rows: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, float]]:
    print(f"\n{title}")
    print(f"{'method':18} {'compute':>8} {'(max)':>6} {'regret':>8} {'(max)':>7} "
          f"{'best kept':>9} {'full runs':>9} {'decided':>8}")
    summary = {}
    for method, results in rows.items():
        c = np.array([r["compute"] for r in results])
        g = np.array([r["regret"] for r in results])
        kept = int((g <= 1e-12).sum())
        full = np.mean([r["full_runs"] for r in results])
        decided = float(np.mean([r["decided"] for r in results]))
        summary[method] = {"compute": float(c.mean()), "regret": float(g.mean()),
                           "regret_max": float(g.max()), "decided": decided}
        print(f"{method:18} {c.mean():8.3f} {c.max():6.3f} {g.mean():8.4f} {g.max():7.4f} "
              f"{kept:>4}/{len(results):<4} {full:9.1f} {decided:8.3f}")
    return summary


def verdicts(summary: dict[str, dict[str, float]]) -> None:
    for method, (max_compute, max_regret) in TARGETS.items():
        if method not in summary:
            continue
        s = summary[method]
        ok = s["compute"] <= max_compute and s["regret"] <= max_regret
        print(f"  {method}: compute {s['compute']:.3f} (target <= {max_compute}), "
              f"regret {s['regret']:.4f} (target <= {max_regret}): "
              f"{'met' if ok else 'NOT met'}")
    for ours, theirs in MATCH.items():
        if ours in summary and theirs in summary:
            a, b = summary[ours], summary[theirs]
            ok = a["compute"] <= b["compute"] and a["regret"] <= b["regret"]
            print(f"  {ours} vs {theirs}: compute {a['compute']:.3f} vs {b['compute']:.3f}, "
                  f"regret {a['regret']:.4f} vs {b['regret']:.4f}: "
                  f"{'at least as good' if ok else 'NOT at least as good'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["sim", "processes", "pipeline"], default="sim")
    parser.add_argument("--sleep", type=float, default=0.02, help="seconds per epoch")
    parser.add_argument("--family", choices=FAMILIES, default="realistic",
                        help="curve family (benchmarks/curves/family.py)")
    parser.add_argument("--methods", nargs="*", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--dev", type=int, nargs="*", default=DEV_SEEDS)
    parser.add_argument("--held-out", type=int, nargs="*", default=HELD_OUT_SEEDS)
    parser.add_argument("--barrier", action="store_true",
                        help="sim: synchronous rounds of 4 instead of asynchronous workers")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for group, seeds in (("dev", args.dev), ("held-out", args.held_out)):
            if not seeds:
                continue
            rows = {m: [run(m, s, args, Path(tmp)) for s in seeds]
                    for m in args.methods}
            title = (f"{group} curve sets {seeds[0]}..{seeds[-1]} ({len(seeds)}), family "
                     f"{args.family}, mode {args.mode}{', barrier' * args.barrier}: "
                     "means over sets")
            summary = table(title, rows)
            verdicts(summary)
            out[group] = {"seeds": seeds, "runs": rows, "summary": summary}
    print(f"\n{time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
