"""Command trials against real subprocesses (tiny scripts written to tmp_path)."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from amtune.tasks.runners.command import build_argv, placeholders
from amtune.tasks.runners.failures import TrialFailure
from amtune.tasks.runners.objective import run_objective

ARGV_PRINTER = "import json, os, sys; print(json.dumps(sys.argv[1:])); print('acc=0.5')"


def script(tmp_path: Path, body: str, name: str = "trial.py") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return str(path)


def cmd(argv: list[str], metric: str = "acc", **regexes: str) -> SimpleNamespace:
    regexes = regexes or {"acc": r"acc=(\S+)"}
    defs = [SimpleNamespace(name=k, regex=v) for k, v in regexes.items()]
    return SimpleNamespace(function=None, command=argv, metric=metric, metrics=defs)


def fail(objective, params, **kw) -> TrialFailure:
    with pytest.raises(TrialFailure) as info:
        run_objective(objective, params, **kw)
    return info.value


def printed_argv(outcome) -> list[str]:
    return json.loads(outcome.output.splitlines()[0])


@pytest.fixture(params=["pidfd", "polling"])
def exit_watch(request, monkeypatch):
    """Run a lifecycle test both with Linux's pidfd and with the portable polling."""
    import amtune.tasks.runners.command

    if request.param == "polling":
        monkeypatch.setattr(amtune.tasks.runners.command, "_pidfd", lambda proc: None)
    elif not hasattr(os, "pidfd_open"):
        pytest.skip("os.pidfd_open is not available on this platform")
    return request.param


# ------------------------------------------------------------------ argv and environment


def test_placeholders_substituted_inside_items():
    out = run_objective(
        cmd(["python", "-c", ARGV_PRINTER, "--lr={lr}", "{layers}", "x{lr}y{lr}"]),
        {"lr": 0.01, "layers": 3},
    )
    assert printed_argv(out) == ["--lr=0.01", "3", "x0.01y0.01"]


def test_other_braces_untouched_and_no_str_format():
    argv = build_argv(["prog", "{lr}", "{unknown}", "{}", "{{lr}}", "{lr!r}", "{0}"], {"lr": 1e-5})
    assert argv == ["prog", "1e-05", "{unknown}", "{}", "{1e-05}", "{lr!r}", "{0}"]


def test_substitution_is_single_pass():
    # A value that looks like another placeholder is not substituted again.
    argv = build_argv(["prog", "--a={a}", "--b={b}"], {"a": "{b}", "b": "B"})
    assert argv == ["prog", "--a={b}", "--b=B"]


def test_longer_names_are_not_shadowed_by_prefixes():
    assert build_argv(["p", "{lr}/{lr_decay}"], {"lr": 1, "lr_decay": 2}) == ["p", "1/2"]


def test_append_mode_without_placeholders():
    out = run_objective(
        cmd(["python", "-c", ARGV_PRINTER, "--epochs", "3"]),
        {"lr": 0.1, "kernel": "rbf", "C": 1.0, "n": 4},
    )
    assert printed_argv(out) == [
        "--epochs",
        "3",
        "--lr",
        "0.1",
        "--kernel",
        "rbf",
        "--C",
        "1.0",
        "--n",
        "4",
    ]


def test_unknown_placeholder_does_not_switch_off_append_mode():
    assert build_argv(["p", "{data}"], {"lr": 1}) == ["p", "{data}", "--lr", "1"]
    assert placeholders(["p", "--x={lr}", "{data}/{y}"]) == {"lr", "data", "y"}


def test_leading_python_is_the_running_interpreter():
    assert build_argv(["python", "t.py"], {})[0] == sys.executable
    assert build_argv(["python3", "t.py"], {})[0] == sys.executable
    assert build_argv(["/usr/bin/env", "python"], {})[:2] == ["/usr/bin/env", "python"]


def test_amtune_params_env_and_extra_env():
    body = (
        "import os; print('P=' + os.environ['AMTUNE_PARAMS']); "
        "print('E=' + os.environ['EXTRA']); print('acc=1')"
    )
    out = run_objective(
        cmd(["python", "-c", body]), {"lr": 0.5, "kind": "a b"}, env={"EXTRA": "yes"}
    )
    lines = out.output.splitlines()
    assert json.loads(lines[0][2:]) == {"lr": 0.5, "kind": "a b"}
    assert lines[1] == "E=yes"


@pytest.mark.parametrize(
    "value",
    [
        "x; rm -rf /",
        "--flag",
        "two words",
        'it\'s "quoted"',
        "$(touch pwned)",
        "`id`",
        "a\nb",
        "",
        "*",
    ],
)
@pytest.mark.parametrize("mode", ["placeholder", "append"])
def test_a_value_is_always_exactly_one_argv_item(tmp_path, monkeypatch, value, mode):
    argv = ["python", "-c", ARGV_PRINTER] + (["--v", "{v}"] if mode == "placeholder" else [])
    monkeypatch.chdir(tmp_path)  # anything a shell would create would land here
    out = run_objective(cmd(argv), {"v": value})
    assert printed_argv(out) == ["--v", value]
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ metrics


