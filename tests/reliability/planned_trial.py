"""A command trial that fails on purpose, attempt by attempt, following a plan.

``python planned_trial.py PLAN.json`` with params in ``AMTUNE_PARAMS``; the plan maps
the ``mode`` parameter to one behaviour per attempt (the last one repeats):
ok, raise, exit3, exit4, timeout, nan, nometric, sigkill.
"""

import fcntl
import json
import os
import signal
import sys
import time
from pathlib import Path

plan_path = Path(sys.argv[1])
mode = json.loads(os.environ["AMTUNE_PARAMS"])["mode"]
with open(plan_path.parent / f"attempts-{mode}.log", "a+") as log:
    fcntl.flock(log, fcntl.LOCK_EX)
    log.seek(0)
    attempt = len(log.read().splitlines())
    log.write("x\n")
steps = json.loads(plan_path.read_text())[mode]
step = steps[min(attempt, len(steps) - 1)]
print(f"mode={mode} attempt={attempt} step={step}", flush=True)
if step == "raise":
    raise RuntimeError("planned failure")
if step in ("exit3", "exit4"):
    sys.exit(int(step[-1]))
if step == "timeout":
    time.sleep(60)
if step == "nan":
    print("loss=nan")
elif step == "sigkill":
    os.kill(os.getpid(), signal.SIGKILL)
elif step == "ok":
    print(f"loss={0.1 * (ord(mode) - 96)}")
