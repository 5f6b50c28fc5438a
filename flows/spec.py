"""The study spec: one pydantic model of the whole YAML file, checked before anything runs.

Every user error comes out as one :class:`SpecError` whose message names the field
path, the value and what is allowed, so the CLI can print it without a traceback.
Structure and types are pydantic's job; the search space, the strategy and the
objective are checked by the code that will use them (``SearchSpace.from_dict``,
``make_strategy``, ``check_objective``) so the spec never drifts from what runs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    model_validator,
)

from amtune.flows.tracking_uri import check_tracking_uri
from amtune.strategies import SearchSpace, make_strategy
from amtune.strategies.early_stopping import StoppingRule, make_rule

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"


class SpecError(ValueError):
    """An invalid spec; ``str(error)`` is the message shown to the user."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MetricDef(_Model):
    """A metric read from a command's output: the first regex group of a matching line."""

    name: str = Field(min_length=1)
    regex: str = Field(min_length=1)


class Objective(_Model):
    function: str | None = None
    command: list[str] | None = Field(default=None, min_length=1)
    metric: str = Field(min_length=1)
    direction: Literal["minimize", "maximize"] = "minimize"
    metrics: list[MetricDef] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_kind(self) -> Objective:
        if (self.function is None) == (self.command is None):
            raise ValueError("give exactly one of objective.function or objective.command")
        return self


class StrategySpec(_Model):
    name: str = "random"
    options: dict[str, Any] = Field(default_factory=dict)


class Budget(_Model):
    max_trials: int = Field(default=20, ge=1)
    max_parallel: int = Field(default=1, ge=1, le=256)
    max_runtime_s: float | None = Field(default=None, gt=0)
    target: float | None = None
    patience: int | None = Field(default=None, ge=1)
    max_failed_trials: int | None = Field(default=None, ge=1)


class TrialSpec(_Model):
    retries: int = Field(default=0, ge=0, le=50)
    retry_delay_s: float = Field(default=1.0, ge=0)
    timeout_s: float | None = Field(default=None, gt=0)
    retry_on: list[str] | None = None


class Tracking(_Model):
    uri: str = "sqlite:///mlflow.db"
    experiment: str | None = None
    # How long the study waits for an unreachable tracking store before exiting 1.
    outage_timeout_s: float = Field(default=300.0, gt=0)


def _check_warm_start(value: Any) -> Any:
    """One clear message for every wrong shape (pydantic would report each union arm)."""
    ok = value is None or value == "previous" or (
        isinstance(value, list) and all(isinstance(v, str) and v for v in value))
    if not ok:
        raise ValueError(f"{value!r} — allowed: 'previous' or a list of study names")
    return value


class Execution(_Model):
    """Where trials run: Prefect's thread pool, or a Dask cluster (see flows/execution.py)."""

    task_runner: Literal["threads", "dask"] = "threads"
    # async: a round starts as soon as a slot frees; barrier: once the last round ended
    # (the same seed gives the same trials). See flows/loop.py.
    rounds: Literal["async", "barrier"] = "async"
    # async only: while every slot is busy, propose the next trial ahead so a freed slot
    # starts it at once; that proposal lacks the result of the trial whose slot it takes.
    plan_ahead: StrictBool = True
    address: str | None = Field(default=None, pattern=r"^[a-z]+://\S+:\d+$")

    @model_validator(mode="after")
    def _address_needs_dask(self) -> Execution:
        if self.address is not None and self.task_runner != "dask":
            raise ValueError(f"address {self.address!r} — only used with task_runner: dask, "
                             f"not {self.task_runner!r}")
        return self


class EarlyStopping(_Model):
    """``early_stopping:``: stop losing trials from their intermediate objective values.

    The fields are typed ``Any`` on purpose: ``make_rule`` checks them (whole numbers,
    ranges, hyperband's ``max_steps``) with the same one-line messages whoever builds
    a rule, and an unset field takes the rule's own default (median: min_steps 1,
    min_trials 5; asha and hyperband: min_steps 1, reduction_factor 3).
    """

    rule: Any
    min_steps: Any = None
    reduction_factor: Any = None
    max_steps: Any = None
    min_trials: Any = None

    def config(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)

    def make(self) -> StoppingRule:
        rule = make_rule(self.config())
        assert rule is not None  # a config is never None here
        return rule


