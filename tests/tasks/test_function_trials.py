import math
from types import SimpleNamespace

import pytest

from amtune.tasks.runners.failures import TrialFailure
from amtune.tasks.runners.objective import Outcome, run_objective
from tests.tasks import objectives


def fn(name: str, metric: str = "loss") -> SimpleNamespace:
    return SimpleNamespace(
        function=f"tests.tasks.objectives:{name}", command=None, metric=metric, metrics=[]
    )


def fail(objective, params, **kw) -> TrialFailure:
    with pytest.raises(TrialFailure) as info:
        run_objective(objective, params, **kw)
    return info.value


def test_float_result_is_the_objective_metric():
    assert run_objective(fn("quadratic"), {"x": 5.0}) == Outcome(metrics={"loss": 9.0}, output=None)


def test_dict_result_keeps_every_metric():
    out = run_objective(fn("with_metrics", "accuracy"), {"x": 1.5})
    assert out.metrics == {"loss": 3.0, "accuracy": 0.5}


def test_dotted_attribute():
    assert run_objective(fn("Trainer.fit", "s"), {"a": 1, "b": 2.5}).metrics == {"s": 3.5}


def test_report_calls_and_last_reported_values_are_final():
    calls = []
    out = run_objective(fn("with_report"), {"lr": 0.1}, report=lambda s, m: calls.append((s, m)))
    assert calls == [
        (0, {"loss": 1.0, "lr": 0.1}),
        (1, {"loss": 0.5, "lr": 0.1}),
        (2, {"loss": 1.0 / 3, "lr": 0.1}),
        (3, {"aux": 7.0}),
    ]
    assert out.metrics == {"loss": 0.25, "lr": 0.1, "aux": 7.0}  # returned value wins


def test_report_optional():
    assert run_objective(fn("with_report"), {"lr": 0.1}).metrics["loss"] == 0.25


def test_exception_cause():
    failure = fail(fn("raises"), {"x": 1})
    assert failure.cause == "exception"
    assert failure.detail == "FileNotFoundError: no data for 1"
    assert failure.matches(["OSError"]) and failure.output is None


def test_sys_exit_is_an_exception_not_the_end_of_amtune():
    failure = fail(fn("exits"), {})
    assert (failure.cause, failure.detail) == ("exception", "SystemExit: 4")


@pytest.mark.parametrize(
    ("value", "cause"),
    [
        (math.nan, "invalid_metric"),
        (math.inf, "invalid_metric"),
        ("0.5", "invalid_metric"),
        (True, "invalid_metric"),
        (None, "invalid_metric"),
        ([0.5], "invalid_metric"),
        ({"loss": math.nan}, "invalid_metric"),
        ({"loss": 1.0, "other": "x"}, "invalid_metric"),
        ({"accuracy": 0.9}, "metric_missing"),
        ({"loss": 1.0, 3: 2.0}, "invalid_metric"),
        ({"loss": 1.0, "a//b": 2.0}, "invalid_metric"),
        ({"loss": 1.0, "a\tb": 2.0}, "invalid_metric"),
    ],
)
def test_bad_results(value, cause):
    failure = fail(fn("returns"), {"value": value})
    assert failure.cause == cause, failure.detail
    assert "loss" in failure.detail or "not" in failure.detail


def test_numpy_scalar_and_int_results_are_numbers():
    import numpy as np

    assert run_objective(fn("returns"), {"value": np.float32(0.5)}).metrics == {"loss": 0.5}
    assert run_objective(fn("returns"), {"value": {"loss": 3}}).metrics == {"loss": 3.0}


def test_non_finite_auxiliary_metric_is_kept():
    out = run_objective(fn("returns"), {"value": {"loss": 1.0, "grad": math.inf}})
    assert out.metrics == {"loss": 1.0, "grad": math.inf}


def test_bad_reported_value_fails_inside_the_trial():
    failure = fail(fn("bad_report"), {})
    assert failure.cause == "exception" and failure.exception_type == "TypeError"
    assert "'loss'" in failure.detail


def test_report_callback_failure_is_a_tracking_error_even_if_swallowed():
    def broken(step, metrics):
        raise ConnectionError("tracking server gone")

    failure = fail(fn("swallows_report_errors"), {}, report=broken)
    assert failure.cause == "tracking_error"
    assert "ConnectionError: tracking server gone" in failure.detail


def test_unimportable_function_fails_as_exception():
    objective = SimpleNamespace(
        function="no_such_module_xyz:f", command=None, metric="m", metrics=[]
    )
    failure = fail(objective, {})
    assert (failure.cause, failure.exception_type) == ("exception", "ModuleNotFoundError")


def test_timeout_stops_waiting_and_drops_late_reports():
    calls = []
    objectives.released.clear()
    try:
        failure = fail(fn("blocks"), {}, report=lambda s, m: calls.append(m), timeout_s=0.2)
        assert failure.cause == "timeout" and "0.2 s" in failure.detail
    finally:
        objectives.released.set()  # let the abandoned worker thread finish
    import threading

    for t in threading.enumerate():
        if t.name == "amtune-trial":
            t.join(5)
    assert calls == []  # the late report after the timeout went nowhere


def test_timeout_not_hit():
    assert run_objective(fn("quadratic"), {"x": 2.0}, timeout_s=5).metrics == {"loss": 0.0}


def test_exception_in_worker_thread_keeps_its_cause():
    assert fail(fn("raises"), {"x": 2}, timeout_s=5).exception_type == "FileNotFoundError"
