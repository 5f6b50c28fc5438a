"""Example objective: an SVM on scikit-learn's bundled breast-cancer data.

``train`` is what ``examples/svm.yaml`` names; it gets the params dict and a
``report(step, **metrics)`` callback, reports the error of each cross-validation fold as it goes and
returns the metrics (the objective ``val_error`` among them).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC


@lru_cache(maxsize=1)
def _data() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_breast_cancer(return_X_y=True)
    return x, y


def train(params: dict[str, Any],
          report: Callable[..., None] | None = None) -> dict[str, float]:
    x, y = _data()
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
    errors: list[float] = []
    for step, (tr, te) in enumerate(folds.split(x, y)):
        model = make_pipeline(StandardScaler(), SVC(C=params["C"], gamma=params["gamma"],
                                                    kernel=params["kernel"]))
        model.fit(x[tr], y[tr])
        errors.append(1.0 - model.score(x[te], y[te]))
        if report is not None:
            report(step, fold_error=errors[-1], val_error_so_far=float(np.mean(errors)))
    return {"val_error": float(np.mean(errors)), "val_error_std": float(np.std(errors))}
