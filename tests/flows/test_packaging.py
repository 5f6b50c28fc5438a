"""amtune installed next to a user project that has its own ``flows`` and ``tasks`` packages.

Prefect projects often have ``flows/`` and ``tasks/`` folders of their own; amtune's
wheel puts its packages under one ``amtune`` namespace, so both sides import their
own code. The wheel is built from this checkout and installed into a folder that is
the only place the study's process finds amtune.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import ROOT, cli_env

OBJECTIVE = '''
import json, os
import amtune.flows.study, flows.steps, tasks.features

def train(params):
    with open(os.environ["WHERE"], "w") as f:
        json.dump({"amtune": amtune.flows.study.__file__, "tasks": tasks.features.__file__,
                   "flows": flows.steps.__file__}, f)
    return tasks.features.scale(params["x"]) + flows.steps.offset()
'''


def test_a_user_project_with_its_own_flows_and_tasks(prefect_api: str, tmp_path: Path) -> None:
    site = tmp_path / "site"
    build = subprocess.run(
        # Build isolation: the backend pyproject.toml pins, not the venv's own setuptools.
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
         "--disable-pip-version-check", "--target", str(site), str(ROOT)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert build.returncode == 0, build.stderr
    assert sorted(p.name for p in (site / "amtune").iterdir()) == ["flows", "strategies", "tasks"]
    assert not (site / "flows").exists() and not (site / "tasks").exists()

    user = tmp_path / "project"
    for pkg, body in {"tasks": "def scale(x):\n    return 2 * x\n",
                      "flows": "def offset():\n    return 1.0\n"}.items():
        (user / pkg).mkdir(parents=True)
        (user / pkg / "__init__.py").write_text("")
        (user / pkg / ("features.py" if pkg == "tasks" else "steps.py")).write_text(body)
    (user / "objective.py").write_text(OBJECTIVE)
    (user / "spec.yaml").write_text(yaml.safe_dump({
        "name": "own-packages", "objective": {"function": "objective:train", "metric": "loss"},
        "parameters": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        "budget": {"max_trials": 2}, "tracking": {"uri": "sqlite:///mlflow.db"}}))
    env = cli_env(prefect_api, WHERE=str(tmp_path / "where.json"))
    env["PYTHONPATH"] = str(site)  # not the checkout: only the installed amtune
    r = subprocess.run([sys.executable, "-m", "amtune.flows.cli", "run", "spec.yaml"],
                       cwd=user, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    where = json.loads((tmp_path / "where.json").read_text())
    assert where["amtune"].startswith(str(site) + os.sep), where
    assert where["tasks"] == str(user / "tasks" / "features.py")
    assert where["flows"] == str(user / "flows" / "steps.py")
