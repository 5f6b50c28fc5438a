"""The study's parent run and its runner lease: the half of ``StudyStore`` that is
about the study as a whole (``study.py`` holds the fields and the trial writes,
``reads.py`` the trial reads).

A mixin, not a model: its methods use the store's fields and client.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflow.entities import Metric, RunTag, ViewType

from amtune.tasks.store import schema as S
from amtune.tasks.store.lease import Heartbeat, Lease, acquire, lease_ttl, release
from amtune.tasks.store.metrics import finite, now_ms
from amtune.tasks.store.schema import StudyRun

SETTLE_S = 0.3  # how long a new parent run waits before checking it is the only one


class ParentRun:
    """Find, create, summarise and end the study's parent run; take and give back its lease."""

    if TYPE_CHECKING:  # the store's fields and client (not fields of this mixin)
        client: Any
        experiment: str
        study: str
        outage_timeout_s: float
        experiment_id: str | None
        parent_id: str | None
        space: dict[str, Any]

    def find(self) -> StudyRun | None:
        """The study's parent run in its experiment, or None (read only)."""
        exp = self.client.get_experiment_by_name(self.experiment)
        if exp is None or exp.lifecycle_stage == "deleted":
            return None
        self.experiment_id = exp.experiment_id
        return self._oldest(self.study, [exp.experiment_id])

    def open(self, tags: Mapping[str, str], spec: Mapping[str, Any]) -> tuple[StudyRun, bool]:
        """Find or create the parent run; returns it and whether the study existed."""
        self.experiment_id = self._ensure_experiment()
        run = self._oldest(self.study, [self.experiment_id])
        resumed = run is not None
        if run is None:
            run = self._create_parent(tags, spec)
        self.parent_id = run.run_id
        return run, resumed

    def _ensure_experiment(self) -> str:
        c = self.client
        exp = c.get_experiment_by_name(self.experiment)
        if exp is None:
            try:
                return str(c.create_experiment(self.experiment, tags=S.EXPERIMENT_KIND))
            except Exception:  # another runner created it first
                exp = c.get_experiment_by_name(self.experiment)
                if exp is None:
                    raise
        if exp.lifecycle_stage == "deleted":
            c.restore_experiment(exp.experiment_id)
        for k, v in S.EXPERIMENT_KIND.items():
            if exp.tags.get(k) != v:
                c.set_experiment_tag(exp.experiment_id, k, v)
        return str(exp.experiment_id)

    def _create_parent(self, tags: Mapping[str, str], spec: Mapping[str, Any]) -> StudyRun:
        all_tags = {S.STUDY: self.study, S.ROLE: "study",
                    S.SPACE: json.dumps(self.space, sort_keys=True), **tags}
        mine = self.client.create_run(self.experiment_id, run_name=self.study, tags=all_tags)
        time.sleep(SETTLE_S)
        winner = self._oldest(self.study, [str(self.experiment_id)])
        if winner is not None and winner.run_id != mine.info.run_id:
            self.client.delete_run(mine.info.run_id)  # another runner created it first
            return winner
        self.client.log_dict(mine.info.run_id, dict(spec), "spec.json")
        return S.study_run(mine)

    def _oldest(self, study: str, experiment_ids: list[str]) -> StudyRun | None:
        runs = self.client.search_runs(experiment_ids, S.study_filter(study), max_results=100,
                                       order_by=["attributes.start_time ASC"])
        if not runs:
            return None
        return S.study_run(min(runs, key=lambda r: (r.info.start_time, r.info.run_id)))

    def find_study(self, study: str) -> StudyRun | None:
        """Another study's parent run, in any active experiment (warm start, results)."""
        ids = [e.experiment_id for e in self.client.search_experiments(
            view_type=ViewType.ACTIVE_ONLY)]
        return self._oldest(study, ids) if ids else None

    def studies(self) -> list[StudyRun]:
        """Every study of this experiment, newest first."""
        runs = self.client.search_runs([self.experiment_id], f"tags.`{S.ROLE}` = 'study'",
                                       order_by=["attributes.start_time DESC"])
        return [S.study_run(r) for r in runs]

    def reopen(self) -> None:
        self.client.update_run(self.parent_id, status="RUNNING")

    def summarise(self, *, tags: Mapping[str, str], metrics: Mapping[str, float] | None = None,
                  step: int = 0, files: Mapping[str, Path] | None = None) -> None:
        """The study's summary on its parent run: tags, metrics, and files as artifacts.

        ``files`` maps an artifact path (``trials.csv``, ``plots/importance.png``) to
        the local file.
        """
        ts = now_ms()
        self.client.log_batch(
            self.parent_id, tags=[RunTag(k, v) for k, v in tags.items()],
            metrics=[Metric(k, float(v), ts, step) for k, v in (metrics or {}).items()
                     if finite(v)])
        for name, path in (files or {}).items():
            folder = str(Path(name).parent)
            self.client.log_artifact(self.parent_id, str(path),
                                     None if folder == "." else folder)

    def log_series(self, key: str, values: list[tuple[int, float]]) -> None:
        """A metric history on the parent run (``best_<metric>`` per finished trial)."""
        ts = now_ms()
        batch = [Metric(key, float(v), ts, int(step)) for step, v in values if finite(v)]
        for i in range(0, len(batch), 1000):
            self.client.log_batch(self.parent_id, metrics=batch[i:i + 1000])

    def end(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.parent_id, status, end_time=now_ms())

    # -- the runner lease ------------------------------------------------------------

    def read_lease(self) -> str | None:
        return self.client.get_run(self.parent_id).data.tags.get(S.LEASE)  # type: ignore[no-any-return]

    def write_lease(self, value: str) -> None:
        self.client.set_tag(self.parent_id, S.LEASE, value)

    def take_lease(self) -> Heartbeat:
        """The study's lease, kept alive by a heartbeat thread (enter it to start beating)."""
        lease = acquire(self.study, self.read_lease, self.write_lease,
                        ttl_s=lease_ttl(self.outage_timeout_s))
        return Heartbeat(lease, self.read_lease, self.write_lease)

    def give_back(self, lease: Lease) -> None:
        release(lease, self.read_lease, self.write_lease)
