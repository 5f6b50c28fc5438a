"""Real services for tests: a Prefect server, an MLflow tracking server, a Dask cluster.

Each one is started exactly as a user would start it (the same CLI commands the
README gives), bound to 127.0.0.1 on a free port, in its own process group, and
waited for until it answers. Teardown signals the whole group and escalates to
SIGKILL, so a failing test never leaves a server behind to collide with the next
run on this (shared, two-core) machine.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
# The CLIs of the environment running the tests (the project's .venv in CI).
BIN = Path(sys.executable).parent
STARTUP_TIMEOUT_S = 180.0


def free_port() -> int:
    """A port that is free right now on 127.0.0.1 (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_env(**extra: str | Path) -> dict[str, str]:
    """The environment for a spawned service: ours, plus the repo on PYTHONPATH.

    Dask workers and Prefect flow-run subprocesses import ``flows``/``tasks``/
    ``strategies`` and the examples, which are not installed in every environment.
    """
    env = dict(os.environ)
    path = [str(ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(path))
    env.update({k: str(v) for k, v in extra.items()})
    return env


@dataclass
class Service:
    """One spawned command in its own process group, with its output in a log file."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    cwd: Path = ROOT
    proc: subprocess.Popen[bytes] | None = None
    startup_s: float = 0.0

    def start(self, ready: Callable[[], bool], timeout_s: float = STARTUP_TIMEOUT_S) -> float:
        """Spawn the command and poll ``ready`` until it holds; return the seconds taken."""
        t0 = time.monotonic()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: killpg reaches every child
            )
        while True:
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}\n{self.tail()}")
            if ready():
                break
            if time.monotonic() - t0 > timeout_s:
                self.stop()
                raise TimeoutError(f"{self.name} not ready after {timeout_s:.0f} s\n{self.tail()}")
            time.sleep(0.2)
        self.startup_s = time.monotonic() - t0
        return self.startup_s

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM the process group, then SIGKILL whatever is left of it.

        Descendants that moved to a session of their own (Prefect starts flow-run
        processes that way) are collected first and killed too.
        """
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: the leader's pid is the group id
        strays = _descendants(pgid)
        _signal_group(pgid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=grace_s)
        # Children may outlive the leader (uvicorn under `mlflow server`, dask nannies).
        deadline = time.monotonic() + grace_s
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        _signal_group(pgid, signal.SIGKILL)
        for p in strays + _descendants(pgid):
            with suppress(psutil.Error):
                p.kill()
        if self.proc.poll() is None:
            self.proc.wait(timeout=grace_s)
        psutil.wait_procs(strays, timeout=grace_s)
        while _group_alive(pgid) and time.monotonic() < deadline + grace_s:
            time.sleep(0.05)
        self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, n: int = 40) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return ""
        return "\n".join(lines[-n:])


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return []


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def http_ok(url: str) -> Callable[[], bool]:
    """A readiness probe: GET ``url`` answers 200."""

    def probe() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return False

    return probe


# --------------------------------------------------------------------------- Prefect


# Server-side services a test never needs. Each one is a loop that competes for the
# two cores and the SQLite database; the scheduler stays on (schedules are tested) and
# looks at freshly deployed deployments every second instead of every five.
PREFECT_SERVER_FAST_ENV = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_UI_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_FOREMAN_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_CANCELLATION_CLEANUP_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_EVENT_LOGGER_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_SCHEDULER_RECENT_DEPLOYMENTS_LOOP_SECONDS": "1",
    "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5",
    "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
}


@dataclass
class PrefectServer:
    url: str
    home: Path
    service: Service

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    def client_env(self, **extra: str | Path) -> dict[str, str]:
        """Environment for a process (CLI, worker, serve) that talks to this server."""
        return child_env(
            PREFECT_HOME=self.home,
            PREFECT_API_URL=self.api_url,
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            DO_NOT_TRACK="1",
            **extra,
        )


