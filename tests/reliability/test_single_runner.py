"""One study, one runner: a second ``amtune run`` refuses while the first is alive."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient

from amtune.tasks.store.lease import LEASE_TAG, Lease
from tests.conftest import Runner, cli_env
from tests.flows.helpers import counted, spec, study_runs


def parent_tags(uri: str, name: str) -> dict[str, str] | None:
    c = MlflowClient(uri)
    exp = c.get_experiment_by_name(name)
    if exp is None:
        return None
    runs = c.search_runs([exp.experiment_id], "tags.`amtune.role` = 'study'")
    return dict(runs[0].data.tags) if runs else None


def set_lease(uri: str, name: str, lease: Lease) -> None:
    c = MlflowClient(uri)
    exp = c.get_experiment_by_name(name)
    (run,) = c.search_runs([exp.experiment_id], "tags.`amtune.role` = 'study'")
    c.set_tag(run.info.run_id, LEASE_TAG, lease.dumps())


def test_second_runner_refuses_then_stale_lease_is_taken_over(
    prefect_api: str, tracking_uri: str, tmp_path: Path, amtune: Runner
) -> None:
    name = "one-runner"
    path = tmp_path / "spec.yaml"
    gate = tmp_path / "gate"  # the first runner's trials wait for it
    path.write_text(
        yaml.safe_dump(
            spec(
                name,
                "tests.reliability.objectives:gated",
                tracking={"uri": tracking_uri},
                budget={"max_trials": 5, "max_parallel": 1},
            )
        )
    )
    MlflowClient(tracking_uri).search_experiments()  # the schema first: no two processes migrate it
    first = subprocess.Popen(
        [sys.executable, "-m", "amtune.flows.cli", "run", str(path)],
        cwd=tmp_path,
        env=cli_env(prefect_api, AMTUNE_TEST_GATE=str(gate)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not (parent_tags(tracking_uri, name) or {}).get(LEASE_TAG):
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the first runner never took the lease"
            time.sleep(0.2)
        holder = Lease.loads(parent_tags(tracking_uri, name)[LEASE_TAG])  # type: ignore[index]
        assert holder is not None and holder.pid == first.pid

        second = amtune("run", str(path), prefect_api=prefect_api)
        assert first.poll() is None, (
            "the first study ended early",
            first.communicate(),
            second.returncode,
            second.stdout,
            second.stderr,
        )
        gate.touch()
        assert second.returncode == 1, second.stderr
        assert f"already being run by process {first.pid}" in second.stderr
        assert "Traceback" not in second.stderr
        _, err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err
    parents, children = study_runs(tracking_uri, name)
    assert len(parents) == 1 and len(children) == 5 == len(counted(children))
    assert sorted(int(r.data.tags["amtune.trial"]) for r in children) == list(range(5))
    assert parent_tags(tracking_uri, name)[LEASE_TAG] == ""  # type: ignore[index]  # released

    # A live lease held elsewhere is honoured until its heartbeat is older than its TTL.
    set_lease(tracking_uri, name, Lease("elsewhere", "some-other-host", 4242, time.time(), 60))
    refused = amtune(
        "run", str(path), "--max-trials", "6", prefect_api=prefect_api, AMTUNE_TEST_GATE=str(gate)
    )
    assert refused.returncode == 1 and "some-other-host" in refused.stderr, refused.stderr
    assert len(study_runs(tracking_uri, name)[1]) == 5  # nothing ran

    set_lease(
        tracking_uri, name, Lease("elsewhere", "some-other-host", 4242, time.time() - 120, 60)
    )
    taken = amtune(
        "run", str(path), "--max-trials", "6", prefect_api=prefect_api, AMTUNE_TEST_GATE=str(gate)
    )
    assert taken.returncode == 0, taken.stderr
    _, children = study_runs(tracking_uri, name)
    assert len(counted(children)) == 6
    assert len({json.dumps(r.data.params, sort_keys=True) for r in children}) == 6
