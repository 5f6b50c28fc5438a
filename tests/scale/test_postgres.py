"""The production store: studies on an ``mlflow server`` backed by PostgreSQL.

The README's two PostgreSQL commands (a role and a database, then the server), run
for real against a throwaway cluster (see ``postgres_srv``), with studies run
through the CLI a user runs. The server is killed with SIGKILL (a crash, not a
clean stop) while trials are in flight, and started again on the same port and
database, in two ways:

- while the study runs: the study rides the outage out (``outage_timeout_s``) and
  ends on its own;
- after the study itself was killed: the same command resumes it.

Either way nothing may be lost or doubled: exactly ``max_trials`` finished trials
numbered 0..N-1 once each, each with its params and the objective metric that
those params give, no run left RUNNING, and one finished parent run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow import MlflowClient
from mlflow.entities import Run

from tests.scale.objectives import quad, spec
from tests.servers import MlflowServer, PostgresServer, child_env

TRIALS = 12
PARALLEL = 3
DEADLINE_S = 240.0
GATE_ENV = "AMTUNE_TEST_GATE"


def gated_quad(params: dict[str, Any]) -> dict[str, float]:
    """``quad`` behind a gate: the first PARALLEL trials run, later ones wait for ``release``.

    The test crashes things while a later trial is held here, so the crash lands with
    trials in flight, never between rounds, without guessing at timings. Each trial
    takes a numbered ticket (an exclusive file create, atomic across threads and
    processes) on entry, and writes its params in it.
    """
    gate = Path(os.environ[GATE_ENV])
    ticket = 0
    while True:
        try:
            fd = os.open(gate / f"ticket-{ticket}", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            ticket += 1
    with os.fdopen(fd, "w") as f:  # which trial holds it, for the test to find its run
        json.dump(params, f)
    deadline = time.monotonic() + DEADLINE_S  # never hang a run that lost its test
    while ticket >= PARALLEL and not (gate / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    return quad(params)


def _runs(client: MlflowClient, name: str) -> list[Run]:
    exp = client.get_experiment_by_name(name)
    return [] if exp is None else list(client.search_runs([exp.experiment_id], max_results=1000))


def _trials(runs: list[Run]) -> list[Run]:
    return [r for r in runs if r.data.tags.get("amtune.role") != "study"]


def _start_study(name: str, server: MlflowServer, prefect_api: str,
                 tmp_path: Path) -> tuple[list[str], dict[str, str], Path]:
    """The spec file, the CLI command and environment that run it, and the trials' gate."""
    data = spec(name, server.url, budget={"max_trials": TRIALS, "max_parallel": PARALLEL},
                tracking={"uri": server.url, "outage_timeout_s": 180})
    data["objective"]["function"] = f"{__name__}:gated_quad"
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    gate = tmp_path / "gate"
    gate.mkdir()
    return ([sys.executable, "-m", "amtune.flows.cli", "run", str(path)],
            child_env(PREFECT_API_URL=prefect_api, **{GATE_ENV: gate}), gate)


def _wait_mid_round(proc: subprocess.Popen[str], client: MlflowClient, name: str,
                    gate: Path) -> int:
    """Block until a round has finished and a later trial is RUNNING, held at the gate.

    Returns the finished count.
    """
    deadline = time.monotonic() + DEADLINE_S
    while True:
        if (gate / f"ticket-{PARALLEL}").exists():
            status = [r.info.status for r in _trials(_runs(client, name))]
            if status.count("FINISHED") >= PARALLEL and "RUNNING" in status:
                return status.count("FINISHED")
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the study ended before it was interrupted ({proc.returncode})"
                        f"\n{out}\n{err}")
        assert time.monotonic() < deadline, "no trial reached the gate after a finished round"
        time.sleep(0.2)


def _held(gate: Path) -> list[dict[str, float]]:
    """The params of the trials waiting at the gate (a ticket cut short is skipped)."""
    tickets = [t for t in gate.glob("ticket-*") if int(t.name.split("-")[1]) >= PARALLEL]
    texts = [t.read_text() for t in tickets]
    return [json.loads(text) for text in texts if text.endswith("}")]


def _crash(server: MlflowServer) -> None:
    """SIGKILL the server's whole process group, as a crashed machine would."""
    assert server.service is not None and server.service.proc is not None
    os.killpg(server.service.proc.pid, signal.SIGKILL)
    server.stop()  # reaps it and any stray worker


def _statuses_in_postgres(db: PostgresServer, name: str) -> dict[str, int]:
    """Statuses of the active runs read from the database itself: the runs really live
    in PostgreSQL."""
    import psycopg2

    with psycopg2.connect(host="127.0.0.1", port=db.port, user=db.user, password=db.password,
                          dbname=db.database) as conn, conn.cursor() as cur:
        cur.execute("SELECT r.status, count(*) FROM runs r JOIN experiments e"
                    " ON r.experiment_id = e.experiment_id WHERE e.name = %s"
                    " AND r.lifecycle_stage = 'active' GROUP BY r.status", (name,))
        rows: list[tuple[str, int]] = cur.fetchall()
    conn.close()  # the with block ends the transaction, not the connection
    return dict(rows)


