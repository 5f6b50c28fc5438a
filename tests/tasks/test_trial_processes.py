"""A command trial does not outlive a runner killed with SIGKILL (real processes throughout).

The trial's leader dies with its runner (Linux's parent-death signal); what the leader
started is ended by ``end_process_group`` from the pid, host and token the runner
was told at the start, as a resumed study does for a trial it closes as KILLED.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from amtune.tasks.runners.failures import TrialFailure
from amtune.tasks.runners.objective import run_objective
from amtune.tasks.runners.process import (
    TOKEN_ENV,
    TrialProcess,
    end_process_group,
    new_token,
    this_host,
)

ROOT = Path(__file__).resolve().parents[2]
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the parent-death signal is Linux's")
# A silent trial that hangs, with a grandchild that hangs too.
HUNG = ["sh", "-c", "sleep 3600 & exec sleep 3600"]


def cmd(argv: list[str]) -> SimpleNamespace:
    return SimpleNamespace(function=None, command=argv, metric="acc",
                           metrics=[SimpleNamespace(name="acc", regex=r"acc=(\S+)")])


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def group(pgid: int) -> list[int]:
    """The live members of a process group."""
    out = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and alive(proc.pid):
                out.append(proc.pid)
        except (OSError, psutil.Error):
            continue
    return out


def until(condition, what: str) -> None:
    """Wait for something that happens asynchronously (a signal landing, a process starting)."""
    for _ in range(3000):
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


def start_group(argv: list[str], token: str) -> int:
    proc = subprocess.Popen(argv, start_new_session=True, env={**os.environ, TOKEN_ENV: token},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    until(lambda: len(group(proc.pid)) == 2, "both processes of the group run")
    return proc.pid


# The runner: a trial started from a worker thread, either of a plain thread pool or of
# Prefect's task runner in a real flow, while another thread comes and goes; it says
# what it was told at the start, then waits for the trial.
RUNNER = textwrap.dedent("""
    import json, sys, threading
    from concurrent.futures import ThreadPoolExecutor
    from types import SimpleNamespace
    from amtune.tasks.runners.objective import run_objective

    mode, out, sibling_done = sys.argv[1], sys.argv[2], sys.argv[3]
    objective = SimpleNamespace(function=None, command=json.loads(sys.argv[4]), metric="acc",
                                metrics=[SimpleNamespace(name="acc", regex="acc=(\\\\S+)")])

    def told(p):
        with open(out, "w") as f:
            json.dump({"pid": p.pid, "host": p.host, "token": p.token}, f)

    def sibling():
        open(sibling_done, "w").close()

    def trial():
        t = threading.Thread(target=sibling)
        t.start()
        t.join()
        return run_objective(objective, {}, on_start=told)

    if mode == "threads":
        with ThreadPoolExecutor(2) as pool:
            pool.submit(trial).result()
    else:
        from prefect import flow, task
        from prefect.task_runners import ThreadPoolTaskRunner

        @flow(task_runner=ThreadPoolTaskRunner(max_workers=2))
        def runner():
            task(trial).submit().result()

        runner()
""")


@linux_only
@pytest.mark.parametrize("mode", ["threads", "prefect"])
def test_a_runner_killed_with_sigkill_leaves_no_trial_process(
        mode: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    env = dict(os.environ)
    if mode == "prefect":
        env["PREFECT_API_URL"] = request.getfixturevalue("prefect_api")
    told, sibling = tmp_path / "told.json", tmp_path / "sibling"
    runner = subprocess.Popen([sys.executable, "-c", RUNNER, mode, str(told), str(sibling),
                               json.dumps(HUNG)], cwd=ROOT, env=env)
    try:
        until(lambda: told.exists() and told.stat().st_size > 0 and sibling.exists(),
              "the trial started")
        info = TrialProcess(**json.loads(told.read_text()))
        until(lambda: len(group(info.pgid)) == 2, "the trial and its grandchild run")
        (grandchild,) = set(group(info.pgid)) - {info.pid}
        assert info.host == this_host()
        assert alive(info.pid)  # a thread of the runner ending did not end the trial
        runner.send_signal(signal.SIGKILL)
        runner.wait()
        until(lambda: not alive(info.pid), "the trial's leader died with its runner")
        assert alive(grandchild)  # out of reach of the signal: what resuming is for
        assert end_process_group(info.pgid, info.host, info.token, grace_s=5.0)
        assert not alive(grandchild) and group(info.pgid) == []
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
        if told.exists() and told.stat().st_size > 0:
            end_process_group(json.loads(told.read_text())["pid"], this_host())


def test_end_process_group_ends_a_live_group_sigterm_ignored_too(tmp_path: Path) -> None:
    token = new_token()
    stubborn = ("import signal, subprocess, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
                " subprocess.Popen(['sleep', '3600']); time.sleep(3600)")
    pgid = start_group([sys.executable, "-c", stubborn], token)
    assert end_process_group(pgid, this_host(), token, grace_s=0.3)
    assert group(pgid) == []
    assert not end_process_group(pgid, this_host(), token)  # nothing left to end


def test_end_process_group_leaves_other_hosts_and_other_tokens_alone() -> None:
    token = new_token()
    pgid = start_group(HUNG, token)
    try:
        assert not end_process_group(pgid, f"not-{this_host()}", token)
        assert not end_process_group(pgid, this_host(), new_token())  # a reused number
        assert not end_process_group(os.getpgrp(), this_host())  # never our own group
        assert len(group(pgid)) == 2
    finally:
        assert end_process_group(pgid, this_host(), token)
    assert group(pgid) == []


def test_on_start_is_told_the_trial_process() -> None:
    seen: list[TrialProcess] = []
    code = ("import os, sys; print('pid', os.getpid(), os.getpgrp()); "
            f"print('token', os.environ[{TOKEN_ENV!r}]); print('acc=0.5')")
    out = run_objective(cmd([sys.executable, "-c", code]), {}, on_start=seen.append)
    (info,) = seen
    assert out.output is not None
    lines = dict(line.split(" ", 1) for line in out.output.splitlines()[:2])
    assert lines["pid"] == f"{info.pid} {info.pgid}"
    assert lines["token"] == info.token and info.host == this_host()


def test_a_failing_on_start_stops_the_trial(tmp_path: Path) -> None:
    seen: list[TrialProcess] = []

    def broken(p: TrialProcess) -> None:
        seen.append(p)
        raise ConnectionError("store unreachable")

    with pytest.raises(TrialFailure) as info:
        run_objective(cmd(HUNG), {}, on_start=broken)
    assert info.value.cause == "tracking_error"
    assert "ConnectionError: store unreachable" in info.value.detail
    until(lambda: group(seen[0].pgid) == [], "the trial's group ended")