def test_every_match_is_reported_with_increasing_per_metric_steps(tmp_path):
    path = script(
        tmp_path,
        """
        import sys
        for epoch in range(1, 4):
            print(f"[Epoch {epoch}] train: loss={1 / epoch:.3f}")
            acc = 0.5 + epoch / 10
            print(f"[Epoch {epoch}] validation: accuracy={acc:.2f} loss=x", file=sys.stderr)
        print("progress 10%\\rprogress 100%\\r[Epoch 4] validation: accuracy=0.95")
        """,
    )
    calls = []
    out = run_objective(
        cmd(
            ["python", path],
            "accuracy",
            accuracy=r"validation: accuracy=([0-9.]+)",
            loss=r"train: loss=([0-9.]+)",
        ),
        {},
        report=lambda step, m: calls.append((step, m)),
    )
    acc = [(s, m["accuracy"]) for s, m in calls if "accuracy" in m]
    loss = [(s, m["loss"]) for s, m in calls if "loss" in m]
    assert acc == [(0, 0.6), (1, 0.7), (2, 0.8), (3, 0.95)]
    assert loss == [(0, 1.0), (1, 0.5), (2, 0.333)]
    assert all(len(m) == 1 for _, m in calls)
    assert out.metrics == {"accuracy": 0.95, "loss": 0.333}
    assert "[Epoch 2] validation: accuracy=0.70" in out.output  # stderr is captured too


def test_non_numeric_match_is_ignored():
    out = run_objective(cmd(["python", "-c", "print('acc=0.25'); print('acc=n/a')"]), {})
    assert out.metrics == {"acc": 0.25}


def test_metrics_are_reported_while_the_process_runs(tmp_path, exit_watch):
    flag = tmp_path / "go"
    body = f"""
        import os, time
        print("acc=0.1", flush=True)
        while not os.path.exists({str(flag)!r}):
            time.sleep(0.01)
        print("acc=0.2")
        """
    seen = []

    def report(step, metrics):
        seen.append(metrics["acc"])
        flag.touch()  # the child only goes on once the first value has arrived

    out = run_objective(cmd(["python", script(tmp_path, body)]), {}, report=report, timeout_s=20)
    assert seen == [0.1, 0.2] and out.metrics == {"acc": 0.2}


def test_output_is_bounded(tmp_path, monkeypatch):
    import amtune.tasks.runners.logparse

    monkeypatch.setattr(amtune.tasks.runners.logparse, "MAX_OUTPUT", 1000)
    out = run_objective(
        cmd(
            [
                "python",
                "-c",
                "[print(i) for i in range(3000)]; print('acc=1')",
            ]
        ),
        {},
    )
    assert out.output.startswith("[... ") and "bytes of earlier output dropped" in out.output
    assert out.output.endswith("2999\nacc=1\n")
    assert len(out.output) < 1100


# ------------------------------------------------------------------ failures


def test_exit_code(tmp_path, exit_watch):
    path = script(
        tmp_path,
        "import sys\nprint('acc=0.9')\nprint('CUDA error: boom', file=sys.stderr)\nsys.exit(3)\n",
    )
    failure = fail(cmd(["python", path]), {})
    assert (failure.cause, failure.exit_code) == ("exit_code", 3)
    assert failure.detail == "exit code 3: CUDA error: boom"
    assert failure.matches(["exit_code:3"]) and not failure.matches(["exit_code:1"])
    assert "acc=0.9" in failure.output


def test_killed_by_signal(tmp_path, exit_watch):
    path = script(
        tmp_path,
        "import os, signal\nprint('acc=0.9', flush=True)\nos.kill(os.getpid(), signal.SIGKILL)\n",
    )
    failure = fail(cmd(["python", path]), {})
    assert (failure.cause, failure.signal_name) == ("signal", "SIGKILL")
    assert "killed by SIGKILL" in failure.detail and failure.matches(["signal:SIGKILL"])
    assert failure.output == "acc=0.9\n"


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "NaN"])
def test_non_finite_objective_metric(text):
    failure = fail(cmd(["python", "-c", f"print('acc=0.3'); print('acc={text}')"]), {})
    assert failure.cause == "invalid_metric" and "'acc'" in failure.detail
    assert failure.output.endswith(f"acc={text}\n")


def test_missing_objective_metric():
    failure = fail(
        cmd(["python", "-c", "print('loss=0.3')"], "acc", acc=r"acc=(\S+)", loss=r"loss=(\S+)"), {}
    )
    assert failure.cause == "metric_missing"
    assert failure.detail == "no output line matched the regex of objective metric 'acc': loss=0.3"


