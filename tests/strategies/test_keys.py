"""Duplicate keys are kept on a trial between proposals, for the space they were made for."""

from __future__ import annotations

from amtune.strategies import SearchSpace, Trial, make_strategy

FINE = {"x": {"type": "float", "low": 0.0, "high": 1.0}}
COARSE = {"x": {"type": "int", "low": 0, "high": 10}}


def test_a_kept_key_is_the_key_and_another_space_keys_anew() -> None:
    trials = [Trial({"x": 0.25}, 1.0), Trial({"x": 0.75}, 2.0)]
    fine = make_strategy("random", SearchSpace.from_dict(FINE), seed=0)
    assert fine._seen(trials) == {(0.25,), (0.75,)}
    assert fine._seen(trials) == {(0.25,), (0.75,)}  # from the kept keys
    coarse = make_strategy("random", SearchSpace.from_dict(COARSE), seed=0)
    assert coarse._seen(trials) == {(0,), (1,)}  # rounded as ints: not the float keys


def test_kept_keys_still_block_proposed_points() -> None:
    space = SearchSpace.from_dict({"c": {"type": "categorical", "values": ["a", "b", "c"]}})
    s = make_strategy("random", space, seed=0)
    history = [Trial({"c": "a"}, 0.0), Trial({"c": "b"}, 0.0)]
    s.propose(history, 1)  # keys kept
    assert make_strategy("random", space, seed=1).propose(history, 3) == [{"c": "c"}]
