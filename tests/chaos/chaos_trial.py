"""A command trial that misbehaves on purpose, reproducibly.

Usage: ``python chaos_trial.py CONFIG.json`` with the params in ``AMTUNE_PARAMS``
(amtune also appends ``--name value`` pairs, which are ignored here). Each call is
one attempt; the attempt index of a point is counted in a file next to the config,
so the k-th attempt of a point always behaves the same for a given seed, and a
retried attempt gets a fresh draw (as a flaky job would).

Standard library only: it is started once per attempt and must start fast.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import sys
import time
from pathlib import Path

MODES = ("raise", "exit", "hang", "no_metric", "nan", "sigkill")


def draw(*parts: object) -> float:
    """A uniform number in [0, 1) from the parts, stable across processes and runs."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def loss(params: dict[str, object]) -> float:
    offset = {"a": 0.0, "b": 0.1, "c": 0.2}.get(str(params.get("k")), 0.3)
    return (float(params["x"]) - 0.3) ** 2 + (float(params["y"]) + 0.2) ** 2 + offset


def choose_mode(seed: int, key: str, attempt: int, fail_rate: float) -> str:
    if draw(seed, key, attempt, "fail") >= fail_rate:
        return "ok"
    return MODES[int(draw(seed, key, attempt, "mode") * len(MODES))]


def next_attempt(log_dir: Path, key: str, seed: int, fail_rate: float) -> tuple[int, str]:
    """Count this attempt of the point ``key`` and log its mode (atomic across trials)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / f"{key}.log", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        attempt = len(f.read().splitlines())
        mode = choose_mode(seed, key, attempt, fail_rate)
        f.write(f"{os.getpid()} {mode}\n")
        f.flush()
    return attempt, mode


def main() -> int:
    config_path = Path(sys.argv[1])
    config = json.loads(config_path.read_text())
    params = json.loads(os.environ["AMTUNE_PARAMS"])
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
    attempt, mode = next_attempt(
        config_path.parent / "attempts", key, config["seed"], config["fail_rate"]
    )
    value = loss(params)
    print(f"chaos attempt={attempt} mode={mode}", flush=True)
    if mode == "raise":
        raise RuntimeError(f"chaos: injected error in attempt {attempt}")
    if mode == "exit":
        return 3
    if mode == "hang":
        time.sleep(config["hang_s"])  # far past timeout_s; amtune kills the group first
        return 0
    if mode == "no_metric":
        print("chaos: finished without printing the metric")
        return 0
    if mode == "nan":
        print("loss=nan")
        return 0
    if mode == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    print(f"loss={value!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
