"""SearchSpace: the encoder round-trips, and every invalid spec names field, value and rule."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amtune.strategies import Categorical, SearchSpace, SpaceError

# ---------------------------------------------------------------- generators


@st.composite
def float_specs(draw: st.DrawFn) -> dict[str, Any]:
    scale = draw(st.sampled_from(["linear", "log", "reverse_log"]))
    if scale == "log":
        low = 10 ** draw(st.floats(-8, 3))
        return {"type": "float", "low": low, "high": low * 10 ** draw(st.floats(0.01, 8)),
                "log": True}
    if scale == "reverse_log":
        low = draw(st.floats(0, 0.9))
        return {"type": "float", "low": low, "high": draw(st.floats(low + 0.01, 0.9999)),
                "scale": "reverse_log"}
    low = draw(st.floats(-1e6, 1e6))
    return {"type": "float", "low": low, "high": low + draw(st.floats(1e-3, 1e6))}


@st.composite
def int_specs(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        low = draw(st.integers(1, 1000))
        return {"type": "int", "low": low, "high": low + draw(st.integers(1, 10**5)),
                "scale": "log"}
    low = draw(st.integers(-1000, 1000))
    return {"type": "int", "low": low, "high": low + draw(st.integers(1, 1000))}


# Values whose text forms differ, so a value read back as text maps to exactly one, and
# that differ as Python values (1, 1.0 and True are equal), as the space requires.
_category = st.one_of(st.text(min_size=1, max_size=5), st.integers(-50, 50),
                      st.floats(-10, 10).map(lambda x: round(x, 3) + 0.0), st.booleans())


@st.composite
def categorical_specs(draw: st.DrawFn) -> dict[str, Any]:
    values = draw(st.lists(_category, min_size=1, max_size=6,
                           unique_by=(str, lambda v: v)))
    return {"type": "categorical", "values": values}


spaces = st.dictionaries(
    st.from_regex(r"[a-z][a-z0-9_]{0,7}", fullmatch=True),
    st.one_of(float_specs(), int_specs(), categorical_specs()),
    min_size=1, max_size=6,
).map(SearchSpace.from_dict)


def _same(space: SearchSpace, a: dict[str, Any], b: dict[str, Any]) -> None:
    for p in space.params:
        if isinstance(p, Categorical) or p.kind == "int":
            assert a[p.name] == b[p.name]
            assert type(a[p.name]) is type(b[p.name])
        else:
            assert math.isclose(a[p.name], b[p.name], rel_tol=1e-9, abs_tol=1e-9)


def _check_valid(space: SearchSpace, params: dict[str, Any]) -> None:
    for p in space.params:
        v = params[p.name]
        if isinstance(p, Categorical):
            assert any(v == c and type(v) is type(c) for c in p.values)
        elif p.kind == "int":
            assert type(v) is int
            assert p.low <= v <= p.high
        else:
            assert type(v) is float
            assert p.low <= v <= p.high


# ---------------------------------------------------------------- round trips


@settings(max_examples=120, deadline=None, derandomize=True)
@given(space=spaces, data=st.data())
def test_decode_gives_valid_params_that_encode_back_to_themselves(
    space: SearchSpace, data: st.DataObject
) -> None:
    u = np.array(data.draw(st.lists(st.floats(0, 1), min_size=space.dim, max_size=space.dim)))
    params = space.decode(u)
    _check_valid(space, params)
    enc = space.encode(params)
    assert np.all((enc >= 0) & (enc <= 1))
    _same(space, space.decode(enc), params)


@settings(max_examples=120, deadline=None, derandomize=True)
@given(space=spaces, data=st.data())
def test_text_round_trip_through_coerce_keeps_values_and_keys(
    space: SearchSpace, data: st.DataObject
) -> None:
    u = np.array(data.draw(st.lists(st.floats(0, 1), min_size=space.dim, max_size=space.dim)))
    params = space.decode(u)
    as_text = {k: str(v) for k, v in params.items()}  # how MLflow hands params back
    back = space.coerce(as_text)
    assert back == params
    _same(space, back, params)
    assert space.key(back) == space.key(params)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(spec=int_specs(), data=st.data())
def test_every_int_encodes_inside_its_own_cell(spec: dict[str, Any], data: st.DataObject) -> None:
    space = SearchSpace.from_dict({"k": spec})
    v = data.draw(st.integers(spec["low"], spec["high"]))
    assert space.decode(space.encode({"k": v})) == {"k": v}


def test_int_and_categorical_cells_are_equal_width() -> None:
    space = SearchSpace.from_dict({"k": {"type": "int", "low": 1, "high": 4},
                                   "c": {"type": "categorical", "values": ["a", 2, True]}})
    grid = np.linspace(0, 1, 12001)
    ks = [space.decode(np.array([u, 0.5]))["k"] for u in grid]
    cs = [space.decode(np.array([0.5, u]))["c"] for u in grid]
    assert [ks.count(k) for k in (1, 2, 3, 4)] == pytest.approx([3000] * 4, abs=2)
    assert [sum(c == v and type(c) is type(v) for c in cs) for v in ("a", 2, True)] == \
        pytest.approx([4000] * 3, abs=2)


def test_reverse_log_puts_more_resolution_near_one() -> None:
    space = SearchSpace.from_dict({"m": {"type": "float", "low": 0, "high": 0.999,
                                         "scale": "reverse_log"}})
    mid = space.decode(np.array([0.5]))["m"]
    assert mid == pytest.approx(1 - math.sqrt(0.001))  # half way in -log(1 - m)
    assert space.decode(np.array([0.0]))["m"] == 0.0
    assert space.decode(np.array([1.0]))["m"] == pytest.approx(0.999)


def test_log_true_and_scale_log_are_the_same_space() -> None:
    a = SearchSpace.from_dict({"x": {"type": "float", "low": 1e-3, "high": 1, "log": True}})
    b = SearchSpace.from_dict({"x": {"type": "float", "low": 1e-3, "high": 1, "scale": "log"}})
    assert a == b
    assert a.decode(np.array([0.5]))["x"] == pytest.approx(10**-1.5)


def test_size_counts_discrete_points_and_is_none_with_a_float() -> None:
    discrete = {"k": {"type": "int", "low": 0, "high": 4},
                "c": {"type": "categorical", "values": ["a", "b"]}}
    assert SearchSpace.from_dict(discrete).size() == 10
    with_float = {**discrete, "x": {"type": "float", "low": 0, "high": 1}}
    assert SearchSpace.from_dict(with_float).size() is None


# ---------------------------------------------------------------- validation


def _error(spec: Any) -> str:
    with pytest.raises(SpaceError) as info:
        SearchSpace.from_dict(spec)
    return str(info.value)


@pytest.mark.parametrize(
    ("definition", "fragments"),
    [
        ({"type": "float", "low": 1.0, "high": 1.0}, ["parameters.p.low", "1.0", "< high"]),
        ({"type": "float", "low": 2, "high": 1}, ["parameters.p.low", "2", "< high (1)"]),
        ({"type": "int", "low": 5, "high": 3}, ["parameters.p.low", "5", "< high"]),
        ({"type": "float", "low": 0, "high": 1, "log": True},
         ["parameters.p.low", "0", "log scale needs low > 0"]),
        ({"type": "float", "low": -1, "high": 1, "scale": "log"},
         ["parameters.p.low", "-1", "log scale needs low > 0"]),
        ({"type": "float", "low": 0.5, "high": 1.0, "scale": "reverse_log"},
         ["parameters.p", "1.0", "0 <= low < high < 1"]),
        ({"type": "float", "low": -0.1, "high": 0.5, "scale": "reverse_log"},
         ["parameters.p", "-0.1", "0 <= low < high < 1"]),
        ({"type": "int", "low": 0, "high": 5, "scale": "reverse_log"},
         ["parameters.p.scale", "reverse_log", "float parameters only"]),
        ({"type": "float", "low": 0, "high": 1, "scale": "cubic"},
         ["parameters.p.scale", "cubic", "linear, log, reverse_log"]),
        ({"type": "categorical", "values": []}, ["parameters.p.values", "[]", "non-empty list"]),
        ({"type": "categorical", "values": ["a", "b", "a"]},
         ["parameters.p.values", "'a'", "unique"]),
        ({"type": "categorical", "values": [[1, 2]]},
         ["parameters.p.values", "[1, 2]", "strings, numbers or booleans"]),
        ({"type": "double", "low": 0, "high": 1},
         ["parameters.p.type", "double", "float, int, categorical"]),
        ({"low": 0, "high": 1}, ["parameters.p.type", "None", "float, int, categorical"]),
        ({"type": "float", "low": 0, "high": 1, "step": 0.1},
         ["parameters.p.step", "0.1", "allowed keys", "high", "low"]),
        ({"type": "categorical", "values": ["a"], "low": 0},
         ["parameters.p.low", "0", "allowed keys: type, values"]),
        ({"type": "int", "low": 0.5, "high": 3}, ["parameters.p.low", "0.5", "whole-number"]),
        ({"type": "int", "low": 0, "high": 3.5}, ["parameters.p.high", "3.5", "whole-number"]),
        ({"type": "float", "low": 0}, ["parameters.p.high", "need both low and high"]),
        ({"type": "float", "low": "a", "high": 1}, ["parameters.p.low", "'a'", "finite number"]),
        ({"type": "float", "low": 0, "high": math.inf}, ["parameters.p.high", "inf", "finite"]),
        ({"type": "float", "low": 0, "high": 1, "log": "yes"},
         ["parameters.p.log", "'yes'", "true or false"]),
        ({"type": "float", "low": 1, "high": 2, "log": True, "scale": "linear"},
         ["parameters.p.log", "conflicts with scale: linear"]),
        ({"type": "float", "low": 0, "high": 1, "points": 1},
         ["parameters.p.points", "1", "whole number >= 2"]),
        ("float", ["parameters.p", "'float'", "mapping"]),
    ],
)
def test_invalid_parameter_names_field_value_and_what_is_allowed(
    definition: Any, fragments: list[str]
) -> None:
    message = _error({"p": definition})
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_empty_space_and_bad_names_are_rejected() -> None:
    assert "at least one parameter" in _error({})
    assert "must be a mapping" in _error([("x", {"type": "float"})])
    assert "non-empty strings" in _error({"": {"type": "float", "low": 0, "high": 1}})


@pytest.mark.parametrize("name", ["learning rate", "lr;rm", "-x", "--x", "1st", "a/b", "a:b",
                                  "a{b}", "é", "x" * 251, 3])
def test_names_that_are_no_argv_flag_or_mlflow_key_are_rejected(name: object) -> None:
    """A space would make the argv item ``--learning rate``; names are flags and param keys."""
    message = _error({name: {"type": "float", "low": 0, "high": 1}})
    assert message.startswith(f"parameters: {name!r} is not allowed;"), message
    assert "letters, digits, _ . -" in message


@pytest.mark.parametrize("name", ["lr", "learning_rate", "_x", "layer.1-size", "X" * 250])
def test_flag_like_names_are_accepted(name: str) -> None:
    assert SearchSpace.from_dict({name: {"type": "float", "low": 0, "high": 1}}).names == (name,)


@pytest.mark.parametrize(
    ("values", "fragments"),
    [
        ([1, "1"], ["'1'", "collides with 1", "text '1'"]),
        (["x", True, "True"], ["'True'", "collides with True", "text 'True'"]),
        ([1.5, "1.5"], ["'1.5'", "collides with 1.5"]),
        ([1, 1.0], ["1.0", "equals 1"]),
        ([1, True], ["True", "equals 1"]),
        ([False, 0], ["0", "equals False"]),
        (["a", 2, "a"], ["'a'", "unique"]),
    ],
)
def test_categoricals_that_collide_as_mlflow_text_or_python_values_are_rejected(
    values: list[Any], fragments: list[str]
) -> None:
    message = _error({"c": {"type": "categorical", "values": values}})
    assert message.startswith("parameters.c.values: "), message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_mixed_categoricals_distinct_as_text_and_value_are_accepted() -> None:
    space = SearchSpace.from_dict({"c": {"type": "categorical",
                                         "values": ["one", 2, True, 2.5, "2.0"]}})
    for v in ("one", 2, True, 2.5, "2.0"):
        assert space.coerce({"c": str(v)}) == {"c": v}


def test_params_outside_the_categories_are_rejected_with_the_allowed_values() -> None:
    space = SearchSpace.from_dict({"c": {"type": "categorical", "values": ["a", "b"]}})
    with pytest.raises(SpaceError, match=r"parameters\.c: 'z' .*\['a', 'b'\]"):
        space.encode({"c": "z"})
    with pytest.raises(SpaceError, match=r"params\.c"):
        space.encode({})
