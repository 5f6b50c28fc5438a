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

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
sys.path.insert(0, str(ROOT))

from websockets.sync.client import connect  # noqa: E402

from tests.servers import MlflowServer, Service, child_env, free_port, http_ok  # noqa: E402

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
import time


def train(params, report):
    """A cheap stand-in for a training run: a loss curve, diverging for large rates."""
    lr, wd, depth = params["lr"], params["weight_decay"], params["depth"]
    if lr > 0.3 and params["optimizer"] == "adam":
        raise FloatingPointError(f"loss is nan at epoch 2 (lr={lr:.3g})")
    best_lr = 0.01 if params["optimizer"] == "adam" else 0.1
    floor = 0.08 + 0.1 * math.log10(lr / best_lr) ** 2 + 0.02 * abs(depth - 5)
    floor += 0.05 * abs(math.log10(wd) + 4) / 2
    loss = 2.0
    time.sleep(0.05 * depth)  # deeper nets train longer
    for epoch in range(5):
        loss = floor + (loss - floor) * 0.45
        report(epoch, train_loss=loss)
    return loss
'''


class Browser:
    """Headless Chromium driven over its DevTools protocol: one profile for every shot, so
    a panel closed once (MLflow's assistant opens itself on a first visit) stays closed."""

    def __init__(self, width: int = 1440, height: int = 900) -> None:
        self.profile = tempfile.mkdtemp(prefix="amtune-chromium-")
        self.proc = subprocess.Popen(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={self.profile}", "--hide-scrollbars",
             f"--window-size={width},{height}", "--remote-debugging-port=0", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        for line in self.proc.stderr:  # "DevTools listening on ws://127.0.0.1:PORT/..."
            if "DevTools listening on" in line:
                port = int(line.split("ws://127.0.0.1:")[1].split("/")[0])
                break
        tabs = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json").read())
        page = next(t for t in tabs if t["type"] == "page")
        self.ws = connect(page["webSocketDebuggerUrl"], max_size=None)
        self._id = 0
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self._id:
                return dict(msg.get("result", {}))

    def js(self, expr: str) -> Any:
        return self.call("Runtime.evaluate", expression=expr,
                         returnByValue=True).get("result", {}).get("value")

    def shot(self, url: str, out: Path, ready: str = "true", prepare: str = "",
             settle_s: float = 2.0, height: int | None = None) -> None:
        """Open ``url``, wait until the JS ``ready`` holds, run ``prepare``, photograph."""
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + 60
        while not self.js(f"!!({ready})"):
            assert time.monotonic() < deadline, f"{url}: never ready ({ready})"
            time.sleep(0.5)
        if prepare:
            time.sleep(1.5)  # panels that open themselves after the page has loaded
            self.js(prepare)
        time.sleep(settle_s)
        if height:
            self.call("Emulation.setDeviceMetricsOverride", width=1440, height=height,
                      deviceScaleFactor=1, mobile=False)
        data = self.call("Page.captureScreenshot", format="png")["data"]
        out.write_bytes(base64.b64decode(data))
        print(f"wrote {out.relative_to(ROOT)}", flush=True)

    def close(self) -> None:
        self.ws.close()
        self.proc.terminate()
        self.proc.wait(timeout=30)
        shutil.rmtree(self.profile, ignore_errors=True)


# MLflow's assistant panel opens itself on a first visit; a user closes it once.
CLOSE_ASSISTANT = """
for (const b of document.querySelectorAll('button[aria-label="Close"]')) {
  let e = b;
  for (let i = 0; i < 6 && e; i++, e = e.parentElement) {
    if (e.innerText && e.innerText.includes('MLflow Assistant')) { b.click(); break; }
  }
}"""


def main() -> int:
    if shutil.which("chromium") is None:
        print("needs chromium (Debian: apt-get install chromium)", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="amtune-screenshots-"))
    (work / "screenshot_objective.py").write_text(OBJECTIVE, encoding="utf-8")
    mlflow = MlflowServer(work / "mlflow")
    prefect_url = f"http://127.0.0.1:{free_port()}"
    prefect = Service(  # the README's command, UI on (the test helper turns it off)
        "prefect server", [str(Path(sys.executable).parent / "prefect"), "server", "start",
                           "--host", "127.0.0.1", "--port", prefect_url.rsplit(":", 1)[1]],
        child_env(PREFECT_HOME=work / "prefect-home", PREFECT_SERVER_ANALYTICS_ENABLED="false",
                  PREFECT_UI_API_URL=f"{prefect_url}/api", DO_NOT_TRACK="1"),
        work / "prefect-server.log", cwd=work)
    browser: Browser | None = None
    try:
        prefect.start(http_ok(f"{prefect_url}/api/health"))
        mlflow.start()
        spec = work / "study.yaml"
        spec.write_text(SPEC + f"tracking: {{uri: \"{mlflow.url}\"}}\n", encoding="utf-8")
        env = child_env(PREFECT_HOME=work / "prefect-home", PREFECT_API_URL=f"{prefect_url}/api",
                        PYTHONPATH=f"{work}{os.pathsep}{ROOT}")
        run = subprocess.run([sys.executable, "-m", "amtune.flows.cli", "run", str(spec)],
                             cwd=work, env=env, capture_output=True, text=True, check=True)
        print(run.stdout, flush=True)
        link = re.search(r"mlflow ui: (\S+)", run.stdout)
        exp = re.search(r"experiment (\d+), run (\w+)", run.stdout)
        assert link and exp, run.stdout
        page = work / "report.html"
        subprocess.run([sys.executable, "-m", "amtune.flows.cli", "report", STUDY,
                        "--tracking-uri", mlflow.url, "--out", str(page)],
                       cwd=work, env=env, check=True, capture_output=True)
        browser = Browser()
        rows = "document.querySelectorAll('.ag-center-cols-container .ag-row').length > 3"
        browser.shot(link.group(1), DOCS / "mlflow-runs.png", ready=rows,
                     prepare=CLOSE_ASSISTANT)
        browser.shot(f"{mlflow.url}/#/experiments/{exp.group(1)}/runs/{exp.group(2)}"
                     "/model-metrics?workflowType=machine_learning", DOCS / "mlflow-parent.png",
                     ready="document.querySelector('.js-plotly-plot')",
                     prepare=CLOSE_ASSISTANT)
        browser.shot(f"{prefect_url}/runs/flow-run/{_flow_run_id(env)}",
                     DOCS / "prefect-flow-run.png",
                     ready=f"document.body.innerText.includes({STUDY!r})", settle_s=6)
        browser.shot(page.as_uri(), DOCS / "report.png", settle_s=0.5, height=1500)
    finally:
        if browser is not None:
            browser.close()
        mlflow.stop()
        prefect.stop()
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
