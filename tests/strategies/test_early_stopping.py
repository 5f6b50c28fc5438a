"""Early-stopping rules against cases worked out by hand, and the stopped Trial status."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from amtune.strategies import SearchSpace, Trial, make_strategy
from amtune.strategies.early_stopping import (
    AshaRule,
    Curve,
    HyperbandRule,
    MedianRule,
    make_rule,
)


def done(*values: float, status: str = "completed", start: int = 1) -> Curve:
    return Curve({start + i: v for i, v in enumerate(values)}, status)


# Five finished trials, steps 1 to 3. Running averages up to step 2:
# 0.9, 1.5, 0.5, 2.5, 1.1 -> median 1.1. Values at step 2: 0.8, 1, 0.4, 2, 1 -> median 1.0.
FIVE = {0: done(1.0, 0.8, 0.7), 1: done(2.0, 1.0, 0.9),
        2: done(0.6, 0.4, 0.3), 3: done(3.0, 2.0, 1.9),
        4: done(1.2, 1.0, 0.9)}


# --- median -------------------------------------------------------------------------

def test_median_compares_with_the_median_of_running_averages() -> None:
    rule = MedianRule()
    assert not rule.should_stop(9, 2, 1.05, FIVE)  # above the values' median 1.0, below 1.1
    assert not rule.should_stop(9, 2, 1.1, FIVE)  # equal is not worse
    assert rule.should_stop(9, 2, 1.15, FIVE)
    # step 1: the averages are the values 1, 2, 0.6, 3, 1.2 -> median 1.2
    assert not rule.should_stop(9, 1, 1.2, FIVE)
    assert rule.should_stop(9, 1, 1.25, FIVE)


def test_median_waits_for_min_trials_finished_trials() -> None:
    four_and_running = {**FIVE, 4: done(1.2, 1.0, 0.9, status="running")}
    assert not MedianRule().should_stop(9, 2, 100.0, four_and_running)
    assert MedianRule(min_trials=4).should_stop(9, 2, 100.0, four_and_running)
    failed = {**FIVE, 4: done(1.2, 1.0, 0.9, status="failed")}  # failed is not finished
    assert not MedianRule().should_stop(9, 2, 100.0, failed)


def test_median_never_stops_before_min_steps() -> None:
    assert not MedianRule(min_steps=3).should_stop(9, 2, 100.0, FIVE)


def test_median_counts_trials_that_reached_the_step_running_ones_included() -> None:
    # two more that reached step 2 (averages 0.15 and 0.25): median of seven is 0.9
    more = {**FIVE, 5: done(0.2, 0.1, status="running"), 6: done(0.3, 0.2)}
    assert MedianRule().should_stop(9, 2, 1.05, more)
    # one that never reached step 2 does not count, however good it was
    short = {**FIVE, 5: done(0.01), 6: done(0.01, status="stopped")}
    assert not MedianRule().should_stop(9, 2, 1.05, short)


def test_median_leaves_stopped_trials_out_of_the_median() -> None:
    # two stopped trials that reached step 2 (averages 3 and 4): still a median of 1.1
    losers = {**FIVE, 5: done(3.0, 3.0, status="stopped"), 6: done(4.0, 4.0, status="stopped")}
    assert MedianRule().should_stop(9, 2, 1.15, losers)
    # counted, they would have made it the median of seven, 1.5
    assert not MedianRule().should_stop(9, 2, 1.15, {
        n: Curve(c.values, "completed") for n, c in losers.items()})
    # but they count as finished trials for min_trials
    three = {n: FIVE[n] for n in (0, 1, 2)}
    assert MedianRule().should_stop(9, 2, 1.5, {**three, 5: losers[5], 6: losers[6]})
    assert not MedianRule().should_stop(9, 2, 1.5, {**three, 5: losers[5]})


def test_median_ignores_the_trials_own_curve() -> None:
    own = {**FIVE, 9: done(50.0, 1.05, status="running")}
    assert not MedianRule().should_stop(9, 2, 1.05, own)


def test_no_rule_stops_at_the_full_length() -> None:
    assert not MedianRule(max_steps=2).should_stop(9, 2, 100.0, FIVE)  # given
    assert MedianRule(max_steps=3).should_stop(9, 2, 100.0, FIVE)
    # inferred: the longest completed trial ended at step 3
    assert not MedianRule().should_stop(9, 3, 100.0, FIVE)
    # a stopped trial's last step does not tell the full length
    longer = {**FIVE, 2: done(0.6, 0.4, 0.3, 0.2, status="stopped")}
    assert not MedianRule().should_stop(9, 3, 100.0, longer)
    longer[7] = done(0.6, 0.4, 0.3, 0.2, 0.1, status="running")
    assert not MedianRule().should_stop(9, 3, 100.0, longer)  # nor does a running one
    longer[8] = done(0.6, 0.4, 0.3, 0.2)
    assert MedianRule().should_stop(9, 3, 100.0, longer)


def test_a_nan_value_counts_as_the_worst() -> None:
    assert MedianRule().should_stop(9, 2, math.nan, FIVE)
    assert AshaRule().should_stop(9, 1, math.nan, {0: done(5.0, status="running")})


# --- asha ---------------------------------------------------------------------------

def test_asha_rungs() -> None:
    assert AshaRule().rungs(100) == [1, 3, 9, 27, 81]
    assert AshaRule().rungs(27, full=27) == [1, 3, 9]
    assert AshaRule(min_steps=2, reduction_factor=2).rungs(20) == [2, 4, 8, 16]


def test_asha_first_trials_at_a_rung_go_on_only_if_best_so_far() -> None:
    rule = AshaRule()
    assert not rule.should_stop(0, 1, 0.7, {})
    one = {0: done(0.5, status="running")}
    assert rule.should_stop(1, 1, 0.6, one)  # 2 values, keep max(1, 2 // 3) = 1
    assert not rule.should_stop(1, 1, 0.4, one)


def test_asha_keeps_the_top_third_of_the_values_at_the_rung() -> None:
    rule = AshaRule()
    five = {n: done(v, status="running") for n, v in enumerate([0.1, 0.2, 0.3, 0.4, 0.5])}
    # six values with its own: keep the best 2
    assert not rule.should_stop(9, 1, 0.15, five)
    assert not rule.should_stop(9, 1, 0.2, five)  # tied with the 2nd: kept
    assert rule.should_stop(9, 1, 0.25, five)
    # five values with its own: 5 // 3 = 1, so only the best goes on
    four = {n: five[n] for n in range(4)}
    assert rule.should_stop(9, 1, 0.15, four)
    assert not rule.should_stop(9, 1, 0.05, four)
    # nine values with its own: keep 3
    eight = {**five, **{n: done(v, status="stopped") for n, v in [(5, 0.6), (6, 0.7), (7, 0.8)]}}
    assert not rule.should_stop(9, 1, 0.25, eight)
    assert rule.should_stop(9, 1, 0.35, eight)


def test_asha_with_few_values_at_a_rung_also_judges_the_filled_rung_below() -> None:
    # rung 1 holds six others (0.1 .. 0.6) and the trial's own 0.35: 7 values, keep 2
    rung1 = {n: Curve({1: 0.1 * (n + 1)}, "stopped") for n in range(6)}
    rival = {6: Curve({1: 0.05, 2: 0.04, 3: 0.3}, "running")}  # the only other at rung 3
    me = Curve({1: 0.35, 2: 0.3}, "running")
    rule = AshaRule(max_steps=27)  # rungs 1, 3, 9
    # at rung 3: 2 values, it is the best (0.2 < 0.3), but 0.35 is not in the top 2
    # of rung 1 (0.05, 0.1) as rung 1 stands now: stopped
    assert rule.should_stop(9, 3, 0.2, {**rung1, **rival, 9: me})
    assert not AshaRule(max_steps=27).should_stop(
        9, 3, 0.2, {**rung1, **rival, 9: Curve({1: 0.08, 2: 0.07}, "running")})
    # the first at rung 3 (rung 9 comes after it) is judged below as well
    assert rule.should_stop(9, 3, 0.2, {**rung1, 9: me})
    # a rung below with fewer than 3 values judges nothing: rung 1 holds 2 here
    assert not rule.should_stop(9, 3, 0.2, {0: rung1[0], 9: me})


def test_asha_lets_the_first_at_the_last_rung_run_to_the_end() -> None:
    # rung 9 is the last before 27; rung 3 holds 7 values and the trial is 4th there
    rung3 = {n: Curve({3: 0.1 * (n + 1)}, "stopped") for n in range(6)}
    me = Curve({3: 0.35, 8: 0.3}, "running")
    assert not AshaRule(max_steps=27).should_stop(9, 9, 0.2, {**rung3, 9: me})
    # not the first: judged below, and 0.35 is not in the top 2 of rung 3
    second = {7: Curve({3: 0.01, 9: 0.5}, "stopped")}
    assert AshaRule(max_steps=27).should_stop(9, 9, 0.2, {**rung3, **second, 9: me})
    # a longer full length makes rung 9 a middle rung: the first there is judged below
    assert AshaRule(max_steps=81).should_stop(9, 9, 0.2, {**rung3, 9: me})
    # full length unknown (no max_steps, nothing completed): the first at any rung
    assert not AshaRule().should_stop(9, 9, 0.2, {**rung3, 9: me})
    rung1 = {n: Curve({1: 0.1 * (n + 1)}, "stopped") for n in range(6)}
    assert not AshaRule().should_stop(9, 3, 0.2, {**rung1, 9: Curve({1: 0.35}, "running")})


def test_asha_judges_only_at_rungs() -> None:
    five = {n: done(v, v, status="running") for n, v in enumerate([0.1, 0.2, 0.3, 0.4, 0.5])}
    five[9] = done(0.05, status="running")  # its own report at step 1: the best there
    assert not AshaRule().should_stop(9, 2, 100.0, five)
    assert AshaRule(min_steps=2).should_stop(9, 2, 100.0, five)
    del five[9]  # no report at step 1 seen: rung 1 is judged now
    assert AshaRule().should_stop(9, 2, 100.0, five)


def test_asha_with_irregular_steps_uses_the_first_report_past_the_rung() -> None:
    # others reported at steps 2 and 4 only; their rung-3 values are those of step 4
    others = {n: Curve({2: 9.0, 4: v}, "running") for n, v in enumerate([0.1, 0.2, 0.3])}
    rule = AshaRule(min_steps=3)
    own = Curve({2: 9.0}, "running")
    assert rule.should_stop(9, 4, 0.25, {**others, 9: own})  # 4 values, keep 1
    assert not rule.should_stop(9, 4, 0.05, {**others, 9: own})
    judged = Curve({2: 9.0, 4: 0.05}, "running")  # rung 3 was judged at step 4 already
    assert not rule.should_stop(9, 5, 100.0, {**others, 9: judged})


def test_asha_does_not_judge_the_full_length() -> None:
    eight = {n: done(*[v] * 9) for n, v in enumerate(range(1, 9))}
    own = {9: done(*[0.0] * 8, status="running")}  # the best up to step 8
    running = {n: Curve(c.values, "running") for n, c in eight.items()}
    assert AshaRule().should_stop(9, 9, 100.0, {**running, **own})  # rung 9: 9 values, keep 3
    assert not AshaRule().should_stop(9, 9, 100.0, {**eight, **own})  # completed at 9: the end
    assert not AshaRule(max_steps=9).should_stop(9, 9, 100.0, {})


# --- hyperband ----------------------------------------------------------------------

def test_hyperband_brackets_and_their_shares() -> None:
    rule = HyperbandRule(max_steps=27)
    assert [b.min_steps for b in rule.brackets] == [1, 3, 9, 27]
    # Hyperband's n_s for 4 brackets and rf 3: ceil(4 * 3**s / (s + 1)) = 27, 12, 6, 4
    counts = Counter(rule.bracket(t) for t in range(49 * 20))
    assert [round(counts[b] / 20) for b in range(4)] == [27, 12, 6, 4]
    # frac(1 * 0.618) = 0.618 lies past 27/49 = 0.551: trial 0 goes to bracket 1
    assert rule.bracket(0) == 1 and rule.bracket(1) == 0
    assert [b.min_steps for b in HyperbandRule(max_steps=10, min_steps=2,
                                               reduction_factor=2).brackets] == [2, 4, 8]


def test_hyperband_trials_compete_within_their_bracket_only() -> None:
    rule = HyperbandRule(max_steps=27)
    by_bracket: dict[int, list[int]] = {}
    for t in range(60):
        by_bracket.setdefault(rule.bracket(t), []).append(t)
    zero, one = by_bracket[0], by_bracket[1]
    # much better bracket-0 trials do not stop a bracket-1 trial, at step 1 or at 3
    others = {t: done(0.01, 0.01, 0.01) for t in zero[:6]}
    me = one[0]
    assert not rule.should_stop(me, 1, 5.0, others)
    assert not rule.should_stop(me, 3, 5.0, others)
    # a bracket-1 rival that is better at step 3 does stop it there
    rivals = {**others, one[1]: done(9.0, 9.0, 1.0, status="running")}
    assert rule.should_stop(me, 3, 5.0, rivals)
    # and a bracket-0 trial is judged at step 1
    assert rule.should_stop(zero[6], 1, 5.0, others)


# --- config -------------------------------------------------------------------------

def test_make_rule_defaults_and_ignored_fields() -> None:
    assert make_rule(None) is None
    assert make_rule({"rule": "median"}) == MedianRule(min_steps=1, min_trials=5)
    assert make_rule({"rule": "asha"}) == AshaRule(min_steps=1, reduction_factor=3)
    every = {"min_steps": 3, "reduction_factor": 2, "max_steps": 27, "min_trials": 4}
    assert make_rule({"rule": "median", **every}) == MedianRule(3, 4, 27)
    assert make_rule({"rule": "asha", **every}) == AshaRule(3, 2, 27)
    assert make_rule({"rule": "hyperband", **every}) == HyperbandRule(27, 3, 2)


@pytest.mark.parametrize(("config", "message"), [
    ({"rule": "mean"}, r"early_stopping\.rule: 'mean' is not a rule; allowed: median, asha"),
    ({"rule": "asha", "eta": 3}, r"early_stopping\.eta: 3 is not a field; allowed: rule,"),
    ({"rule": "asha", "min_steps": 0}, r"early_stopping\.min_steps: 0 .*whole number >= 1"),
    ({"rule": "asha", "reduction_factor": 1.5}, r"reduction_factor: 1\.5 .*>= 2"),
    ({"rule": "median", "min_trials": True}, r"min_trials: True is not allowed"),
    ({"rule": "asha", "min_steps": 5, "max_steps": 4}, r"max_steps: 4 .*>= min_steps \(5\)"),
    ({"rule": "hyperband"}, r"early_stopping\.max_steps: missing; hyperband needs"),
])
def test_bad_configs_are_one_line_errors(config: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        make_rule(config)
    assert "\n" not in str(info.value)


def test_hyperband_as_a_strategy_name_points_to_the_rule() -> None:
    space = SearchSpace.from_dict({"x": {"type": "float", "low": 0, "high": 1}})
    with pytest.raises(ValueError, match=r"'hyperband' is not a strategy.*rule: hyperband"):
        make_strategy("hyperband", space)


# --- the stopped status in strategies ----------------------------------------------

@pytest.mark.parametrize("name", ["grid", "random", "sobol"])
def test_stopped_trials_are_seen_and_never_proposed_again(name: str) -> None:
    space = SearchSpace.from_dict({"k": {"type": "int", "low": 1, "high": 4},
                                   "c": {"type": "categorical", "values": ["a", "b", "c"]}})
    strategy = make_strategy(name, space, seed=3)
    first = strategy.propose([], 7)
    past = [Trial(params=p, value=0.5, status="stopped") for p in first]
    rest = strategy.propose(past, 12)
    assert len(rest) == 12 - 7
    keys = {space.key(p) for p in first + rest}
    assert len(keys) == 12


def test_a_stopped_trial_carries_its_last_value() -> None:
    assert Trial(params={"x": 1}, value=0.4, status="stopped").value == 0.4
    with pytest.raises(ValueError, match="allowed: completed, failed, running, stopped"):
        Trial(params={"x": 1}, status="paused")  # type: ignore[arg-type]


def test_the_readme_gives_the_defaults_the_rules_have() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    block = readme.split("\nearly_stopping:", 1)[1].split("```", 1)[0]
    documented = {}
    for line in block.splitlines():
        key, _, rest = line.strip().partition(":")
        if "# default" in rest:
            documented[key] = int(rest.split("# default", 1)[1].split(":")[0])
        elif "# no default" in rest:
            documented[key] = None
    assert documented == {"min_steps": 1, "reduction_factor": 3, "max_steps": None,
                          "min_trials": 5}
    median, asha = MedianRule(), AshaRule()
    assert (median.min_steps, median.min_trials, median.max_steps) == (
        documented["min_steps"], documented["min_trials"], documented["max_steps"])
    assert (asha.min_steps, asha.reduction_factor, asha.max_steps) == (
        documented["min_steps"], documented["reduction_factor"], documented["max_steps"])
    hb = HyperbandRule(max_steps=27)
    assert (hb.min_steps, hb.reduction_factor) == (documented["min_steps"],
                                                   documented["reduction_factor"])
    assert make_rule({"rule": "median"}) == MedianRule()  # {rule: median} alone works
