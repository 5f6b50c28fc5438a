"""A command trial on a simulated learning curve: one ``epoch=<k> val_loss=<v>`` line per epoch.

    python train.py --seed S --config I [--epochs 27] [--sleep 0.02] [--family realistic]

Each epoch sleeps ``sleep * epoch_time`` seconds (configs differ in speed, so parallel
trials drift apart as real ones do), then appends one line to the file named by
``AMTUNE_CURVES_COUNTER`` (if set) and prints its line. So the compute a study spent is
counted by the training script itself, whoever stopped it and however: the counter
holds exactly the epochs completed. An epoch interrupted by a stop is not counted.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from family import EPOCHS, FAMILIES, config, value

COUNTER_ENV = "AMTUNE_CURVES_COUNTER"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--config", type=int, required=True)
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--sleep", type=float, default=0.02)
    parser.add_argument("--family", choices=FAMILIES, default="realistic")
    args = parser.parse_args(argv)
    counter = os.environ.get(COUNTER_ENV)
    pace = args.sleep * config(args.seed, args.config).epoch_time
    for epoch in range(1, args.epochs + 1):
        time.sleep(pace)
        loss = value(args.seed, args.config, epoch, args.family)
        if counter:
            with open(counter, "a") as fh:  # one short append: atomic across processes
                fh.write(f"{args.seed} {args.config} {epoch}\n")
        print(f"epoch={epoch} val_loss={loss}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
