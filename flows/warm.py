"""Warm start: the completed trials of earlier studies over the same space, given to
the strategy as prior history.

A scheduled re-tune (see :mod:`amtune.flows.schedule`) searches the same space as last
night's study on slightly different data, so last night's results are the best
prior knowledge there is: ``gp_ei`` fits its first model to them instead of
spending its first trials on a space-filling design. The prior is information
only: it is not counted in the budget, not copied into the new study, and not
part of the new study's completion criteria.

Which studies were used is decided once, when the study is created, and recorded
on its parent run (tags ``amtune.warm_start.*``); a resumed study reads that record
instead of deciding again, so its proposals stay those of the interrupted run.
"""

from __future__ import annotations

import json

from amtune.flows.spec import SpecError
from amtune.strategies import SearchSpace, Trial
from amtune.tasks.store import tracking
from amtune.tasks.store.tracking import StudyRun

TAG_SOURCE = "amtune.warm_start"  # what the spec asked for: previous | a JSON list of names
TAG_STUDIES = "amtune.warm_start.studies"  # JSON list of the studies actually used
TAG_TRIALS = "amtune.warm_start.trials"  # how many prior trials the strategy got


def choose_studies(uri: str, run: StudyRun, warm_start: str | list[str],
                   space: SearchSpace) -> list[StudyRun]:
    """The studies whose trials warm-start ``run``.

    ``previous``: the most recent study in the same experiment that started before
    this one and has the same search space (none on the first ever run). A list of
    names: exactly those studies, each of which must exist and match the space.
    """
    want = space.to_dict()
    if warm_start == "previous":
        studies = tracking.list_studies(uri, run.experiment_id)  # newest first
        ids = [s.run_id for s in studies]
        earlier = studies[ids.index(run.run_id) + 1:] if run.run_id in ids else studies
        for s in earlier:
            if tracking.stored_space(s) == want:
                return [s]
        return []
    chosen: list[StudyRun] = []
    for name in warm_start:
        s = tracking.find_study(uri, name)
        if s is None:
            raise SpecError(f"warm_start: {name!r} — no such study in {uri}")
        if tracking.stored_space(s) != want:
            raise SpecError(f"warm_start: {name!r} — that study searched a different space; "
                            "allowed: studies with exactly this spec's parameters")
        chosen.append(s)
    return chosen


def prior_trials(uri: str, studies: list[StudyRun], space: SearchSpace, metric: str,
                 sign: float) -> list[Trial]:
    """Completed trials of ``studies`` as the strategy's minimised history."""
    out: list[Trial] = []
    for s in studies:
        study = s.tags.get("amtune.study", s.run_id)
        for r in tracking.read_trials(uri, s, space, metric):
            if r.status == "completed" and r.value is not None and r.params:
                out.append(Trial(r.params, sign * r.value, "completed",
                                 {"warm_start": study, "number": r.number}))
    return out


def warm_history(uri: str, run: StudyRun, warm_start: str | list[str] | None,
                 space: SearchSpace, metric: str, sign: float) -> list[Trial]:
    """The prior of the study ``run``: decided and recorded once, re-read on resume."""
    if warm_start is None:
        return []
    recorded = run.tags.get(TAG_STUDIES)
    if recorded is not None:
        studies = [s for name in json.loads(recorded)
                   if (s := tracking.find_study(uri, name)) is not None]
    else:
        studies = choose_studies(uri, run, warm_start, space)
    prior = prior_trials(uri, studies, space, metric, sign)
    if recorded is None:
        names = [s.tags.get("amtune.study", s.run_id) for s in studies]
        source = warm_start if isinstance(warm_start, str) else json.dumps(warm_start)
        tracking.log_study_summary(uri, run.run_id, metrics={}, step=0, tags={
            TAG_SOURCE: source, TAG_STUDIES: json.dumps(names), TAG_TRIALS: str(len(prior))})
    return prior