def _twins_in_postgres(db: PostgresServer, name: str) -> list[str]:
    """The trial numbers of deleted runs: twins a retried ``create_run`` made, which the
    store deletes (MLflow deletes softly: the row stays, RUNNING)."""
    import psycopg2

    with psycopg2.connect(host="127.0.0.1", port=db.port, user=db.user, password=db.password,
                          dbname=db.database) as conn, conn.cursor() as cur:
        cur.execute("SELECT t.value FROM runs r JOIN experiments e"
                    " ON r.experiment_id = e.experiment_id JOIN tags t"
                    " ON t.run_uuid = r.run_uuid AND t.key = 'amtune.trial'"
                    " WHERE e.name = %s AND r.lifecycle_stage = 'deleted'", (name,))
        rows: list[tuple[str]] = cur.fetchall()
    conn.close()
    return [v for (v,) in rows]


def _assert_complete(client: MlflowClient, name: str) -> list[Run]:
    runs = _runs(client, name)
    assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    finished = [r for r in _trials(runs) if r.info.status == "FINISHED"]
    numbers = sorted(int(r.data.tags["amtune.trial"]) for r in finished)
    assert numbers == list(range(TRIALS)), numbers  # none missing, none doubled
    for run in finished:
        params = {k: float(v) for k, v in run.data.params.items()}
        assert set(params) == {"x", "y"}, (run.info.run_name, run.data.params)
        # the metric is the one these params give: params and metrics were not mixed up
        assert run.data.metrics["loss"] == pytest.approx(quad(params)["loss"], rel=1e-9)
    study = [r for r in runs if r.data.tags.get("amtune.role") == "study"]
    assert [s.info.status for s in study] == ["FINISHED"]
    assert study[0].data.tags.get("amtune.trials") == str(TRIALS)
    return finished


def test_study_rides_out_a_postgres_backed_server_crash(
        mlflow_pg_srv: MlflowServer, postgres_srv: PostgresServer, prefect_api: str,
        tmp_path: Path) -> None:  # PostgreSQL first: a skip costs no Prefect start-up
    name = "pg-server-crash"
    argv, env, gate = _start_study(name, mlflow_pg_srv, prefect_api, tmp_path)
    client = MlflowClient(mlflow_pg_srv.url)
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, start_new_session=True, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        n = _wait_mid_round(proc, client, name, gate)
        _crash(mlflow_pg_srv)
        (gate / "release").touch()  # the held trials end while the server is down
        seconds = mlflow_pg_srv.start()
        print(f"\nserver crashed with {n} trials finished, back in {seconds:.1f} s")
        assert proc.poll() is None, "the study gave up during the outage"
        out, err = proc.communicate(timeout=DEADLINE_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert proc.returncode == 0, err
    assert f"{TRIALS} trials (0 failed)" in out
    finished = _assert_complete(MlflowClient(mlflow_pg_srv.url), name)
    in_db = _statuses_in_postgres(postgres_srv, name)
    # the trials and the parent, and nothing else: no retried write left a run behind
    assert in_db == {"FINISHED": len(finished) + 1}, in_db
    # A create retried across the crash may have made a twin: deleted, and only ever a
    # twin of a trial that finished.
    twins = _twins_in_postgres(postgres_srv, name)
    assert set(twins) <= {r.data.tags["amtune.trial"] for r in finished}, twins


def test_killed_study_resumes_on_a_restarted_postgres_backed_server(
        mlflow_pg_srv: MlflowServer, postgres_srv: PostgresServer, prefect_api: str,
        tmp_path: Path) -> None:  # PostgreSQL first: a skip costs no Prefect start-up
    name = "pg-resume"
    argv, env, gate = _start_study(name, mlflow_pg_srv, prefect_api, tmp_path)
    client = MlflowClient(mlflow_pg_srv.url)
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, start_new_session=True, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_mid_round(proc, client, name, gate)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the study crashes first...
            proc.wait(timeout=30)
    before = _trials(_runs(client, name))
    kept = {r.info.run_id for r in before if r.info.status == "FINISHED"}
    stale = {r.info.run_id for r in before if r.info.status == "RUNNING"}
    held = _held(gate)
    assert PARALLEL <= len(kept) < TRIALS and stale and held
    print(f"\nstudy killed with {len(kept)} trials finished, {len(stale)} running,"
          f" {len(held)} of them held at the gate")
    _crash(mlflow_pg_srv)  # ...then the tracking server
    mlflow_pg_srv.start()
    (gate / "release").touch()  # the resumed study runs freely

    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=DEADLINE_S)
    assert done.returncode == 0, done.stderr
    assert f"{TRIALS} trials (0 failed)" in done.stdout
    client = MlflowClient(mlflow_pg_srv.url)
    finished = _assert_complete(client, name)
    assert kept <= {r.info.run_id for r in finished}  # finished trials were kept, not re-run
    # the runs the crash left RUNNING were closed as KILLED, and no other run exists
    killed = [client.get_run(i) for i in stale]
    assert [r.info.status for r in killed] == ["KILLED"] * len(killed)
    # every trial that was in its objective when the study died is one of them, params
    # and all (a run the crash caught between its creation and its params has none)
    killed_params = [{k: float(v) for k, v in r.data.params.items()} for r in killed]
    for trial in held:
        assert trial in killed_params, (trial, killed_params)
    in_db = _statuses_in_postgres(postgres_srv, name)
    expected = {"FINISHED": len(finished) + 1, "KILLED": len(stale)}
    assert in_db == {k: v for k, v in expected.items() if v}, (in_db, len(stale))
