"""The ``amtune`` command: run, validate and inspect studies.

Exit codes: 0 the study completed (failed trials included), 2 invalid input (one
line on stderr naming the field, the value and what is allowed), 1 the study could
not run. Prefect is imported only when a flow runs, after its quiet defaults are set.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from amtune.flows import deploy
from amtune.flows.defaults import CONSOLE_ENV, QUIET_ENV

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Automatic model tuning as a Prefect pipeline, tracked in MLflow.")


def quiet_defaults() -> None:
    """Quiet, offline defaults (flows/defaults.py), set before Prefect is imported.

    A Prefect logging level of the user's own means they want to see Prefect's lines:
    the console handler is then left at Prefect's default instead of turned down."""
    own_level = "PREFECT_LOGGING_LEVEL" in os.environ
    for k, v in QUIET_ENV.items():
        if not (own_level and k in CONSOLE_ENV):
            os.environ.setdefault(k, v)
    cwd = os.getcwd()  # `module:attr` objectives are imported from the working directory
    if cwd not in sys.path:
        sys.path.insert(0, cwd)


def _fail(code: int, message: str) -> typer.Exit:
    typer.echo(f"amtune: {message}", err=True)
    return typer.Exit(code)


def _load(spec_path: Path) -> Any:
    from amtune.flows.spec import SpecError, load_spec

    try:
        return load_spec(spec_path)
    except SpecError as err:
        raise _fail(2, str(err)) from None


@app.command()
def validate(spec: Annotated[Path, typer.Argument(help="Study spec (YAML)")]) -> None:
    """Check a spec without running anything."""
    quiet_defaults()
    s = _load(spec)
    typer.echo(f"{spec}: valid study {s.name!r} ({len(s.parameters)} parameters, "
               f"strategy {s.strategy.name}, {s.budget.max_trials} trials)")


@app.command()
def run(spec: Annotated[Path, typer.Argument(help="Study spec (YAML)")],
        max_trials: Annotated[int | None, typer.Option(min=1, help="Override (or extend) the "
                                                       "trial budget")] = None,
        tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI")] = None,
        ) -> None:
    """Run a study, or resume it if it exists and is unfinished (or extended)."""
    quiet_defaults()
    from amtune.flows.spec import SpecError

    s = _load(spec)
    try:
        s = s.with_overrides(max_trials=max_trials, tracking_uri=tracking_uri)
    except SpecError as err:
        raise _fail(2, str(err)) from None
    from amtune.flows import progress
    from amtune.flows.study import preflight, study_flow
    from amtune.tasks.store.lease import LeaseHeld, LeaseLost
    from amtune.tasks.store.outage import TrackingOutage

    try:
        preflight(s)
    except SpecError as err:
        raise _fail(2, str(err)) from None
    except (LeaseHeld, TrackingOutage) as err:
        raise _fail(1, str(err)) from None
    reporter = progress.Reporter(s.objective.metric, s.sign, s.budget.max_trials)
    _leave_at_once_on_ctrl_c(reporter)
    try:
        with reporter:
            result = study_flow(spec=s.model_dump(mode="json"), reporter=reporter)
    except SpecError as err:
        raise _fail(2, str(err)) from None
    except (LeaseHeld, LeaseLost, TrackingOutage) as err:  # their messages say what to do
        raise _fail(1, str(err)) from None
    except KeyboardInterrupt:
        raise _fail(1, "interrupted; run the same command again to resume") from None
    except Exception as err:  # the study could not run: say why, briefly
        raise _fail(1, f"study {s.name!r} could not run: {type(err).__name__}: {err}") from None
    typer.echo(f"study {result.study}: {result.trials} trials ({result.failed} failed), "
               f"stopped by {result.reason}")
    if result.best_value is not None:
        typer.echo(f"best {s.objective.metric} = {result.best_value:.6g} with "
                   f"{json.dumps(result.best_params, sort_keys=True)}")
    typer.echo(f"mlflow: experiment {result.experiment_id}, run {result.parent_run_id} "
               f"({s.tracking.uri})")
    from amtune.flows.views import view_key

    typer.echo(f"mlflow ui: {ui_link(s.tracking.uri, result.experiment_id, view_key(s.name))}")


