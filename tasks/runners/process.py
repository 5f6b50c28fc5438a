"""A command trial's process group: tied to its runner's life, and ended after a crash.

A command trial leads its own session (so a timeout can kill its whole group), which
also means a runner killed with SIGKILL does not take it down: a hung or silent
trial would live on. Two measures cover that:

- On Linux the trial's leader asks the kernel for a parent-death signal before it
  execs (``prctl(PR_SET_PDEATHSIG)``), so it dies with the runner. The kernel sends
  it when the *thread* that started the child ends; ``run_command`` starts and waits
  for the child in the same thread, so that thread outlives the child unless the
  whole runner dies.
- The signal does not reach the leader's own children. The caller learns the
  trial's pid (= its process-group id), host and a random token when it starts
  (``run_command(on_start=...)``) and records them; whoever closes the trial as
  KILLED later calls :func:`end_process_group` on the same host. The token, set in
  the trial's environment, keeps that call from touching an unrelated group that
  reused the number after the old one emptied.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

TOKEN_ENV = "AMTUNE_TRIAL_TOKEN"  # set in every command trial's environment
# SIGKILL, not SIGTERM: the runner that would follow up with SIGKILL after a grace is
# gone, and a hung trial is exactly the one that may not act on SIGTERM.
PARENT_DEATH_SIGNAL = signal.SIGKILL
END_GRACE_S = 2.0  # end_process_group: SIGTERM, this long, then SIGKILL
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


@dataclass(frozen=True)
class TrialProcess:
    """What a caller records about a started command trial to end its group later."""

    pid: int
    host: str
    token: str

    @property
    def pgid(self) -> int:
        """The trial leads its own session, so its process group has its pid as id."""
        return self.pid

    @classmethod
    def here(cls, pid: int, token: str) -> TrialProcess:
        """A process started on this host."""
        return cls(pid, this_host(), token)


def this_host() -> str:
    """The host name recorded with a trial and compared by :func:`end_process_group`."""
    return socket.gethostname()


def new_token() -> str:
    return secrets.token_hex(8)


def parent_death_hook() -> Callable[[], None] | None:
    """A ``preexec_fn`` that ties the child's life to the calling thread's; None off Linux.

    Everything the child runs between fork and exec is resolved here, in the parent:
    the hook only calls one C function and compares two pids. If the runner died
    between the fork and the ``prctl`` (the signal would never come), the child kills
    itself.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # pragma: no cover (a libc without prctl)
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                      ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent, sig = os.getpid(), int(PARENT_DEATH_SIGNAL)
    getppid, kill = os.getppid, os.kill

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if getppid() != parent:
            kill(os.getpid(), sig)

    return hook


def end_process_group(pgid: int, host: str, token: str | None = None, *,
                      grace_s: float = END_GRACE_S) -> bool:
    """End what is left of a trial's process group; return whether anything was signalled.

    Only on ``host`` itself (another machine's pids mean nothing here), never this
    process's own group. With ``token`` only processes whose environment carries it
    are touched; without, every member of the group is. SIGTERM first, SIGKILL
    after ``grace_s`` for whatever is still there, new members included.
    """
    if host != this_host() or pgid <= 1 or pgid == os.getpgrp():
        return False
    members = _members(pgid, token)
    if not members:
        return False
    for proc in members:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    alive = _wait_gone(members, grace_s)
    late = {p.pid: p for p in [*alive, *_members(pgid, token)]}
    for proc in late.values():
        with contextlib.suppress(psutil.Error):
            proc.kill()
    _wait_gone(list(late.values()), grace_s)
    return True


def _alive(proc: psutil.Process) -> bool:
    """Running and not a zombie (a dead child its parent has not reaped yet)."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _wait_gone(procs: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    """Wait until none of ``procs`` is alive, at most ``timeout_s``; return those that are.

    Not ``psutil.wait_procs``: these are not our children, and a zombie whose
    parent does not reap it would look alive to it until the timeout.
    """
    end = time.monotonic() + timeout_s
    while True:
        alive = [p for p in procs if _alive(p)]
        if not alive or time.monotonic() >= end:
            return alive
        time.sleep(0.05)


def _members(pgid: int, token: str | None) -> list[psutil.Process]:
    """The live processes of group ``pgid`` (carrying ``token``, when given)."""
    found: list[psutil.Process] = []
    me = os.getpid()
    for proc in psutil.process_iter():
        try:
            if proc.pid == me or os.getpgid(proc.pid) != pgid:
                continue
            if not _alive(proc):
                continue
            if token is not None and proc.environ().get(TOKEN_ENV) != token:
                continue
        except (OSError, psutil.Error):  # gone meanwhile, or not ours to read
            continue
        found.append(proc)
    return found