@contextmanager
def prefect_server(workdir: Path, port: int | None = None) -> Iterator[PrefectServer]:
    """``prefect server start --host 127.0.0.1 --port P`` with its own PREFECT_HOME."""
    port = port or free_port()
    home = workdir / "prefect-home"
    home.mkdir(parents=True, exist_ok=True)
    env = child_env(PREFECT_HOME=home, DO_NOT_TRACK="1", **PREFECT_SERVER_FAST_ENV)
    env.pop("PREFECT_API_URL", None)  # the server must not try to talk to another one
    url = f"http://127.0.0.1:{port}"
    service = Service(
        "prefect server",
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env,
        workdir / "prefect-server.log",
        cwd=workdir,
    )
    service.start(http_ok(f"{url}/api/health"))
    try:
        yield PrefectServer(url, home, service)
    finally:
        service.stop()


# --------------------------------------------------------------------------- MLflow


@dataclass
class MlflowServer:
    """An ``mlflow server`` over a SQLite store that can be stopped and restarted.

    A restart reuses the port, the database and the artifact root, which is what
    a client that survives a server restart (resume) needs.
    """

    workdir: Path
    port: int = field(default_factory=free_port)
    service: Service | None = None
    starts: list[float] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def backend_uri(self) -> str:
        return f"sqlite:///{self.workdir / 'mlflow.db'}"

    def start(self) -> float:
        env = child_env(
            # The job runner (a family of huey consumers) is for GenAI jobs; it
            # doubles the start time and the process count for nothing here.
            MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
        )
        env.pop("MLFLOW_TRACKING_URI", None)
        argv = [
            str(BIN / "mlflow"), "server",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--backend-store-uri", self.backend_uri,
            "--artifacts-destination", str(self.workdir / "artifacts"),
            "--workers", "1",
        ]  # fmt: skip
        self.service = Service("mlflow server", argv, env, self.workdir / "mlflow-server.log")
        self.workdir.mkdir(parents=True, exist_ok=True)
        seconds = self.service.start(http_ok(f"{self.url}/health"))
        self.starts.append(seconds)
        return seconds

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()
            self.service = None

    def restart(self) -> float:
        self.stop()
        return self.start()


@contextmanager
def mlflow_server(workdir: Path, port: int | None = None) -> Iterator[MlflowServer]:
    server = MlflowServer(workdir, port or free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------- Dask


@dataclass
class DaskCluster:
    address: str
    scheduler: Service
    workers: list[Service]


def _dask_workers_ready(address: str, n: int) -> Callable[[], bool]:
    """Ready when the scheduler lists ``n`` workers (asked through a real Client)."""

    def probe() -> bool:
        from distributed import Client

        try:
            with Client(address, timeout=5) as client:
                return len(client.scheduler_info(n_workers=-1)["workers"]) >= n
        except OSError:
            return False

    return probe


@contextmanager
def dask_cluster(workdir: Path, n_workers: int = 2, nthreads: int = 2) -> Iterator[DaskCluster]:
    """``dask scheduler`` plus ``n_workers`` ``dask worker`` processes on 127.0.0.1.

    Every address is given, dashboards included: with ``--no-dashboard`` Dask still
    serves its HTTP health routes, on all interfaces.
    """
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = child_env()
    scheduler = Service(
        "dask scheduler",
        [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
         "--dashboard-address", f"127.0.0.1:{free_port()}"],
        env,
        workdir / "dask-scheduler.log",
        cwd=workdir,
    )  # fmt: skip
    workers: list[Service] = []
    try:
        scheduler.start(lambda: _port_open(port))
        for i in range(n_workers):
            worker = Service(
                f"dask worker {i}",
                [str(BIN / "dask"), "worker", address, "--host", "127.0.0.1",
                 "--nthreads", str(nthreads), "--dashboard-address", "127.0.0.1:0"],
                env,
                workdir / f"dask-worker-{i}.log",
                cwd=workdir,
            )  # fmt: skip
            workers.append(worker)
            # Spawn both before waiting: their imports overlap instead of adding up.
            worker.start(lambda: True)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        ready = _dask_workers_ready(address, n_workers)
        while not ready():
            dead = [w for w in workers if not w.running]
            if dead or time.monotonic() > deadline:
                logs = "\n".join(w.tail() for w in workers)
                raise RuntimeError(f"dask workers did not join {address}\n{logs}")
            time.sleep(0.3)
        yield DaskCluster(address, scheduler, workers)
    finally:
        for worker in workers:
            worker.stop()
        scheduler.stop()


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0