def _leave_at_once_on_ctrl_c(reporter: Any) -> None:
    """On the ephemeral API, Ctrl-C exits at once instead of hanging for minutes.

    The terminal's SIGINT also reaches Prefect's ephemeral API server (a child in our
    process group), which dies; Prefect would then keep retrying to report states and
    events to it. Nothing is lost by leaving now: trials left RUNNING are closed and run
    again when the study resumes. With a real server (PREFECT_API_URL) Prefect's own
    interrupt handling reports the crash, so it is left alone.
    """
    from prefect.settings import get_current_settings

    if get_current_settings().api.url or threading.current_thread() is not threading.main_thread():
        return

    def leave(signum: int, frame: object) -> None:
        reporter.__exit__(None, None, None)  # stop the live line, show the cursor
        sys.stderr.write("\namtune: interrupted; run the same command again to resume\n")
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(1)

    signal.signal(signal.SIGINT, leave)


def ui_link(uri: str, experiment_id: str, key: str | None = None) -> str:
    """Where the study's runs table is in MLflow's UI (flows/views.py says what it shows).

    MLflow 3.17's UI picks the GenAI or the model-training view from the browser's
    "GenAI | Model training" switch (default GenAI), not from the experiment's tags;
    ``workflowType=machine_learning`` in the link opens the runs view, and ``key`` the
    study's shared view (sorted by the objective, columns chosen, trials expanded).
    """
    from amtune.flows.views import printed_link

    return printed_link(uri, experiment_id, key)


TrackingUri = Annotated[str, typer.Option(help="MLflow tracking URI")]


@app.command()
def results(study: Annotated[str, typer.Argument(help="Study name")],
            tracking_uri: TrackingUri = "sqlite:///mlflow.db",
            top: Annotated[int | None, typer.Option(min=1, help="Rows to show (table: 10; "
                                                    "JSON: every trial)")] = None,
            csv: Annotated[Path | None, typer.Option(help="Write all trials to this CSV")] = None,
            as_json: Annotated[bool, typer.Option("--json", help="Print every trial as JSON "
                                                  "(--top K: the best K)")] = False,
            ui: Annotated[bool, typer.Option("--ui", help="Print the link to the study's "
                                             "runs view in MLflow's UI")] = False,
            ) -> None:
    """Show the best trial and the top trials of a study from MLflow."""
    quiet_defaults()
    from amtune.flows.results import load_results, render

    try:
        data = load_results(study, tracking_uri)
    except LookupError as err:
        raise _fail(2, str(err)) from None
    if csv is not None:
        from amtune.flows.summary import trials_csv

        try:
            csv.write_text(trials_csv(data.records), encoding="utf-8")
        except OSError as err:
            raise _fail(2, f"--csv: {str(csv)!r} — cannot write ({err.strerror})") from None
    if ui:
        from amtune.flows.views import view_key

        typer.echo(ui_link(tracking_uri, data.experiment_id, view_key(study)))
        return
    render(data, top=top, as_json=as_json)


@app.command()
def report(study: Annotated[str, typer.Argument(help="Study name")],
           out: Annotated[Path | None, typer.Option(help="Where to write the page "
                                                    "(default: <study>-report.html)")] = None,
           tracking_uri: TrackingUri = "sqlite:///mlflow.db") -> None:
    """Write the study's report page (the parent run's report.html) to a local file."""
    quiet_defaults()
    from amtune.flows.results import load_results, write_local_report

    try:
        data = load_results(study, tracking_uri)
    except LookupError as err:
        raise _fail(2, str(err)) from None
    path = out or Path(f"{study}-report.html")
    try:
        write_local_report(data, path, tracking_uri)
    except OSError as err:
        raise _fail(2, f"--out: {str(path)!r} — cannot write ({err.strerror})") from None
    typer.echo(f"wrote {path}")


deploy.register(app, quiet_defaults, _fail)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
