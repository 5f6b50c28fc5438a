"""The strategies stay pure numerics, and what they import is declared.

Every module of the package is imported, and every registered strategy looked up
(the built-in ones are imported lazily, when first named), in a fresh interpreter:
no Prefect or MLflow module may get loaded, and every third-party package that
gets loaded must be installed by amtune's declared dependencies, directly when the
strategies' own code imports it.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "strategies"
FORBIDDEN = {"prefect", "mlflow"}
# What the code needs of a dependency, as (distribution, minimum version, where it is used).
NEEDS = [("scipy", (1, 15), "strategies/sobol.py passes rng= to scipy.stats.qmc.Sobol")]

IMPORT_ALL = """
import importlib, json, pkgutil, sys
before = set(sys.modules)
import amtune.strategies as package
for info in pkgutil.iter_modules(package.__path__):
    importlib.import_module(f"amtune.strategies.{info.name}")
for name in package.strategy_names():
    package.strategy_options(name)  # imports a lazily registered strategy
new = {m.split(".")[0] for m in set(sys.modules) - before}
# Without a file a module was made at run time (Cython's cython_runtime), not installed.
print(json.dumps(sorted(m for m in new if getattr(sys.modules[m], "__file__", None))))
"""


def _name(requirement: str) -> str:
    """The normalised distribution name of a requirement string."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def declared() -> dict[str, str]:
    """pyproject's [project].dependencies, by normalised name."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {_name(r): r for r in project["dependencies"]}


def installed_by(roots: set[str]) -> set[str]:
    """The distributions that installing ``roots`` brings in (requirements without extras)."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        todo += [_name(r) for r in requires if "extra ==" not in r.replace('"', "").replace(
            "'", "")]
    return seen


def distributions_of(modules: set[str]) -> dict[str, set[str]]:
    by_module = md.packages_distributions()
    return {m: {_name(d) for d in by_module.get(m, [])} for m in modules}


def third_party(modules: set[str]) -> set[str]:
    return {m for m in modules if m not in sys.stdlib_module_names and m != "amtune"
            and not m.startswith("_")}


@pytest.fixture(scope="module")
def loaded() -> set[str]:
    """Top-level modules loaded by importing every strategy, in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", IMPORT_ALL], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    return set(json.loads(out))


def imported_by_code() -> set[str]:
    """Top-level modules the strategies' own source imports, lazy imports included."""
    names: set[str] = set()
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return third_party(names - {"__future__"})


def test_every_strategy_was_imported(loaded: set[str]) -> None:
    assert {"numpy", "scipy", "threadpoolctl"} <= loaded  # gp_ei and sobol were loaded


def test_no_orchestration_or_tracking_stack_is_loaded(loaded: set[str]) -> None:
    assert sorted(loaded & FORBIDDEN) == []


def test_what_the_strategies_import_is_declared() -> None:
    deps = declared()
    for module, dists in distributions_of(imported_by_code()).items():
        assert dists, f"{module}: imported by strategies/, but no installed distribution has it"
        assert dists & set(deps), f"{module} ({', '.join(sorted(dists))}) is not declared in " \
                                  "pyproject's dependencies"


def test_everything_loaded_is_installed_by_the_declared_dependencies(loaded: set[str]) -> None:
    closure = installed_by(set(declared()))
    for module, dists in distributions_of(third_party(loaded)).items():
        assert dists & closure, f"{module} ({dists or 'no distribution'}) is loaded by the " \
                                "strategies but not installed by a declared dependency"


@pytest.mark.parametrize(("dist", "minimum", "why"), NEEDS)
def test_declared_minimums_cover_what_the_code_uses(dist: str, minimum: tuple[int, ...],
                                                    why: str) -> None:
    requirement = declared()[dist]
    floor = re.search(r">=\s*([0-9][0-9.]*)", requirement)
    assert floor, f"{requirement}: no minimum version, but {why}"
    assert tuple(int(p) for p in floor.group(1).split(".")) >= minimum, \
        f"{requirement}: {why}, which needs {'.'.join(map(str, minimum))}"
    installed = tuple(int(p) for p in re.findall(r"\d+", md.version(dist))[:len(minimum)])
    assert installed >= minimum