def test_a_regex_with_two_groups_is_refused_before_anything_runs(tmp_path):
    """Unchecked by a spec (a direct call): the first group would give acc=0 from 0.515."""
    marker = tmp_path / "ran"
    code = f"open({str(marker)!r}, 'w').close(); print('accuracy=0.515')"
    with pytest.raises(ValueError, match=r"metric 'acc': regex .* has 2 groups, not 1"):
        run_objective(cmd(["python", "-c", code], acc=r"accuracy=([0-9])\.([0-9]+)"), {})
    assert not marker.exists()


def test_no_output_at_all():
    failure = fail(cmd(["python", "-c", "pass"]), {})
    assert failure.cause == "metric_missing" and failure.detail.endswith("(no output)")
    assert failure.output == ""


def test_program_that_cannot_start(tmp_path):
    failure = fail(cmd([str(tmp_path / "missing-program")]), {})
    assert (failure.cause, failure.exception_type) == ("exception", "FileNotFoundError")


def test_report_failure_is_a_tracking_error_and_stops_the_child(tmp_path):
    pidfile = tmp_path / "pid"
    body = f"""
        import os, time
        open({str(pidfile)!r}, "w").write(str(os.getpid()))
        print("acc=1", flush=True)
        time.sleep(60)
        """

    def broken(step, metrics):
        raise ConnectionError("tracking server gone")

    failure = fail(cmd(["python", script(tmp_path, body)]), {}, report=broken, timeout_s=30)
    assert failure.cause == "tracking_error" and "ConnectionError" in failure.detail
    assert failure.output == "acc=1\n"
    assert_dead(int(pidfile.read_text()))


def is_dead(pid: int) -> bool:
    """Gone, or a zombie left for init to reap (it no longer runs)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "State:\tZ" in status


def assert_dead(pid: int) -> None:
    for _ in range(500):  # the signal is delivered asynchronously; allow it to land
        if is_dead(pid):
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} still running")


def test_timeout_kills_the_whole_process_group(tmp_path, exit_watch):
    pids = tmp_path / "pids"
    body = f"""
        import subprocess, sys, os, time
        child = subprocess.Popen(["sleep", "60"])
        open({str(pids)!r}, "w").write(f"{{os.getpid()}} {{child.pid}}")
        print("acc=0.5", flush=True)
        time.sleep(60)
        """
    # 2 s: long enough for the child to start its grandchild even on a loaded machine.
    failure = fail(cmd(["python", script(tmp_path, body)]), {}, timeout_s=2.0)
    assert failure.cause == "timeout" and failure.detail == "killed after 2 s: acc=0.5"
    assert failure.output == "acc=0.5\n"
    for pid in map(int, pids.read_text().split()):
        assert_dead(pid)


def test_timeout_escalates_to_sigkill_when_sigterm_is_ignored(tmp_path, monkeypatch):
    import amtune.tasks.runners.command

    monkeypatch.setattr(amtune.tasks.runners.command, "KILL_GRACE_S", 0.3)
    pids = tmp_path / "pids"
    body = f"""
        import os, signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        open({str(pids)!r}, "w").write(str(os.getpid()))
        print("ignoring SIGTERM", flush=True)
        while True:
            time.sleep(0.05)
        """
    failure = fail(cmd(["python", script(tmp_path, body)]), {}, timeout_s=2.0)
    assert failure.cause == "timeout"
    assert failure.output == "ignoring SIGTERM\n"  # SIGTERM came after the handler was set
    assert_dead(int(pids.read_text()))


def test_leftover_background_process_is_killed_when_the_trial_ends(tmp_path, exit_watch):
    pids = tmp_path / "pids"
    # The grandchild keeps the output pipe open; the trial must still end with its parent.
    body = f"""
        import subprocess
        child = subprocess.Popen(["sleep", "60"])
        open({str(pids)!r}, "w").write(str(child.pid))
        print("acc=0.75")
        """
    out = run_objective(cmd(["python", script(tmp_path, body)]), {}, timeout_s=30)
    assert out.metrics == {"acc": 0.75}
    assert_dead(int(pids.read_text()))


def test_child_that_closes_its_output_is_still_waited_for(tmp_path, exit_watch):
    body = """
        import os, sys, time
        print("acc=0.5", flush=True)
        os.close(1); os.close(2)
        time.sleep(0.3)
        sys.exit(5)
        """
    failure = fail(cmd(["python", script(tmp_path, body)]), {}, timeout_s=30)
    assert (failure.cause, failure.exit_code) == ("exit_code", 5)


def test_undecodable_bytes_and_huge_lines_do_not_break_parsing(monkeypatch):
    import amtune.tasks.runners.logparse

    monkeypatch.setattr(amtune.tasks.runners.logparse, "MAX_LINE", 1000)
    body = (
        "import sys; w = sys.stdout.buffer.write; w(b'\\xff\\xfe garbage\\n'); "
        "w(b'x' * 5000); w(b'\\nacc=0.5\\n')"
    )
    out = run_objective(cmd(["python", "-c", body]), {})
    assert out.metrics == {"acc": 0.5}
    assert out.output.startswith("\ufffd\ufffd garbage\n")
