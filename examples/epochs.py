"""Example objective trained epoch by epoch, for early stopping with a function trial.

``train`` is what ``examples/epochs.yaml`` names. A linear classifier (scikit-learn's
``SGDClassifier``, logistic loss) is fitted on the bundled handwritten-digits data one
pass at a time; after each pass it calls ``report(epoch, val_loss=..., accuracy=...)``
with epochs counted from 1 (step k = k epochs done, as the early-stopping rules count).

When the study's rule stops the trial, that ``report`` call raises
``amtune.tasks.runners.TrialStopped``. Letting it propagate is all a trial has to do;
one that catches exceptions broadly is stopped all the same (amtune keeps the decision
and drops whatever it reports afterwards), it merely wastes the rest of its epochs.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

EPOCHS = 20


@lru_cache(maxsize=1)
def _data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.3, random_state=0,
                                                      stratify=y)
    scaler = StandardScaler().fit(x_train)
    return scaler.transform(x_train), scaler.transform(x_val), y_train, y_val


def train(params: dict[str, Any], report: Callable[..., None]) -> dict[str, float]:
    x_train, x_val, y_train, y_val = _data()
    model = SGDClassifier(loss="log_loss", alpha=params["alpha"], eta0=params["eta0"],
                          learning_rate=params["schedule"], random_state=0)
    classes = np.unique(y_train)
    val_loss = accuracy = float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for epoch in range(1, EPOCHS + 1):
            model.partial_fit(x_train, y_train, classes=classes)
            proba = np.clip(model.predict_proba(x_val), 1e-12, 1.0)
            val_loss = float(log_loss(y_val, proba, labels=classes))
            accuracy = float(model.score(x_val, y_val))
            report(epoch, val_loss=val_loss, accuracy=accuracy)  # may raise TrialStopped
    return {"val_loss": val_loss, "accuracy": accuracy}
