"""Is a tracking URI one MLflow can open? Checked with the spec, before anything runs.

MLflow only looks at a URI when the first client is made, deep inside a running
study, and takes anything without a scheme for a local path: ``mysql//oops`` would
become a folder, ``bogus://x`` a traceback. The schemes here are the ones MLflow's
tracking-store registry knows (``mlflow/tracking/_tracking_service/utils.py``; a test
compares the two), plus any a plugin registers, read without importing MLflow so
that checking a spec stays fast.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

FILE_SCHEMES = frozenset({"", "file"})
HTTP_SCHEMES = frozenset({"http", "https"})
DATABASE_SCHEMES = frozenset({"postgresql", "mysql", "sqlite", "mssql"})  # +driver allowed
DATABRICKS_SCHEMES = frozenset({"databricks", "databricks-uc", "uc"})
PLUGIN_GROUP = "mlflow.tracking_store"
ALLOWED = ("allowed: a local path, file:///path, sqlite:///path.db, "
           "postgresql://, mysql://, mssql:// (optionally +driver), "
           "http(s)://host[:port], databricks[://profile] or a plugin's scheme")
_DB = re.compile(r"^(?P<db>[a-z]+)(?:\+[a-z0-9_]+)?$")


def check_tracking_uri(uri: str, field: str = "tracking.uri") -> None:
    """Raise ``ValueError('<field>: <uri> — <problem>; allowed: ...')`` for a bad URI."""
    problem = _problem(uri)
    if problem is not None:
        raise ValueError(f"{field}: {uri!r} — {problem}; {ALLOWED}")


def _problem(uri: str) -> str | None:
    if not uri.strip():
        return "empty"
    if uri != uri.strip():
        return "has leading or trailing spaces"
    if uri in DATABRICKS_SCHEMES:
        return None
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if len(scheme) == 1 and scheme.isalpha():  # a Windows drive, as MLflow reads it
        return None
    if scheme == "":
        if "//" in uri:
            return "a local path with an empty segment ('//'), likely a URI missing its ':'"
        return None
    after = uri[len(scheme) + 1:]
    db = _DB.match(scheme)
    if db is not None and db.group("db") in DATABASE_SCHEMES:
        if not after.startswith("//"):
            return f"a database URI needs '{scheme}://'"
        if db.group("db") == "sqlite" and (not after.startswith("///") or after == "///"):
            return "sqlite needs a database file: sqlite:///relative.db or sqlite:////abs.db"
        if after == "//":
            return "names no database"
        return None
    if scheme in HTTP_SCHEMES:
        return None if after.startswith("//") and parts.netloc else "names no host"
    if scheme == "file":
        return None if parts.path else "names no path"
    if scheme in DATABRICKS_SCHEMES or scheme in _plugin_schemes():
        return None
    return f"unknown scheme {scheme!r}"


def _plugin_schemes() -> set[str]:
    """Schemes that installed MLflow plugins register (only looked up for unknown ones)."""
    from importlib.metadata import entry_points

    return {e.name for e in entry_points(group=PLUGIN_GROUP)}
