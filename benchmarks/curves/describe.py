"""What a curve family looks like to a stopping rule, per set of 48 configurations.

    python -m benchmarks.curves.describe [--family realistic] [--seeds 0 1 ...]

Per set: Spearman rank correlation between the values after 1, 3 and 9 epochs and the
final ones (27 epochs), the final best configuration's rank at those epochs, the share
of configurations whose final rank differs by more than 10 from their rank after one
epoch, and the gap between the best and second-best final values. Printed as the
median (and the worst) over sets.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from scipy.stats import spearmanr

from benchmarks.curves.family import FAMILIES, curves

EPOCHS_SHOWN = (1, 3, 9)


def describe(seed: int, family: str) -> dict[str, float]:
    c = curves(seed, family=family)
    final = c[:, -1]
    best = int(final.argmin())
    out: dict[str, float] = {}
    for k in EPOCHS_SHOWN:
        out[f"spearman_{k}"] = float(spearmanr(c[:, k - 1], final)[0])
        out[f"best_rank_{k}"] = float((c[:, k - 1] < c[best, k - 1]).sum() + 1)
    first, last = np.argsort(np.argsort(c[:, 0])), np.argsort(np.argsort(final))
    out["moved_10"] = float(np.mean(np.abs(first - last) > 10))
    out["gap"] = float(np.sort(final)[1] - final[best])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=FAMILIES, default="realistic")
    parser.add_argument("--seeds", type=int, nargs="*", default=list(range(10)))
    args = parser.parse_args(argv)
    rows = [describe(s, args.family) for s in args.seeds]
    print(f"family {args.family}, {len(rows)} sets: median (worst)")
    for key in rows[0]:
        v = np.array([r[key] for r in rows])
        worst = v.min() if key.startswith("spearman") else v.max()
        print(f"  {key:14} {np.median(v):8.3f} ({worst:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
