"""No per-study state in module globals (it grew without bound in a long ``amtune serve``)."""

from __future__ import annotations

import importlib
import pkgutil

import amtune.flows
import amtune.tasks

# Process-wide on purpose: one local Dask cluster per process (flows/execution.py).
ALLOWED = {("amtune.flows.execution", "local_cluster")}


def test_no_module_keeps_mutable_state() -> None:
    found = []
    for pkg in (amtune.tasks, amtune.flows):
        for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            module = importlib.import_module(info.name)
            for name, value in vars(module).items():
                if name.isupper() or name.startswith("__") or (info.name, name) in ALLOWED:
                    continue  # constants (tag names, defaults) are fine
                cached = hasattr(value, "cache_info") and str(
                    getattr(value, "__module__", "")).startswith("amtune")
                if isinstance(value, dict | list | set) or cached:
                    found.append(f"{info.name}.{name}")
    assert found == []
