"""Asynchronous 4-worker loops over the curves, and the stopping methods they compare.

A *judge* is one stopping method behind three calls: ``start(config)`` when a worker
takes a configuration, ``report(config, epoch, value) -> stop?`` after every epoch, and
``finish(config, value, stopped)``. amtune's rules are called exactly as the flow calls
them (``should_stop(trial, step, value, histories)``); Optuna's pruners through a study
with ask / report / should_prune / tell, as an Optuna user's objective would. Both get
the configurations in the same order (trial number = configuration index).

Two loops drive a judge:

- ``simulate``: a discrete-event clock, every epoch of config ``i`` lasting its
  ``epoch_time``; deterministic, no processes, so many curve sets are cheap;
- ``run_processes``: the real ``train.py`` command per trial in 4 threads, stopped by
  SIGTERM to its process group; its epochs are counted by the script's counter file.
"""

from __future__ import annotations

import heapq
import os
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from amtune.strategies.early_stopping import Curve, make_rule
from benchmarks.curves.family import EPOCHS, config, value

TRAIN = Path(__file__).resolve().parent / "train.py"


class Judge(Protocol):
    def start(self, index: int) -> None: ...
    def report(self, index: int, epoch: int, value: float) -> bool: ...
    def finish(self, index: int, value: float, stopped: bool) -> None: ...


class NoStopping:
    def start(self, index: int) -> None:
        pass

    def report(self, index: int, epoch: int, value: float) -> bool:
        return False

    def finish(self, index: int, value: float, stopped: bool) -> None:
        pass


class AmtuneJudge:
    """The pure rule over the histories the flow would read (running trials included)."""

    def __init__(self, rule_config: dict[str, Any]) -> None:
        rule = make_rule(rule_config)
        assert rule is not None
        self.rule = rule
        self.values: dict[int, dict[int, float]] = {}
        self.status: dict[int, str] = {}

    def start(self, index: int) -> None:
        self.values[index], self.status[index] = {}, "running"

    def report(self, index: int, epoch: int, value: float) -> bool:
        self.values[index][epoch] = value  # logged before the decision, as the flow does
        histories = {n: Curve(v, self.status[n]) for n, v in self.values.items()}
        return epoch < EPOCHS and self.rule.should_stop(index, epoch, value, histories)

    def finish(self, index: int, value: float, stopped: bool) -> None:
        self.status[index] = "stopped" if stopped else "completed"


class OptunaJudge:
    """An Optuna pruner; the last epoch is never checked (the objective returns there)."""

    def __init__(self, pruner: str, seed: int) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        pruners = {
            "median": lambda: optuna.pruners.MedianPruner(),
            # amtune's asha defaults (Optuna's are rf 4 and min_resource "auto", which
            # lets the first trials run unjudged until one completes): see sh_default
            "sh": lambda: optuna.pruners.SuccessiveHalvingPruner(1, reduction_factor=3),
            "sh_default": lambda: optuna.pruners.SuccessiveHalvingPruner(),
            "hyperband": lambda: optuna.pruners.HyperbandPruner(max_resource=EPOCHS),
        }
        # a fixed study name: HyperbandPruner assigns brackets by a hash of it
        self.study = optuna.create_study(
            study_name=f"curves-{seed}", sampler=optuna.samplers.RandomSampler(seed=seed),
            pruner=pruners[pruner]())
        self.trials: dict[int, Any] = {}

    def start(self, index: int) -> None:
        trial = self.study.ask()
        assert trial.number == index, "configurations are started in order"
        self.trials[index] = trial

    def report(self, index: int, epoch: int, value: float) -> bool:
        trial = self.trials[index]
        trial.report(value, epoch)
        return epoch < EPOCHS and bool(trial.should_prune())

    def finish(self, index: int, value: float, stopped: bool) -> None:
        import optuna

        state = optuna.trial.TrialState.PRUNED if stopped else optuna.trial.TrialState.COMPLETE
        self.study.tell(self.trials[index], None if stopped else value, state=state)


@dataclass(frozen=True)
class Outcome:
    epochs: dict[int, int]  # config -> epochs it ran
    completed: dict[int, float]  # config -> final value, for trials run to the end
    counted: int | None = None  # epochs the training script counted (processes only)


def simulate(judge: Judge, seed: int, n: int, family: str = "realistic",
             workers: int = 4, barrier: bool = False) -> Outcome:
    """Every event is one epoch ending; ties go to the lower configuration index.

    ``barrier``: synchronous rounds, the next ``workers`` trials start together once
    every trial of the round has ended (amtune's barrier rounds); else a worker takes
    the next configuration as soon as its trial ends.
    """
    events: list[tuple[float, int]] = []
    epochs: dict[int, int] = {}
    completed: dict[int, float] = {}
    started = 0

    def take(now: float) -> None:
        nonlocal started
        if started < n:
            judge.start(started)
            epochs[started] = 0
            heapq.heappush(events, (now + config(seed, started).epoch_time, started))
            started += 1

    for _ in range(workers):
        take(0.0)
    while events:
        now, i = heapq.heappop(events)
        epochs[i] += 1
        v = value(seed, i, epochs[i], family)
        stop = judge.report(i, epochs[i], v)
        if stop or epochs[i] == EPOCHS:
            judge.finish(i, v, stopped=stop)
            if not stop:
                completed[i] = v
            if not barrier:
                take(now)
            elif not events:
                for _ in range(workers):
                    take(now)
        else:
            heapq.heappush(events, (now + config(seed, i).epoch_time, i))
    return Outcome(epochs, completed)


def train_command(seed: int, index: str | int, sleep: float, family: str) -> list[str]:
    return [sys.executable, str(TRAIN), "--seed", str(seed), "--config", str(index),
            "--epochs", str(EPOCHS), "--sleep", str(sleep), "--family", family]


def run_processes(judge: Judge, seed: int, n: int, sleep: float, family: str = "realistic",
                  workers: int = 4) -> Outcome:
    """The real command per trial; a stop is SIGTERM to the trial's process group."""
    lock = threading.Lock()
    epochs: dict[int, int] = {}
    completed: dict[int, float] = {}
    queue = list(range(n))
    with tempfile.TemporaryDirectory() as tmp:
        counter = Path(tmp) / "epochs.txt"
        env = {**os.environ, "AMTUNE_CURVES_COUNTER": str(counter)}

        def worker() -> None:
            while True:
                with lock:
                    if not queue:
                        return
                    i = queue.pop(0)
                    judge.start(i)
                    epochs[i] = 0
                proc = subprocess.Popen(train_command(seed, i, sleep, family),
                                        stdout=subprocess.PIPE, text=True, env=env,
                                        start_new_session=True)
                assert proc.stdout is not None
                stop, v = False, float("nan")
                for line in proc.stdout:
                    fields = dict(f.split("=", 1) for f in line.split())
                    epoch, v = int(fields["epoch"]), float(fields["val_loss"])
                    with lock:
                        epochs[i] = epoch
                        stop = judge.report(i, epoch, v)
                    if stop:
                        os.killpg(proc.pid, signal.SIGTERM)
                        break
                proc.wait()
                with lock:
                    judge.finish(i, v, stopped=stop)
                    if not stop and epochs[i] == EPOCHS:
                        completed[i] = v

        threads = [threading.Thread(target=worker) for _ in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        counted = len(counter.read_text().splitlines()) if counter.exists() else 0
    return Outcome(epochs, completed, counted)
