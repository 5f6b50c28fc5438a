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
from amtune.tasks.store import schema as S
from amtune.tasks.store.schema import StudyRun
from amtune.tasks.store.study import StudyStore


def choose_studies(store: StudyStore, run: StudyRun, warm_start: str | list[str],
                   space: SearchSpace) -> list[StudyRun]:
    """The studies whose trials warm-start ``run``.

    ``previous``: the most recent study in the same experiment that started before
    this one and has the same search space (none on the first ever run). A list of
    names: exactly those studies, each of which must exist and match the space.
    """
    want = space.to_dict()
    if warm_start == "previous":
        studies = store.studies()  # newest first
        ids = [s.run_id for s in studies]
        earlier = studies[ids.index(run.run_id) + 1:] if run.run_id in ids else studies
        return next(([s] for s in earlier if s.space == want), [])
    chosen: list[StudyRun] = []
    for name in warm_start:
        s = store.find_study(name)
        if s is None:
            raise SpecError(f"warm_start: {name!r} — no such study in {store.uri}")
        if s.space != want:
            raise SpecError(f"warm_start: {name!r} — that study searched a different space; "
                            "allowed: studies with exactly this spec's parameters")
        chosen.append(s)
    return chosen


def prior_trials(store: StudyStore, studies: list[StudyRun], space: SearchSpace, metric: str,
                 sign: float) -> list[Trial]:
    """Completed trials of ``studies`` as the strategy's minimised history."""
    out: list[Trial] = []
    for s in studies:
        for r in store.trials_of(s, space, metric):
            if r.status == "completed" and r.value is not None and r.params:
                out.append(Trial(r.params, sign * r.value, "completed",
                                 {"warm_start": s.name, "number": r.number}))
    return out


def warm_history(store: StudyStore, run: StudyRun, warm_start: str | list[str] | None,
                 space: SearchSpace, metric: str, sign: float) -> list[Trial]:
    """The prior of the study ``run``: decided and recorded once, re-read on resume."""
    if warm_start is None:
        return []
    recorded = run.tags.get(S.WARM_STUDIES)
    if recorded is not None:
        studies = [s for name in json.loads(recorded)
                   if (s := store.find_study(name)) is not None]
    else:
        studies = choose_studies(store, run, warm_start, space)
    prior = prior_trials(store, studies, space, metric, sign)
    if recorded is None:
        source = warm_start if isinstance(warm_start, str) else json.dumps(warm_start)
        store.summarise(tags={S.WARM_SOURCE: source,
                              S.WARM_STUDIES: json.dumps([s.name for s in studies]),
                              S.WARM_TRIALS: str(len(prior))})
    return prior
