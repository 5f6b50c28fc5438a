import pickle

import pytest

from amtune.tasks.runners.failures import CAUSES, TrialFailure, check_retry_on


def test_unknown_cause_is_rejected():
    with pytest.raises(ValueError, match="allowed: exception, exit_code"):
        TrialFailure("oops", "x")


def test_str_tags_and_pickle_round_trip():
    failure = TrialFailure("exit_code", "exit code 3: boom", exit_code=3, output="log")
    assert str(failure) == "exit_code: exit code 3: boom"
    assert failure.as_tags() == {
        "cause": "exit_code",
        "detail": "exit code 3: boom",
        "exit_code": "3",
    }
    back = pickle.loads(pickle.dumps(failure))
    assert (back.cause, back.detail, back.exit_code, back.output) == (
        "exit_code",
        failure.detail,
        3,
        "log",
    )


def test_long_detail_is_cut():
    assert len(TrialFailure("timeout", "x" * 5000).detail) == 1000


def test_from_exception_records_type_and_bases():
    failure = TrialFailure.from_exception(FileNotFoundError("no such file\nsecond line"))
    assert failure.cause == "exception"
    assert failure.detail == "FileNotFoundError: no such file"
    assert failure.as_tags()["exception_type"] == "FileNotFoundError"
    assert failure.matches(["FileNotFoundError"])
    assert failure.matches(["OSError"])  # a base class
    assert failure.matches(["builtins.OSError"])
    assert failure.matches(["exception:OSError"])
    assert not failure.matches(["ValueError"])


@pytest.mark.parametrize(
    ("failure", "retry_on", "expected"),
    [
        (TrialFailure("timeout", "t"), ["timeout"], True),
        (TrialFailure("timeout", "t"), ["exit_code", "signal"], False),
        (TrialFailure("timeout", "t"), [], False),
        (TrialFailure("exit_code", "e", exit_code=3), ["exit_code:3"], True),
        (TrialFailure("exit_code", "e", exit_code=3), ["exit_code: 3"], True),
        (TrialFailure("exit_code", "e", exit_code=3), ["exit_code:4"], False),
        (TrialFailure("exit_code", "e", exit_code=3), ["exit_code"], True),
        (TrialFailure("signal", "s", signal_name="SIGKILL"), ["signal:SIGKILL"], True),
        (TrialFailure("signal", "s", signal_name="SIGKILL"), ["signal:kill"], True),
        (TrialFailure("signal", "s", signal_name="SIGKILL"), ["signal:9"], True),
        (TrialFailure("signal", "s", signal_name="SIGKILL"), ["signal:SIGTERM"], False),
        (TrialFailure("exception", "e", exception_type="ValueError"), ["ValueError"], True),
        (TrialFailure("exit_code", "e", exit_code=1), ["ValueError", "exit_code:2"], False),
        (TrialFailure("invalid_metric", "nan"), ["metric_missing"], False),
    ],
)
def test_matches(failure, retry_on, expected):
    assert failure.matches(retry_on) is expected


def test_check_retry_on_accepts_every_form():
    check_retry_on(
        [
            *CAUSES,
            "exit_code:137",
            "signal:SIGKILL",
            "signal:9",
            "ValueError",
            "exception:KeyError",
            "torch.cuda.OutOfMemoryError",
        ]
    )


@pytest.mark.parametrize("item", ["timout", "exit_code:x", "signal:SIGFOO", "", "valueerror", 3])
def test_check_retry_on_rejects_typos(item):
    with pytest.raises(ValueError, match=r"trial\.retry_on\[1\]: .* allowed: a cause"):
        check_retry_on(["timeout", item])
