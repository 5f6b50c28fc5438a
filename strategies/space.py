"""Search space: validation of the spec dict and one encoder to the unit cube.

Every strategy works in the unit cube ``[0, 1]^d`` (one coordinate per parameter)
and decodes through :meth:`SearchSpace.decode`, so scaling, integer rounding and
categorical mapping live in exactly one place.

Categoricals own equal-width cells of the unit interval: ``u`` in
``[i/k, (i+1)/k)`` decodes to the i-th of k values, and a value encodes to its
cell's centre. An integer v owns ``[v - 0.5, v + 0.5]`` in value space, warped by
its scale, and encodes to the warped v (the centre for linear scale, inside the
cell for log). A uniform ``u`` therefore gives every integer the same
probability (linear) or its share of the log-width (log), with no rounding bias
at the ends.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Scale = Literal["linear", "log", "reverse_log"]
SCALES: tuple[str, ...] = ("linear", "log", "reverse_log")
TYPES: tuple[str, ...] = ("float", "int", "categorical")
_NUMERIC_KEYS = {"type", "low", "high", "log", "scale", "points"}
_CATEGORICAL_KEYS = {"type", "values"}
# A name becomes a ``--name`` argv flag, a ``{name}`` placeholder and an MLflow param
# key (at most 250 characters there): the characters all three take as they are.
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,249}$")
NAME_RULE = ("parameter names must be non-empty strings of letters, digits, _ . - "
             "starting with a letter or _ (at most 250 characters)")


class SpaceError(ValueError):
    """A search-space definition that cannot be used; the message names the field."""

    def __init__(self, field: str, value: Any, allowed: str) -> None:
        self.field, self.value, self.allowed = field, value, allowed
        super().__init__(f"{field}: {value!r} is not allowed; {allowed}")


@dataclass(frozen=True)
class Numeric:
    """A float or int parameter with bounds and a scale."""

    name: str
    kind: Literal["float", "int"]
    low: float
    high: float
    scale: Scale = "linear"
    points: int | None = None  # grid resolution, when the user gave one

    @property
    def n_values(self) -> int | None:
        return int(self.high - self.low) + 1 if self.kind == "int" else None

    def _bounds(self) -> tuple[float, float]:
        # Integers own the cell [v - 0.5, v + 0.5] so the ends are not under-sampled.
        if self.kind == "int":
            return self.low - 0.5, self.high + 0.5
        return self.low, self.high

    def _warp(self, x: np.ndarray) -> np.ndarray:
        if self.scale == "log":
            return np.log(x)
        if self.scale == "reverse_log":
            return -np.log1p(-x)
        return x

    def _unwarp(self, y: np.ndarray) -> np.ndarray:
        if self.scale == "log":
            return np.exp(y)
        if self.scale == "reverse_log":
            return -np.expm1(-y)
        return y

    def encode(self, values: np.ndarray) -> np.ndarray:
        lo, hi = self._warp(np.array(self._bounds(), dtype=float))
        return (self._warp(np.asarray(values, dtype=float)) - lo) / (hi - lo)

    def decode(self, u: np.ndarray) -> np.ndarray:
        lo, hi = self._warp(np.array(self._bounds(), dtype=float))
        x = self._unwarp(lo + np.clip(u, 0.0, 1.0) * (hi - lo))
        if self.kind == "int":
            return np.clip(np.floor(x + 0.5), self.low, self.high)
        # exp(log(low)) is not always low: give the bounds back exactly.
        x = np.clip(x, self.low, self.high)
        return np.where(u <= 0.0, self.low, np.where(u >= 1.0, self.high, x))


@dataclass(frozen=True)
class Categorical:
    """A categorical parameter; values are returned exactly as given."""

    name: str
    values: tuple[Any, ...]
    kind: Literal["categorical"] = "categorical"

    @property
    def n_values(self) -> int:
        return len(self.values)

    def index(self, value: Any) -> int:
        for i, v in enumerate(self.values):
            if v == value and type(v) is type(value):
                return i
        for i, v in enumerate(self.values):  # 1 == 1.0, or a value read back as text
            if v == value or str(v) == str(value):
                return i
        raise SpaceError(f"parameters.{self.name}", value, f"must be one of {list(self.values)}")


Param = Numeric | Categorical


def _number(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SpaceError(field, value, "must be a finite number")
    return float(value)


def _parse_numeric(name: str, kind: Literal["float", "int"], d: Mapping[str, Any]) -> Numeric:
    path = f"parameters.{name}"
    for key in ("low", "high"):
        if key not in d:
            raise SpaceError(f"{path}.{key}", None, f"{kind} parameters need both low and high")
    low, high = _number(f"{path}.low", d["low"]), _number(f"{path}.high", d["high"])
    if kind == "int":
        for key, v in (("low", d["low"]), ("high", d["high"])):
            if not float(v).is_integer():
                raise SpaceError(f"{path}.{key}", v, "int parameters need whole-number bounds")
    if low >= high:
        raise SpaceError(f"{path}.low", d["low"], f"must be < high ({d['high']!r})")
    scale = d.get("scale", "linear")
    if scale not in SCALES:
        raise SpaceError(f"{path}.scale", scale, f"allowed: {', '.join(SCALES)}")
    if "log" in d:
        if not isinstance(d["log"], bool):
            raise SpaceError(f"{path}.log", d["log"], "must be true or false")
        if "scale" in d and d["log"] != (scale == "log"):
            raise SpaceError(f"{path}.log", d["log"], f"conflicts with scale: {scale}")
        if d["log"]:
            scale = "log"
    if scale == "log" and low <= 0:
        raise SpaceError(f"{path}.low", d["low"], "log scale needs low > 0")
    if scale == "reverse_log":
        if kind == "int":
            raise SpaceError(f"{path}.scale", scale, "reverse_log is for float parameters only")
        if low < 0:
            raise SpaceError(f"{path}.low", d["low"], "reverse_log needs 0 <= low < high < 1")
        if high >= 1:
            raise SpaceError(f"{path}.high", d["high"], "reverse_log needs 0 <= low < high < 1")
    points = d.get("points")
    if points is not None and (isinstance(points, bool) or not isinstance(points, int)
                               or points < 2):
        raise SpaceError(f"{path}.points", points, "must be a whole number >= 2")
    return Numeric(name, kind, low, high, scale, points)


def _parse(name: str, d: Any) -> Param:
    path = f"parameters.{name}"
    if not isinstance(d, Mapping):
        raise SpaceError(path, d, "must be a mapping with a type")
    kind = d.get("type")
    if kind not in TYPES:
        raise SpaceError(f"{path}.type", kind, f"allowed: {', '.join(TYPES)}")
    allowed = _CATEGORICAL_KEYS if kind == "categorical" else _NUMERIC_KEYS
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise SpaceError(f"{path}.{unknown[0]}", d[unknown[0]],
                         f"unknown key for {kind}; allowed keys: {', '.join(sorted(allowed))}")
    if kind != "categorical":
        return _parse_numeric(name, kind, d)
    values = d.get("values")
    if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
        raise SpaceError(f"{path}.values", values, "must be a non-empty list")
    for v in values:
        if not isinstance(v, str | int | float | bool):
            raise SpaceError(f"{path}.values", v, "values must be strings, numbers or booleans")
    _check_distinct(f"{path}.values", values)
    return Categorical(name, tuple(values))


def _check_distinct(field: str, values: Sequence[Any]) -> None:
    """Distinct as text (MLflow keeps ``str(value)``: 1 and '1' read back the same)
    and as Python values (1 == 1.0 == True: a history keyed on values would merge them)."""
    for i, v in enumerate(values):
        for u in values[:i]:
            if type(u) is type(v) and u == v:
                raise SpaceError(field, v, "values must be unique")
            if str(u) == str(v):
                raise SpaceError(field, v, f"collides with {u!r}: MLflow stores both as the "
                                 f"text {str(v)!r}; make the values distinct as text")
            if u == v:
                raise SpaceError(field, v, f"equals {u!r} in Python (as 1, 1.0 and True do); "
                                 "keep one of them, or quote them as distinct strings")


class SearchSpace:
    """An ordered set of parameters with an encoder to ``[0, 1]^d`` and back."""

    def __init__(self, params: Sequence[Param]) -> None:
        if not params:
            raise SpaceError("parameters", {}, "define at least one parameter")
        self.params: tuple[Param, ...] = tuple(params)
        self.names: tuple[str, ...] = tuple(p.name for p in self.params)

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> SearchSpace:
        if not isinstance(spec, Mapping):
            raise SpaceError("parameters", spec, "must be a mapping of name -> definition")
        for name in spec:
            if not isinstance(name, str) or not _NAME.match(name):
                raise SpaceError("parameters", name, NAME_RULE)
        return cls([_parse(name, d) for name, d in spec.items()])

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """The canonical spec dict; equal spaces give equal dicts."""
        out: dict[str, dict[str, Any]] = {}
        for p in self.params:
            if isinstance(p, Categorical):
                out[p.name] = {"type": "categorical", "values": list(p.values)}
            else:
                low, high = (int(p.low), int(p.high)) if p.kind == "int" else (p.low, p.high)
                out[p.name] = {"type": p.kind, "low": low, "high": high, "scale": p.scale}
                if p.points is not None:
                    out[p.name]["points"] = p.points
        return out

    @property
    def dim(self) -> int:
        return len(self.params)

    def encode(self, params: Mapping[str, Any]) -> np.ndarray:
        """One point to the unit cube; categoricals and ints go to their cell's centre."""
        u = np.empty(self.dim)
        for j, p in enumerate(self.params):
            if p.name not in params:
                raise SpaceError(f"params.{p.name}", None, "missing from the trial's params")
            v = params[p.name]
            if isinstance(p, Categorical):
                u[j] = (p.index(v) + 0.5) / p.n_values
            else:
                u[j] = float(p.encode(np.array([float(v)]))[0])
        return u

    def encode_many(self, points: Sequence[Mapping[str, Any]]) -> np.ndarray:
        if not points:
            return np.empty((0, self.dim))
        return np.vstack([self.encode(p) for p in points])

    def decode(self, u: np.ndarray) -> dict[str, Any]:
        """A unit-cube point to params with native Python types."""
        u = np.asarray(u, dtype=float)
        out: dict[str, Any] = {}
        for j, p in enumerate(self.params):
            if isinstance(p, Categorical):
                i = min(int(np.floor(np.clip(u[j], 0.0, 1.0) * p.n_values)), p.n_values - 1)
                out[p.name] = p.values[i]
            elif p.kind == "int":
                out[p.name] = int(p.decode(u[j : j + 1])[0])
            else:
                out[p.name] = float(p.decode(u[j : j + 1])[0])
        return out

    def snap(self, u: np.ndarray) -> np.ndarray:
        """Move unit-cube points to the encoding of the params they decode to."""
        u = np.atleast_2d(u)
        return np.vstack([self.encode(self.decode(row)) for row in u])

    def key(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        """A hashable identity for duplicate detection (floats to 12 significant digits)."""
        out: list[Any] = []
        for p in self.params:
            v = params.get(p.name)
            if isinstance(p, Categorical):
                out.append(p.index(v))
            elif p.kind == "int":
                out.append(round(float(v)))
            else:
                out.append(float(f"{float(v):.12g}"))
        return tuple(out)

    def coerce(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Params read back as text (e.g. from MLflow) to their declared types."""
        out: dict[str, Any] = {}
        for p in self.params:
            v = params[p.name]
            if isinstance(p, Categorical):
                out[p.name] = p.values[p.index(v)]
            elif p.kind == "int":
                out[p.name] = round(float(v))
            else:
                out[p.name] = float(v)
        return out

    def size(self) -> int | None:
        """Number of distinct points, or None when a float makes it continuous."""
        n = 1
        for p in self.params:
            if isinstance(p, Categorical) or p.kind == "int":
                n *= p.n_values or 1
            else:
                return None
        return n

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SearchSpace) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(repr(self.to_dict()))

    def __repr__(self) -> str:
        return f"SearchSpace({self.to_dict()!r})"
