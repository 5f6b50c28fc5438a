"""Real services for tests: a Prefect server, an MLflow tracking server, a Dask cluster.

Each one is started exactly as a user would start it (the same CLI commands the
README gives), bound to 127.0.0.1 on a free port, in its own process group, and
waited for until it answers. Teardown signals the whole group and escalates to
SIGKILL, so a failing test never leaves a server behind to collide with the next
run on this (shared, two-core) machine.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
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
            if (code := self.proc.poll()) is not None:
                self.stop()  # clears self.proc: the exit code is read first
                raise RuntimeError(f"{self.name} exited with {code}\n{self.tail()}")
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


# --------------------------------------------------------------------------- PostgreSQL


def postgres_bindir() -> Path | None:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``, or None.

    Debian keeps them in ``/usr/lib/postgresql/<major>/bin``, off PATH (its wrappers
    in /usr/bin manage system clusters, not a throwaway one), so that is searched too,
    newest major first.
    """
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    debian = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
    debian.sort(key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else -1)
    return debian[-1] if debian else None


@dataclass
class PostgresServer:
    """A throwaway PostgreSQL cluster on 127.0.0.1, with one password-protected database.

    ``root`` holds the data directory and the unix socket. PostgreSQL refuses to run
    as root, so when the tests run as root (CI does) every server command runs as the
    ``postgres`` user that Debian's package creates, and ``root`` belongs to it. TCP
    logins need the password (scram-sha-256), so the URI's credentials are checked.
    """

    root: Path
    bindir: Path
    log_path: Path
    port: int = field(default_factory=free_port)
    user: str = "mlflow"
    password: str = field(default_factory=lambda: secrets.token_hex(12))
    database: str = "mlflow"
    service: Service | None = None
    startup_s: float = 0.0

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def uri(self) -> str:
        """The SQLAlchemy URI ``mlflow server --backend-store-uri`` takes.

        The driver is named: SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3,
        and the test extra installs psycopg2 (``psycopg2-binary``).
        """
        return f"postgresql+psycopg2://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"

    def as_owner(self, *argv: str | Path) -> list[str]:
        cmd = [str(a) for a in argv]
        return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd

    def _run(self, *argv: str | Path) -> None:
        done = subprocess.run(self.as_owner(*argv), cwd=self.root, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} exited {done.returncode}\n{done.stdout}{done.stderr}")

    def _ready(self) -> bool:
        argv = [self.bindir / "pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.port)]
        return subprocess.run([str(a) for a in argv], timeout=30).returncode == 0

    def start(self) -> float:
        if not self.data.exists():
            self._run(self.bindir / "initdb", "-D", self.data, "-U", "postgres", "-E", "UTF8",
                      "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync")
        # fsync off: the tests never crash PostgreSQL itself, and commits are the cost here.
        argv = self.as_owner(self.bindir / "postgres", "-D", self.data, "-p", str(self.port),
                             "-k", self.root, "-c", "listen_addresses=127.0.0.1",
                             "-c", "fsync=off", "-c", "synchronous_commit=off")
        self.service = Service("postgres", argv, child_env(), self.log_path, cwd=self.root)
        self.startup_s = self.service.start(self._ready)
        return self.startup_s

    def create_database(self) -> None:
        """The login role and its database: the README's ``psql`` line, over the unix socket.

        Each ``-c`` runs on its own (CREATE DATABASE cannot run inside a transaction).
        """
        self._run(self.bindir / "psql", "-h", self.root, "-p", str(self.port), "-U", "postgres",
                  "-v", "ON_ERROR_STOP=1",
                  "-c", f"CREATE ROLE {self.user} LOGIN PASSWORD '{self.password}'",
                  "-c", f"CREATE DATABASE {self.database} OWNER {self.user}")

    def stop(self) -> None:
        """A fast shutdown (sessions are ended, nothing is left to recover), then the group."""
        if self.service is None:
            return
        if self.service.running:
            with suppress(RuntimeError, subprocess.TimeoutExpired):
                self._run(self.bindir / "pg_ctl", "stop", "-D", self.data, "-m", "fast", "-w")
        self.service.stop()
        self.service = None


@contextmanager
def postgres_server(logdir: Path, bindir: Path) -> Iterator[PostgresServer]:
    """``initdb`` + ``postgres`` in a fresh directory; the directory is removed afterwards.

    The directory is a short one under the system temp dir, not pytest's: a unix
    socket path must fit in 107 bytes, and pytest's directories are private to the
    user running the tests, which the ``postgres`` user cannot enter.
    """
    root = Path(tempfile.mkdtemp(prefix="amtune-pg-"))
    try:
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(root, pw.pw_uid, pw.pw_gid)
        server = PostgresServer(root, bindir, logdir / "postgres.log")
        server.start()
        try:
            server.create_database()
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class MlflowOnPostgres(MlflowServer):
    """An ``mlflow server`` whose backend store is a PostgreSQL database."""

    store_uri: str = ""

    @property
    def backend_uri(self) -> str:
        return self.store_uri
