"""Mixed (float, int, categorical) problems of our own, each with a wrong-basin threshold.

A categorical choice splits these landscapes into basins; a strategy that settles on
the first good category ends with a regret near another category's offset. Each problem
therefore carries ``basin``: a final regret above it means the run ended in a wrong basin
(every point outside the best basin is at least that far from the optimum, and the best
basin's own floor is well below it).

Two sets, kept apart on purpose:

* ``DEV`` (``mixed6``, ``switch5``, ``cond5``, ``family6``): problems the strategy's mechanisms and
  constants may be developed and checked on.
* ``HELD_OUT`` (``intcat4``, ``ridge_diabetes``, ``optim8``, ``pair9``): no constant is
  tuned on them; they are run once the strategy is frozen and reported separately.
  ``optim8`` and ``pair9`` were added after ``intcat4`` and ``ridge_diabetes`` had been
  reported twice, so that a later change still has problems it has never been run on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import cache
from typing import Any

import numpy as np

Params = Mapping[str, Any]

# switch5: the category decides WHICH continuous parameters matter. The best category
# ("a") has the narrowest basin, so random points in it look worst on average (mean
# value ~3.5 against ~1.0 for "b"): a strategy that commits to the first good
# category settles in "b" (regret 0.4) or "c" (0.8).
SWITCH_OFFSET = {"a": 0.0, "b": 0.4, "c": 0.8}


def switch5(params: Params) -> float:
    x = [float(params[f"x{i}"]) for i in range(4)]
    mode = params["mode"]
    if mode == "a":
        body = 10.0 * ((x[0] - 0.8) ** 2 + (x[1] - 0.2) ** 2)
    elif mode == "b":
        body = 2.0 * ((x[2] - 0.3) ** 2 + (x[3] - 0.6) ** 2)
    else:
        body = (x[0] - 0.3) ** 2 + (x[2] - 0.7) ** 2 + (x[3] - 0.2) ** 2
    return SWITCH_OFFSET[mode] + body


# cond5: a conditional-like space flattened into one box. Each model reads only its own
# parameter (alpha, depth or k); the other two are dead dimensions for it. The shared
# x matters for all, with a different optimum per model.
COND_OFFSET = {"tree": 0.0, "linear": 0.25, "knn": 0.5}


def cond5(params: Params) -> float:
    model, x = params["model"], float(params["x"])
    if model == "tree":
        body = ((int(params["depth"]) - 14) / 5.0) ** 2 + 3.0 * (x - 0.6) ** 2
    elif model == "linear":
        body = 0.3 * (math.log10(float(params["alpha"])) + 1.0) ** 2 + 2.0 * (x - 0.4) ** 2
    else:
        body = 0.5 * (math.log(int(params["k"])) - math.log(5.0)) ** 2 + (x - 0.5) ** 2
    return COND_OFFSET[model] + body


# family6: one categorical of six values, each moving the optimum of two floats. The
# best value ("f3") has the narrowest basin, so its average looks poor; with six values
# and a ten-point initial design most values have one or two trials when the model
# takes over.
FAMILY6 = {  # value: (offset, best x, best y, curvature)
    "f0": (0.5, 0.2, 0.8, 4.0), "f1": (0.3, 0.7, 0.3, 4.0), "f2": (0.2, 0.4, 0.4, 4.0),
    "f3": (0.0, 0.85, 0.6, 12.0), "f4": (0.35, 0.1, 0.1, 4.0), "f5": (0.6, 0.5, 0.9, 4.0),
}


def family6(params: Params) -> float:
    offset, bx, by, c = FAMILY6[params["family"]]
    return offset + c * ((float(params["x"]) - bx) ** 2 + (float(params["y"]) - by) ** 2)


# intcat4: integers whose good values depend on a categorical (bigger architectures want
# more units and fewer layers), and a float whose optimum moves with it too.
# One integer step off in the best basin costs at most 0.05 (units x2) + 0.0625 (layers).
INTCAT = {  # arch: (offset, best units, best layers, best dropout)
    "small": (0.5, 8, 6, 0.1),
    "medium": (0.0, 32, 4, 0.2),
    "large": (0.3, 96, 2, 0.3),
    "huge": (0.8, 200, 1, 0.4),
}


def intcat4(params: Params) -> float:
    offset, units, layers, dropout = INTCAT[params["arch"]]
    return (
        offset
        + 0.05 * (math.log2(int(params["units"])) - math.log2(units)) ** 2
        + ((int(params["layers"]) - layers) / 4.0) ** 2
        + 2.0 * (float(params["dropout"]) - dropout) ** 2
    )


# optim8: an optimiser choice of eight values, the shape of a training recipe. Each
# value moves the optimum of the log learning rate and the log batch size; momentum
# matters only for the three momentum methods and is a dead dimension for the rest.
# The best value is one of eight, so a strategy must visit most of them to find it.
OPTIM8 = {  # optimizer: (offset, best log10 lr, best momentum or None, best log2 batch)
    "sgd": (0.45, -1.0, None, 5),
    "momentum": (0.15, -1.7, 0.9, 6),
    "nesterov": (0.0, -2.2, 0.8, 7),
    "adagrad": (0.6, -1.3, None, 4),
    "rmsprop": (0.3, -3.0, 0.5, 8),
    "adam": (0.2, -3.2, None, 9),
    "adamw": (0.25, -3.5, None, 8),
    "lion": (0.75, -4.2, None, 10),
}


def optim8(params: Params) -> float:
    offset, lr, momentum, batch = OPTIM8[params["optimizer"]]
    body = (0.25 * (math.log10(float(params["lr"])) - lr) ** 2
            + 0.02 * (math.log2(int(params["batch"])) - batch) ** 2)
    if momentum is not None:
        body += 2.0 * (float(params["momentum"]) - momentum) ** 2
    return offset + body


# pair9: two categoricals that only work together. The best pair ("c", "z") is poor with
# any other partner (0.6), so neither value looks good on its own average; a decoy pair
# ("a", "x") is good (0.2) and its values are fair with every partner (0.35). Two floats
# have an optimum that moves with the pair.
PAIR9 = {("c", "z"): 0.0, ("a", "x"): 0.2}


def pair9(params: Params) -> float:
    first, second = params["first"], params["second"]
    key = (first, second)
    if key in PAIR9:
        offset = PAIR9[key]
    elif first == "c" or second == "z":
        offset = 0.6
    else:
        offset = 0.35 if "a" in key or "x" in key else 0.45
    at = {"a": 0.2, "b": 0.5, "c": 0.75}[first], {"x": 0.3, "y": 0.5, "z": 0.15}[second]
    u, v = float(params["u"]), float(params["v"])
    return offset + 1.5 * (u - at[0]) ** 2 + 1.5 * (v - at[1]) ** 2


# ridge_diabetes: a real scikit-learn pipeline, PolynomialFeatures(degree) -> scaler ->
# Ridge(alpha), on scikit-learn's bundled diabetes data; 1 - R^2 over 5 shuffled folds.
# The scaler comes after the expansion, so it changes which alpha is right ("none" leaves
# the tiny squared features almost unpenalisable).
RIDGE_SCALERS = ["none", "standard", "minmax", "robust", "maxabs"]


@cache
def _diabetes() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_diabetes

    data = load_diabetes()
    return data.data, data.target


def _scaler(name: str) -> Any:
    from sklearn import preprocessing as pp

    return {"none": "passthrough", "standard": pp.StandardScaler(), "minmax": pp.MinMaxScaler(),
            "robust": pp.RobustScaler(),
            "maxabs": pp.MaxAbsScaler()}[name]


def ridge_diabetes(params: Params) -> float:
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import KFold, cross_val_score
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import PolynomialFeatures

    X, y = _diabetes()
    model = Pipeline([
        ("poly", PolynomialFeatures(int(params["degree"]), include_bias=False,
                                    interaction_only=params["interaction_only"] is True)),
        ("scale", _scaler(params["scaler"])),
        ("ridge", Ridge(alpha=float(params["alpha"]))),
    ])
    cv = KFold(n_splits=5, shuffle=True, random_state=0)
    return 1.0 - float(np.mean(cross_val_score(model, X, y, cv=cv, scoring="r2")))


SPACES: dict[str, dict[str, dict[str, Any]]] = {
    "switch5": {**{f"x{i}": {"type": "float", "low": 0, "high": 1} for i in range(4)},
                "mode": {"type": "categorical", "values": list(SWITCH_OFFSET)}},
    "cond5": {"model": {"type": "categorical", "values": ["linear", "tree", "knn"]},
              "x": {"type": "float", "low": 0, "high": 1},
              "alpha": {"type": "float", "low": 1e-4, "high": 10, "log": True},
              "depth": {"type": "int", "low": 1, "high": 20},
              "k": {"type": "int", "low": 1, "high": 50, "log": True}},
    "family6": {"family": {"type": "categorical", "values": list(FAMILY6)},
                "x": {"type": "float", "low": 0, "high": 1},
                "y": {"type": "float", "low": 0, "high": 1}},
    "intcat4": {"arch": {"type": "categorical", "values": list(INTCAT)},
                "units": {"type": "int", "low": 1, "high": 256, "log": True},
                "layers": {"type": "int", "low": 1, "high": 8},
                "dropout": {"type": "float", "low": 0, "high": 0.8}},
    "ridge_diabetes": {"scaler": {"type": "categorical", "values": RIDGE_SCALERS},
                       "degree": {"type": "int", "low": 1, "high": 3},
                       "interaction_only": {"type": "categorical", "values": [False, True]},
                       "alpha": {"type": "float", "low": 1e-6, "high": 1e4, "log": True}},
    "optim8": {"optimizer": {"type": "categorical", "values": list(OPTIM8)},
               "lr": {"type": "float", "low": 1e-5, "high": 1, "log": True},
               "momentum": {"type": "float", "low": 0, "high": 0.99},
               "batch": {"type": "int", "low": 8, "high": 1024, "log": True}},
    "pair9": {"first": {"type": "categorical", "values": ["a", "b", "c"]},
              "second": {"type": "categorical", "values": ["x", "y", "z"]},
              "u": {"type": "float", "low": 0, "high": 1},
              "v": {"type": "float", "low": 0, "high": 1}},
}
