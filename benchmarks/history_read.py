"""What one incremental ``history()`` read costs as the study grows.

    python -m benchmarks.history_read                 # stores of 1,000 and 5,000 runs
    python -m benchmarks.history_read --runs 2000 --running 4

For each size, fills a fresh MLflow SQLite store with that many finished trials of one
study, starts ``--running`` more, then times ``--reads`` reads in a row (the study's
one read per proposal, with nothing new to find) and prints the median and quartiles.
A flat cost means the larger store reads no slower than the smaller one.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0}}


def measure(n: int, running: int, reads: int) -> list[float]:
    from amtune.tasks.store.schema import TrialRecord
    from amtune.tasks.store.study import StudyStore

    with tempfile.TemporaryDirectory() as tmp:
        s = StudyStore(uri=f"sqlite:///{Path(tmp) / 'mlflow.db'}", experiment="h", study="h",
                       space=SPACE, metric="loss")
        s.open({}, {})
        for k in range(n):
            rid = s.start_trial(k, 0, {"x": k / n}, "random")
            s.finish_trial(TrialRecord(k, 0, "completed", rid, {"x": k / n}, {"loss": 0.5},
                                       0.5, duration_s=0.01), s.buffer(rid))
        s.history()
        for k in range(running):
            s.start_trial(n + k, 0, {"x": 0.5}, "random")
        out = []
        for _ in range(reads):
            t0 = time.perf_counter()
            s.history()
            out.append(time.perf_counter() - t0)
        return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", default="1000,5000", help="comma-separated store sizes")
    p.add_argument("--running", type=int, default=8, help="trials running during the reads")
    p.add_argument("--reads", type=int, default=60)
    args = p.parse_args(argv)
    for n in [int(v) for v in args.runs.split(",") if v]:
        ts = sorted(measure(n, args.running, args.reads))
        q = len(ts) // 4
        print(f"{n:>6} runs, {args.running} running: history() median "
              f"{1000 * statistics.median(ts):.1f} ms (q25 {1000 * ts[q]:.1f}, "
              f"q75 {1000 * ts[-q - 1]:.1f})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
