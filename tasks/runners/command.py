"""Command trials, SageMaker style: run a program, read its metrics from its output.

Safety rules this module keeps: the program is started from an argv list, never a
shell, and every parameter value becomes exactly one argv item whatever characters
it holds. The child gets its own session so a timeout can kill the whole process
group, grandchildren included, and nothing is left running when a trial ends (an
early stop ends the group the same way, at the step the rule decided). A
runner that dies takes the trial's leader with it, and tells its caller enough to
end the rest of the group later (see process.py).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from amtune.tasks.runners.failures import TrialFailure
from amtune.tasks.runners.logparse import MetricParser, OutputBuffer
from amtune.tasks.runners.outcome import Outcome, Report
from amtune.tasks.runners.process import TOKEN_ENV, TrialProcess, new_token, parent_death_hook

KILL_GRACE_S = 2.0  # SIGTERM first; SIGKILL whatever still runs after this
DRAIN_S = 1.0  # after the child is gone, read what is left in the pipe for this long
_POLL_S = 0.02  # without a pidfd: how often a blocked read checks whether the child exited
_SAFETY_S = 1.0  # with a pidfd: re-check anyway now and then
# What looks like a placeholder to the spec check: an identifier-like name in braces
# (so JSON or other brace syntax inside an argument is not mistaken for one).
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][\w.-]*)\}")
_PYTHON = ("python", "python3")


def resolve_program(program: str) -> str:
    """A leading ``python`` / ``python3`` means the interpreter running amtune.

    That makes ``command: [python, train.py]`` use the same virtualenv as amtune,
    whether or not a ``python`` is on PATH. Any other program is left as given.
    """
    return sys.executable if program in _PYTHON and sys.executable else program


def placeholders(command: list[str]) -> set[str]:
    """Identifier-like ``{name}`` placeholders, for checking them against the space.

    Substitution itself only replaces ``{name}`` for the actual parameter names.
    """
    return {m.group(1) for item in command for m in _PLACEHOLDER.finditer(item)}


def build_argv(command: list[str], params: Mapping[str, Any]) -> list[str]:
    """Substitute ``{name}`` placeholders, or append ``--name value`` when there are none.

    Substitution is a single pass of plain string replacement (not ``str.format``):
    other braces stay untouched and a value that itself contains ``{x}`` is not
    substituted again. Appended values are separate argv items, never split.
    """
    argv = [resolve_program(command[0]), *command[1:]]
    if not params:
        return argv
    names = sorted(params, key=len, reverse=True)
    pattern = re.compile("|".join(re.escape("{" + name + "}") for name in names))
    if not any(pattern.search(item) for item in argv):
        for name, value in params.items():
            argv += [f"--{name}", str(value)]
        return argv
    return [pattern.sub(lambda m: str(params[m.group(0)[1:-1]]), item) for item in argv]


def params_json(params: Mapping[str, Any]) -> str:
    """Params as JSON for ``AMTUNE_PARAMS``; numpy scalars become plain numbers."""
    return json.dumps(dict(params), default=lambda o: o.item() if hasattr(o, "item") else str(o))


def run_command(
    command: list[str],
    params: Mapping[str, Any],
    *,
    metric: str,
    metrics: Mapping[str, str],
    report: Report | None = None,
    timeout_s: float | None = None,
    env: Mapping[str, str] | None = None,
    on_start: Callable[[TrialProcess], None] | None = None,
    stop: Callable[[], int | None] | None = None,
) -> Outcome:
    """Run one command trial; raise ``TrialFailure`` (with ``output``) if it fails.

    stdout and stderr are merged and read while the process runs, so intermediate
    metrics are reported as they appear (``PYTHONUNBUFFERED=1`` is set unless
    ``env`` says otherwise, so Python children do not hold lines back). ``env`` is
    merged over ``os.environ``; ``AMTUNE_PARAMS`` always holds the params as JSON.
    ``on_start`` is called once the child runs, with what ``end_process_group``
    needs should this runner die; if it raises, the trial is stopped and fails
    with cause ``tracking_error``.

    ``stop`` is asked after each chunk of output has been parsed (and reported): a
    step (not None) means the early-stopping rule stopped the trial there. Its group
    then gets SIGTERM and SIGKILL after ``KILL_GRACE_S`` (the timeout's path), and
    the outcome carries ``stopped_at`` whatever the exit status (the last values
    reported before the stop are the caller's to take, see ``tasks/stopping.py``).
    """
    if not command:
        raise ValueError("objective.command: [] is empty (see check_objective)")
    argv = build_argv(command, params)
    child_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    child_env["AMTUNE_PARAMS"] = params_json(params)
    child_env[TOKEN_ENV] = token = new_token()
    out = OutputBuffer()
    parser = MetricParser(metrics, report)
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=child_env,
            start_new_session=True,
            preexec_fn=parent_death_hook(),
        )
    except OSError as exc:
        raise TrialFailure.from_exception(exc) from exc
    try:
        if on_start is not None:
            _started(on_start, TrialProcess.here(proc.pid, token))
        ended = _pump(proc, out, parser, timeout_s, stop)
    except BaseException as exc:  # a reporting failure or an interrupt: leave nothing behind
        _stop(proc)
        if isinstance(exc, TrialFailure):
            exc.output = out.text()
        raise
    finally:
        if proc.stdout is not None:
            proc.stdout.close()
    for line in out.flush():
        try:
            parser.feed(line)
        except TrialFailure as exc:
            exc.output = out.text()
            raise
    output = out.text()
    rc = proc.returncode
    stopped_at = None if stop is None else stop()
    if stopped_at is not None:  # also decided on the last lines, read once it had exited
        return Outcome(metrics=dict(parser.final), output=output, stopped_at=stopped_at)
    if ended == "timeout":
        raise TrialFailure(
            "timeout", f"killed after {timeout_s:g} s: {out.last_line()}", output=output
        )
    if rc is not None and rc < 0:
        name = _signal_name(-rc)
        hint = " (out of memory?)" if -rc == signal.SIGKILL else ""
        raise TrialFailure(
            "signal",
            f"killed by {name}{hint}: {out.last_line()}",
            signal_name=name,
            output=output,
        )
    if rc != 0:
        raise TrialFailure(
            "exit_code", f"exit code {rc}: {out.last_line()}", exit_code=rc, output=output
        )
    if metric not in parser.final:
        raise TrialFailure(
            "metric_missing",
            f"no output line matched the regex of objective metric {metric!r}: {out.last_line()}",
            output=output,
        )
    if not math.isfinite(parser.final[metric]):
        raise TrialFailure(
            "invalid_metric",
            f"objective metric {metric!r} is {parser.final[metric]}",
            output=output,
        )
    return Outcome(metrics=dict(parser.final), output=output)


def _started(on_start: Callable[[TrialProcess], None], process: TrialProcess) -> None:
    try:
        on_start(process)
    except Exception as exc:
        raise TrialFailure(
            "tracking_error", f"recording the trial's process failed: {type(exc).__name__}: {exc}"
        ) from exc


def _pump(
    proc: subprocess.Popen[bytes], out: OutputBuffer, parser: MetricParser,
    timeout_s: float | None, stop: Callable[[], int | None] | None = None,
) -> str | None:
    """Read output until the child exits (or the timeout, or a stop); say which ended it.

    Returns ``"timeout"``, ``"stopped"`` (``stop`` gave a step) or None (it exited).

    The end is the child's exit, not EOF: a backgrounded grandchild may hold the
    pipe open forever, and a child may close its output and keep running. Exit is
    detected without reaping (``WNOWAIT``) so the process-group id stays reserved
    until the group has been killed. Whatever is left of the group when the child
    exits is killed too: a finished trial leaves nothing running. On Linux a pidfd
    wakes the loop the moment the child exits; elsewhere it polls.
    """
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    exit_fd = _pidfd(proc)
    cap = _SAFETY_S if exit_fd is not None else _POLL_S
    reading = False
    ended: str | None = None
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            reading = True
            if exit_fd is not None:
                sel.register(exit_fd, selectors.EVENT_READ)
            while not _exited(proc):
                wait = cap
                if deadline is not None:
                    wait = min(wait, deadline - time.monotonic())
                    if wait <= 0:
                        ended = "timeout"
                        break
                for key, _ in sel.select(wait):
                    if key.fd != fd:
                        continue  # the pidfd: the loop condition sees the exit
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        sel.unregister(fd)
                        reading = False
                    for line in out.add(chunk):
                        parser.feed(line)
                if stop is not None and stop() is not None:
                    ended = "stopped"
                    break
    finally:
        if exit_fd is not None:
            os.close(exit_fd)
    if ended is not None:
        _stop(proc)
    else:
        _kill_group(proc, signal.SIGKILL)
        proc.wait()
    if reading:
        _drain(fd, out, parser)  # the pipe still holds the child's last lines
    return ended


def _drain(fd: int, out: OutputBuffer, parser: MetricParser) -> None:
    """Read what the pipe still holds, bounded in time (an escaped process may keep it open)."""
    end = time.monotonic() + DRAIN_S
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while (left := end - time.monotonic()) > 0:
            if not sel.select(left):
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                return
            for line in out.add(chunk):
                parser.feed(line)


def _pidfd(proc: subprocess.Popen[bytes]) -> int | None:
    """A file descriptor that becomes readable when the child exits (Linux >= 5.3)."""
    try:
        return os.pidfd_open(proc.pid) if hasattr(os, "pidfd_open") else None
    except OSError:
        return None


def _exited(proc: subprocess.Popen[bytes]) -> bool:
    if proc.returncode is not None:
        return True
    if hasattr(os, "waitid"):
        try:
            info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return proc.poll() is not None
        return info is not None
    return proc.poll() is not None  # pragma: no cover (platforms without waitid)


def _kill_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the whole group, then SIGKILL it once the leader is gone or after the grace.

    Grandchildren get as long as the leader to clean up: a zombie leader still
    counts as a group member, so the group's emptiness cannot be watched cheaply.
    """
    _kill_group(proc, signal.SIGTERM)
    end = time.monotonic() + KILL_GRACE_S
    while not _exited(proc) and time.monotonic() < end:
        time.sleep(0.02)
    _kill_group(proc, signal.SIGKILL)  # the leader, or grandchildren that ignored SIGTERM
    proc.wait()


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
