"""A family of simulated validation-loss curves that cross, one per (seed, config).

Each configuration has a log learning rate ``x`` in [-4, -1], a model quality ``q`` in
[0, 1], a curve shape and a time per epoch. The loss after ``t`` epochs is

    plateau + 2 * (1 + t / tau) ** -shape,   times (1 + 1.5% noise)

with ``tau = 1.2 * 10 ** (-0.6 * (x + 1))`` epochs: high learning rates start fast but
plateau high (``plateau`` grows with ``x`` past -2.5), low ones end lower but may not get
there in 27 epochs. So curves cross: the leaders after one epoch are rarely the best
after 27, which is what makes stopping early risky. Quality lowers the plateau only.
Noise is drawn per (seed, config, epoch), so a curve is the same whoever computes it:
the training script, the simulated loop and the regret reference agree exactly.
Numpy only: the training script starts in a few tens of milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPOCHS = 27
N_CONFIGS = 48
NOISE = 0.015


@dataclass(frozen=True)
class CurveConfig:
    log_lr: float
    quality: float
    shape: float
    epoch_time: float  # relative time per epoch (0.7..1.3): workers drift apart

    @property
    def tau(self) -> float:
        return 1.2 * 10 ** (-0.6 * (self.log_lr + 1.0))

    @property
    def plateau(self) -> float:
        return 0.10 + 0.25 * (1 - self.quality) + 0.15 * max(0.0, self.log_lr + 2.5) ** 1.5


def config(seed: int, index: int) -> CurveConfig:
    u = np.random.default_rng([seed, index]).random(4)
    return CurveConfig(log_lr=-4 + 3 * u[0], quality=float(u[1]), shape=1.5 + float(u[2]),
                       epoch_time=0.7 + 0.6 * float(u[3]))


def value(seed: int, index: int, epoch: int) -> float:
    """Validation loss after ``epoch`` (>= 1) epochs."""
    c = config(seed, index)
    mean = c.plateau + 2.0 * (1 + epoch / c.tau) ** -c.shape
    noise = np.random.default_rng([seed, index, epoch, 7]).standard_normal()
    return float(mean * (1 + NOISE * noise))


def curve(seed: int, index: int, epochs: int = EPOCHS) -> np.ndarray:
    return np.array([value(seed, index, k) for k in range(1, epochs + 1)])


def curves(seed: int, n: int = N_CONFIGS, epochs: int = EPOCHS) -> np.ndarray:
    """All curves of a set, shape (n, epochs): row i is config i, column k epoch k+1."""
    return np.stack([curve(seed, i, epochs) for i in range(n)])
