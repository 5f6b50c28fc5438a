"""Put a study on a schedule: ``amtune deploy`` (a work pool's workers run it) and
``amtune serve`` (this process runs it).

Both are Prefect's own machinery: a deployment of the study flow whose one
parameter is the spec's path, with a cron or interval schedule. Each scheduled
run becomes its own study (see :mod:`amtune.flows.schedule`), so a nightly deployment
keeps a history of re-tunes in one MLflow experiment. The checks here run before
anything is sent to the server, so a typo in a cron expression or a pool name is
a one-line error, not a traceback from the API.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from amtune.flows.spec import SpecError, StudySpec, load_spec

ROOT = Path(__file__).resolve().parents[1]
ENTRYPOINT_FILE = "flows/study.py:study_flow"  # the study flow, relative to the source root
ENTRYPOINT_MODULE = "amtune.flows.study.study_flow"
DEFAULT_POOL = "amtune"
CRON_HELP = "5 fields: minute hour day-of-month month day-of-week, e.g. '0 3 * * *'"


class NoServerError(RuntimeError):
    """No Prefect server to deploy to (the ephemeral API forgets deployments on exit)."""


def check_cron(expr: str) -> str:
    """A cron expression Prefect's scheduler accepts, or a SpecError naming it."""
    from prefect._internal.schemas.validators import validate_cron_string

    if len(expr.split()) != 5:
        raise SpecError(f"--cron: {expr!r} — {CRON_HELP}")
    try:
        return validate_cron_string(expr)
    except ValueError:
        raise SpecError(f"--cron: {expr!r} — not a valid cron expression ({CRON_HELP})") from None


def check_schedule(cron: str | None, interval: float | None) -> dict[str, Any]:
    """Exactly one of cron / interval, as keyword arguments for Prefect's deploy/serve."""
    if (cron is None) == (interval is None):
        given = "both" if cron is not None else "neither"
        raise SpecError(f"schedule: {given} given — pass exactly one of --cron EXPR or "
                        "--interval SECONDS")
    if cron is not None:
        return {"cron": check_cron(cron)}
    assert interval is not None
    if not interval > 0:
        raise SpecError(f"--interval: {interval!r} — must be a number of seconds > 0")
    return {"interval": float(interval)}


def spec_parameter(spec_path: Path, root: Path = ROOT) -> str:
    """The spec path as the deployment stores it.

    Relative to the source root when the spec lives inside it, because a worker runs
    the flow from that directory (the deployment's pull step) — possibly on another
    machine with its own checkout. A spec elsewhere keeps its absolute path.
    """
    path = spec_path.resolve()
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def api_url() -> str:
    """The Prefect server to talk to; deployments need a real one."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url:
        raise NoServerError(
            "no Prefect server configured: start one (`prefect server start`) and set "
            "PREFECT_API_URL=http://127.0.0.1:4200/api")
    return str(url)


def check_pool(name: str) -> str:
    """The work pool exists on the server; otherwise name it and list the ones that do."""
    import httpx
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    try:
        with get_client(sync_client=True) as client:
            try:
                client.read_work_pool(name)
                return name
            except ObjectNotFound:
                existing = sorted(p.name for p in client.read_work_pools())
    except (OSError, httpx.HTTPError) as err:
        raise NoServerError(f"cannot reach the Prefect server at {api_url()}: {err}") from None
    allowed = ", ".join(existing) if existing else "none yet"
    raise SpecError(
        f"--pool: {name!r} — no such work pool on {api_url()} (existing: {allowed}); "
        f"create it with `prefect work-pool create {name} --type process`")


def deploy_study(spec_path: Path, *, cron: str | None = None, interval: float | None = None,
                 pool: str = DEFAULT_POOL) -> tuple[StudySpec, str]:
    """Create or update the deployment ``amtune-study/<study name>``; returns its id.

    The source is this checkout (a ``set_working_directory`` pull step), the
    entrypoint the study flow, and the spec path the one parameter, so editing the
    spec file changes the next scheduled run without redeploying.
    """
    spec = load_spec(spec_path)
    schedule = check_schedule(cron, interval)
    api_url()
    check_pool(pool)
    from amtune.flows.study import study_flow

    flow = study_flow.from_source(source=str(ROOT), entrypoint=ENTRYPOINT_FILE)
    deployment_id = flow.deploy(
        name=spec.name,
        work_pool_name=pool,
        parameters={"spec": spec_parameter(spec_path)},
        description=f"amtune study {spec.name}: each run is a re-tune named after its "
                    "scheduled time",
        tags=["amtune"],
        build=False,
        push=False,
        print_next_steps=False,
        **schedule,
    )
    return spec, str(deployment_id)


def serve_study(spec_path: Path, *, cron: str | None = None,
                interval: float | None = None, limit: int = 1) -> None:
    """Serve the study's deployment from this process until interrupted (no worker needed).

    Flow runs start in subprocesses that import the study flow by module path, so the
    spec path is made absolute: their working directory is not ours.
    """
    spec = load_spec(spec_path)
    schedule = check_schedule(cron, interval)
    from prefect.deployments.runner import EntrypointType

    from amtune.flows.study import study_flow

    path = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if str(ROOT) not in path:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, path)])
    study_flow.serve(
        name=spec.name,
        parameters={"spec": str(spec_path.resolve())},
        entrypoint_type=EntrypointType.MODULE_PATH,
        limit=limit,
        print_starting_message=True,
        **schedule,
    )


CRON_OPT = typer.Option(help=f"Cron schedule ({CRON_HELP})")
INTERVAL_OPT = typer.Option(help="Interval schedule in seconds")
POOL_OPT = typer.Option(help="Work pool (type process)")


def register(app: Any, prepare: Any, fail: Any) -> None:
    """Add ``deploy`` and ``serve`` to the ``amtune`` typer app.

    ``prepare`` sets the CLI's quiet defaults; ``fail(code, message)`` returns the
    typer exit that prints ``message`` on stderr.
    """
    @app.command()
    def deploy(spec: Annotated[Path, typer.Argument(help="Study spec (YAML)")],
               cron: Annotated[str | None, CRON_OPT] = None,
               interval: Annotated[float | None, INTERVAL_OPT] = None,
               pool: Annotated[str, POOL_OPT] = DEFAULT_POOL) -> None:
        """Create or update the scheduled deployment of a study on the Prefect server."""
        prepare()
        try:
            s, deployment_id = deploy_study(spec, cron=cron, interval=interval, pool=pool)
        except SpecError as err:
            raise fail(2, str(err)) from None
        except NoServerError as err:
            raise fail(1, str(err)) from None
        when = f"cron {cron!r}" if cron is not None else f"every {interval:g} s"
        typer.echo(f"deployment amtune-study/{s.name} ({deployment_id}) on pool {pool!r}, "
                   f"{when}; start a worker with `prefect worker start --pool {pool}`")

    @app.command()
    def serve(spec: Annotated[Path, typer.Argument(help="Study spec (YAML)")],
              cron: Annotated[str | None, CRON_OPT] = None,
              interval: Annotated[float | None, INTERVAL_OPT] = None) -> None:
        """Run a study on a schedule from this process (Prefect's serve; no worker)."""
        prepare()
        try:
            serve_study(spec, cron=cron, interval=interval)
        except SpecError as err:
            raise fail(2, str(err)) from None
