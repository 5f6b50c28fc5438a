"""The MLflow UI view of a study: the link ``amtune run`` prints and ``results --ui`` gives.

MLflow 3.17's runs page reads only a few things from its URL: the search facets
(``searchFilter``, ``orderByKey``, ``orderByAsc``, ``startTime``, ``lifecycleFilter``,
``modelVersionFilter``, ``datasetsFilter``), ``workflowType`` and ``isComparingRuns``.
Which columns show and which parent rows are expanded are browser-local UI state; the
one way to hand them over in a link is the UI's own "Share" mechanism: an experiment
tag ``mlflow.sharedViewState.<key>`` holding the facets and the UI state as JSON, opened
by ``?viewStateShareKey=<key>``. amtune writes that tag, so the link opens the runs
table with the study's run expanded, its trials sorted by the objective and the
objective, the params, the duration and the failure reason in view.

What it cannot do (3.17): a sort by a metric fetches the runs flat, as the UI's own
column sort does, so the trials are listed by the objective with the study's parent run
among them rather than above them; the "Model training" layout the link selects is not
remembered when the user clicks into a run (the run page then follows the browser's own
GenAI / Model training switch).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

SHARED_VIEW_TAG = "mlflow.sharedViewState."  # the prefix MLflow's UI looks the key up under
LOCAL_UI = "http://127.0.0.1:5000"  # where `mlflow ui` serves a local store by default
REASON_TAG = "amtune.reason"


def ui_base(uri: str) -> str:
    """The UI serving ``uri``: the server itself, else a local ``mlflow ui``."""
    return uri.rstrip("/") if uri.startswith(("http://", "https://")) else LOCAL_UI


def view_key(study: str) -> str:
    """A study's share key: stable (the link stays valid on resume), URL- and tag-safe."""
    return "amtune-" + hashlib.sha256(study.encode("utf-8")).hexdigest()[:16]


def _col(kind: str, name: str) -> str:
    return f"{kind}.`{name}`"  # the UI's canonical column key


def view_state(metric: str, sign: float, params: Sequence[str],
               parent_run_id: str | None) -> dict[str, Any]:
    """The runs-table state the link opens: sorted by the objective, best first."""
    return {
        "searchFilter": "",
        "orderByKey": _col("metrics", metric),
        "orderByAsc": sign > 0,
        "startTime": "ALL",
        "lifecycleFilter": "Active",
        "modelVersionFilter": "All Runs",
        "datasetsFilter": [],
        "selectedColumns": [_col("metrics", metric),
                            *(_col("params", p) for p in params),
                            _col("attributes", "Duration"), _col("tags", REASON_TAG)],
        "runsExpanded": {parent_run_id: True} if parent_run_id else {},
        "runsHiddenMode": "SHOW_ALL",
        "viewMaximized": False,
        "runListHidden": False,
    }


def share_view(client: Any, experiment_id: str, study: str, metric: str, sign: float,
               params: Sequence[str], parent_run_id: str | None) -> str:
    """Write the study's view as an experiment tag (idempotent); its key."""
    key = view_key(study)
    client.set_experiment_tag(experiment_id, SHARED_VIEW_TAG + key,
                              json.dumps(view_state(metric, sign, params, parent_run_id)))
    return key


def runs_link(uri: str, experiment_id: str, key: str | None = None) -> str:
    """The runs table of an experiment, in the shared view ``key`` when given."""
    query = f"viewStateShareKey={key}&workflowType=machine_learning" if key else \
        "workflowType=machine_learning"
    return f"{ui_base(uri)}/#/experiments/{experiment_id}/runs?{query}"


def printed_link(uri: str, experiment_id: str, key: str | None = None) -> str:
    """The link as the CLI prints it: with how to start the UI for a local store."""
    link = runs_link(uri, experiment_id, key)
    if uri.startswith(("http://", "https://")):
        return link
    return f"{link} (after `mlflow ui --backend-store-uri {uri} --workers 1`)"
