"""Project bootstrap: ``python3 dev.py demo | test | bench-setup``.

Creates ``.venv`` from the pinned lock file on first use (and again whenever the
lock changes), so the quick start works on a machine with nothing but Python.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"


def _run(*cmd: str | Path) -> None:
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT)


def ensure_env() -> None:
    """Install the locked dependencies and the project (editable) into .venv."""
    stamp = VENV / ".amtune-lock"
    digest = hashlib.sha256(
        (ROOT / "requirements.lock").read_bytes() + (ROOT / "pyproject.toml").read_bytes()
    ).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    if not PY.exists():
        print("dev.py: creating .venv", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("dev.py: installing the locked dependencies (first run takes a few minutes)", flush=True)
    pip = (PY, "-m", "pip", "--disable-pip-version-check", "-q")
    _run(*pip, "install", "--require-hashes", "--no-deps", "-r", "requirements.lock")
    _run(*pip, "install", "--no-deps", "-e", ".")
    stamp.write_text(digest)


def main(argv: list[str]) -> int:
    cmd, rest = (argv[0], argv[1:]) if argv else ("help", [])
    if cmd == "demo":
        ensure_env()
        spec = rest[0] if rest else "examples/svm.yaml"
        _run(BIN / "amtune", "run", spec, *rest[1:])
    elif cmd == "test":
        ensure_env()
        _run(PY, "-m", "ruff", "check", ".")
        _run(PY, "-m", "pytest", *rest)
    elif cmd == "bench-setup":
        ensure_env()
        # torch first, pinned, so the CPU build is used and optuna pulls no CUDA build.
        _run(PY, "-m", "pip", "install", "-q", "torch==2.13.0")
        _run(PY, "-m", "pip", "install", "-q", "-e", ".[bench]")
    else:
        print(__doc__)
        return 0 if cmd == "help" else 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except subprocess.CalledProcessError as e:
        sys.exit(e.returncode)
