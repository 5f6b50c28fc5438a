"""Importing strategies must not pull in the orchestration or tracking stacks."""

import subprocess
import sys


def test_strategies_import_is_pure() -> None:
    code = (
        "import sys, strategies\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'prefect', 'mlflow'})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""
