"""Large chaos run: many flaky studies, each SIGKILLed several times, then checked.

    python benchmarks/chaos.py --studies 20 --kills 3 --fail-rate 0.3

Each study is a real ``amtune run`` (command trials that raise, exit non-zero, hang,
print no metric, print NaN or SIGKILL themselves), killed with SIGKILL at random
moments and rerun until it exits 0; afterwards the invariants of
``tests/chaos/harness.py`` are checked against MLflow and Prefect. Prints one line
per study and the totals: studies completed, trials lost, trials duplicated.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.chaos.harness import ChaosConfig, check_study, drive, write_study  # noqa: E402
from tests.servers import prefect_server  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=20)
    ap.add_argument("--kills", type=int, default=3, help="SIGKILLs of the study process each")
    ap.add_argument("--fail-rate", type=float, default=0.3, help="chance an attempt misbehaves")
    ap.add_argument("--max-trials", type=int, default=16)
    ap.add_argument("--max-parallel", type=int, default=3)
    ap.add_argument("--retries", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=2, help="studies run side by side")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=None, help="kept for inspection if given")
    ap.add_argument(
        "--shared-prefect",
        action="store_true",
        help="one `prefect server` on 127.0.0.1 for all studies (outlives the kills) "
        "instead of a private ephemeral API per study",
    )
    args = ap.parse_args()
    root = args.workdir or Path(tempfile.mkdtemp(prefix="amtune-chaos-"))
    root.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        api = None
        if args.shared_prefect:
            api = stack.enter_context(prefect_server(root / "prefect-server")).api_url
        return run_all(args, root, api)


def run_all(args: argparse.Namespace, root: Path, api: str | None) -> int:

    def one(i: int) -> tuple[object, object]:
        cfg = ChaosConfig(
            seed=args.seed * 1000 + i,
            max_trials=args.max_trials,
            max_parallel=args.max_parallel,
            retries=args.retries,
            fail_rate=args.fail_rate,
            kills=args.kills,
        )
        run = drive(write_study(root, f"chaos-{cfg.seed}", cfg, api), cfg)
        verdict = check_study(run, cfg)
        status = "ok" if not verdict.violations else "VIOLATED"
        print(
            f"{run.name}: {status} kills={run.kills} exits={run.exit_codes} "
            f"trials={verdict.terminal} (completed {verdict.completed}, failed "
            f"{verdict.failed}) lost={verdict.lost} duplicated={verdict.duplicated} "
            f"stale_task_runs={verdict.stale_task_runs} wall={run.wall_s:.0f}s",
            flush=True,
        )
        for violation in verdict.violations:
            print(f"    {violation}", flush=True)
        return run, verdict

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(one, range(args.studies)))
    runs = [r for r, _ in results]
    verdicts = [v for _, v in results]
    attempts = [
        line.split()[1]
        for log in root.glob("chaos-*/attempts/*.log")
        for line in log.read_text().splitlines()
    ]
    failing = sum(m != "ok" for m in attempts)
    print(f"\nworkdir: {root}")
    print(
        f"studies: {len(runs)}, completed: {sum(r.completed for r in runs)}, "
        f"with violations: {sum(bool(v.violations) for v in verdicts)}"
    )
    print(
        f"study kills: {sum(r.kills for r in runs)}, reruns: "
        f"{sum(len(r.exit_codes) - 1 for r in runs)}"
    )
    print(
        f"attempts: {len(attempts)}, misbehaving: {failing} "
        f"({100 * failing / max(1, len(attempts)):.0f}%)"
    )
    print(
        f"trials: {sum(v.terminal for v in verdicts)} terminal "
        f"({sum(v.completed for v in verdicts)} completed, "
        f"{sum(v.failed for v in verdicts)} failed), "
        f"lost: {sum(v.lost for v in verdicts)}, "
        f"duplicated: {sum(v.duplicated for v in verdicts)}"
    )
    print(f"wall time: {time.monotonic() - start:.0f} s")
    return 0 if all(not v.violations for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
