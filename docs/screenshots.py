"""Retake the README's screenshots of a real study in MLflow's and Prefect's UIs.

    python docs/screenshots.py            # from the repository root, .venv active

It starts a Prefect server and an MLflow tracking server on free 127.0.0.1 ports (the
README's commands), runs a 24-trial study against both with ``amtune run`` (one trial in
five diverges and fails), writes its report with ``amtune report`` and photographs four
pages with headless Chromium into ``docs/``:

- ``mlflow-runs.png``: the runs view the printed link opens;
- ``mlflow-parent.png``: the study's parent run, its ``best_<metric>`` chart;
- ``prefect-flow-run.png``: the study's flow run with its rounds;
- ``report.png``: the report page.

Nothing is left running: the servers and the browser are stopped on exit.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
sys.path.insert(0, str(ROOT))

from tests.servers import MlflowServer, child_env, prefect_server  # noqa: E402

STUDY = "resnet-lr-sweep"
SPEC = f"""\
name: {STUDY}
objective:
  function: screenshot_objective:train
  metric: val_loss
  direction: minimize
parameters:
  lr:           {{type: float, low: 1.0e-4, high: 1.0, log: true}}
  weight_decay: {{type: float, low: 1.0e-6, high: 1.0e-2, log: true}}
  depth:        {{type: int, low: 2, high: 8}}
  optimizer:    {{type: categorical, values: [sgd, adam]}}
strategy: {{name: gp_ei}}
budget: {{max_trials: 24, max_parallel: 4}}
trial: {{retries: 0}}
seed: 3
"""


OBJECTIVE = '''
import math


def train(params, report):
    """A cheap stand-in for a training run: a loss curve, diverging for large rates."""
    lr, wd, depth = params["lr"], params["weight_decay"], params["depth"]
    if lr > 0.3 and params["optimizer"] == "adam":
        raise FloatingPointError(f"loss is nan at epoch 2 (lr={lr:.3g})")
    best_lr = 0.01 if params["optimizer"] == "adam" else 0.1
    floor = 0.08 + 0.1 * math.log10(lr / best_lr) ** 2 + 0.02 * abs(depth - 5)
    floor += 0.05 * abs(math.log10(wd) + 4) / 2
    loss = 2.0
    for epoch in range(5):
        loss = floor + (loss - floor) * 0.45
        report(epoch, train_loss=loss)
    return loss
'''


def chromium(url: str, out: Path, width: int = 1440, height: int = 900,
             wait_ms: int = 20000) -> None:
    """One screenshot, from a fresh profile, the README's headless flags."""
    profile = tempfile.mkdtemp(prefix="amtune-chromium-")
    try:
        subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}", "--hide-scrollbars",
             f"--window-size={width},{height}", f"--virtual-time-budget={wait_ms}",
             f"--screenshot={out}", url],
            check=True, capture_output=True, timeout=180)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    print(f"wrote {out.relative_to(ROOT)}", flush=True)


def main() -> int:
    if shutil.which("chromium") is None:
        print("needs chromium (Debian: apt-get install chromium)", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="amtune-screenshots-"))
    (work / "screenshot_objective.py").write_text(OBJECTIVE, encoding="utf-8")
    mlflow = MlflowServer(work / "mlflow")
    try:
        with prefect_server(work) as prefect:
            mlflow.start()
            spec = work / "study.yaml"
            spec.write_text(SPEC + f"tracking: {{uri: \"{mlflow.url}\"}}\n", encoding="utf-8")
            env = prefect.client_env(PYTHONPATH=f"{work}{os.pathsep}{ROOT}")
            run = subprocess.run([sys.executable, "-m", "amtune.flows.cli", "run", str(spec)],
                                 cwd=work, env=env, capture_output=True, text=True, check=True)
            print(run.stdout, flush=True)
            link = re.search(r"mlflow ui: (\S+)", run.stdout)
            exp = re.search(r"experiment (\d+), run (\w+)", run.stdout)
            assert link and exp, run.stdout
            chromium(link.group(1), DOCS / "mlflow-runs.png")
            chromium(f"{mlflow.url}/#/experiments/{exp.group(1)}/runs/{exp.group(2)}"
                     "/model-metrics?workflowType=machine_learning", DOCS / "mlflow-parent.png")
            flow_run = _flow_run_id(env)
            chromium(f"{prefect.url}/runs/flow-run/{flow_run}", DOCS / "prefect-flow-run.png")
            page = work / "report.html"
            subprocess.run([sys.executable, "-m", "amtune.flows.cli", "report", STUDY,
                            "--tracking-uri", mlflow.url, "--out", str(page)],
                           cwd=work, env=env, check=True, capture_output=True)
            chromium(page.as_uri(), DOCS / "report.png", height=1400, wait_ms=3000)
    finally:
        mlflow.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _flow_run_id(env: dict[str, str]) -> str:
    """The study's flow run, asked of the Prefect server the study ran on."""
    code = ("from prefect.client.orchestration import get_client\n"
            "from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName\n"
            "with get_client(sync_client=True) as c:\n"
            f"    runs = c.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName("
            f"any_=[{STUDY!r}])))\n"
            "    print(runs[0].id)\n")
    out = subprocess.run([sys.executable, "-c", code], env=child_env(**env), check=True,
                         capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


if __name__ == "__main__":
    raise SystemExit(main())