class StudySpec(_Model):
    name: str = Field(pattern=NAME_PATTERN)
    objective: Objective
    parameters: dict[str, Any]
    strategy: StrategySpec = Field(default_factory=StrategySpec)
    budget: Budget = Field(default_factory=Budget)
    trial: TrialSpec = Field(default_factory=TrialSpec)
    seed: int = 0
    tracking: Tracking = Field(default_factory=Tracking)
    execution: Execution = Field(default_factory=Execution)
    # prior history from earlier studies over the same space (flows/warm.py)
    warm_start: Annotated[Literal["previous"] | list[str] | None,
                          BeforeValidator(_check_warm_start)] = None
    # stop unpromising trials at a reported step (tasks/stopping.py); None: run all to the end
    early_stopping: EarlyStopping | None = None

    @property
    def space(self) -> SearchSpace:
        return SearchSpace.from_dict(self.parameters)

    @property
    def experiment(self) -> str:
        return self.tracking.experiment or self.name

    @property
    def sign(self) -> float:
        """The one place maximisation is handled: internal values are ``sign * metric``."""
        return -1.0 if self.objective.direction == "maximize" else 1.0

    def with_overrides(self, *, max_trials: int | None = None,
                       tracking_uri: str | None = None) -> StudySpec:
        data = self.model_dump()
        if max_trials is not None:
            data["budget"]["max_trials"] = max_trials
        if tracking_uri is not None:
            data["tracking"]["uri"] = tracking_uri
        return validate_spec(data)


_ALLOWED_HINTS = {
    "extra_forbidden": "unknown key",
    "missing": "required",
    "literal_error": "allowed: {expected}",
    "greater_than_equal": "must be >= {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be <= {le}",
    "string_pattern_mismatch": "must match {pattern} (letters, digits, . _ -)",
    "too_short": "must not be empty",
    "string_too_short": "must not be empty",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "int_parsing": "must be an integer (a whole number)",
    "int_type": "must be an integer (a whole number)",
    "int_from_float": "must be an integer (a whole number)",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be a mapping (key: value)",
    "model_type": "must be a mapping (key: value)",
}


def _format_pydantic(err: ValidationError, data: Any) -> str:
    e = err.errors(include_url=False)[0]
    path = ".".join(str(p) for p in e["loc"]) or "spec"
    ctx = e.get("ctx") or {}
    hint = _ALLOWED_HINTS.get(e["type"])
    if hint is not None:
        try:
            hint = hint.format(**ctx)
        except (KeyError, IndexError):
            hint = None
    if hint is None:
        hint = re.sub(r"^Value error, ", "", e["msg"])
    if e["type"] == "extra_forbidden":
        hint = f"unknown key; allowed keys: {', '.join(_known_keys(e['loc']))}"
    if e["type"] == "value_error":  # a model-level rule: the input is the whole section
        return f"{path}: {hint}"
    if e["type"] == "missing":
        return f"{path}: missing — this field is required"
    return f"{path}: {e.get('input')!r} — {hint}"


def _known_keys(loc: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] = StudySpec
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        ann = getattr(field, "annotation", None) if field else None
        # an optional section (``EarlyStopping | None``): its model arm
        ann = next((a for a in get_args(ann) if isinstance(a, type)
                    and issubclass(a, BaseModel)), ann)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
        elif field is not None and str(part) == "metrics":
            model = MetricDef
        elif str(part).isdigit():
            continue
    return sorted(model.model_fields)


def validate_spec(data: Any, *, check_objective: bool = True) -> StudySpec:
    """Validate a spec dict; raises SpecError with a one-line message."""
    if data is None:
        raise SpecError("spec: the document is empty — it must be a mapping with at least "
                        "name, objective and parameters")
    if not isinstance(data, dict):
        raise SpecError(f"spec: {type(data).__name__} — the spec must be a mapping of keys")
    try:
        spec = StudySpec.model_validate(data)
    except ValidationError as err:
        raise SpecError(_format_pydantic(err, data)) from None
    try:
        check_tracking_uri(spec.tracking.uri)
    except ValueError as err:
        raise SpecError(str(err)) from None
    if spec.trial.retry_on is not None:
        from amtune.tasks.runners.failures import check_retry_on

        try:
            check_retry_on(spec.trial.retry_on)
        except ValueError as err:
            raise SpecError(str(err)) from None
    try:
        space = spec.space
        strategy = make_strategy(spec.strategy.name, space, seed=spec.seed,
                                 **spec.strategy.options)
    except (ValueError, TypeError) as err:  # SpaceError is a ValueError naming its field
        raise SpecError(str(err)) from None
    if spec.early_stopping is not None:
        try:
            spec.early_stopping.make()
        except ValueError as err:  # names the field, the value and what is allowed
            raise SpecError(str(err)) from None
    if spec.strategy.name == "grid" and "max_trials" not in spec.budget.model_fields_set:
        # A grid search's natural budget is its grid: every point once.
        budget = spec.budget.model_copy(update={"max_trials": strategy.size()})
        spec = spec.model_copy(update={"budget": budget})
    if check_objective:
        from amtune.tasks.runners.objective import check_objective as check

        try:
            check(spec.objective, spec.parameters)
        except ValueError as err:
            raise SpecError(str(err)) from None
    return spec


def load_spec(path: str | Path, *, check_objective: bool = True) -> StudySpec:
    """Read a YAML spec file safely (no Python object tags) and validate it."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise SpecError(f"spec: {str(path)!r} — cannot read the file ({err.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise SpecError(f"spec: {str(path)!r} — not valid YAML{where}: {problem}") from None
    return validate_spec(data, check_objective=check_objective)
