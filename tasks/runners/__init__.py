"""Pure trial runners: a Python function or a training command, and what they report.

``TrialStopped`` is what ``report(step, **metrics)`` raises in a function trial that the
early-stopping rule stops; it is exported here for trials that catch exceptions broadly.
"""

from amtune.tasks.runners.failures import TrialStopped

__all__ = ["TrialStopped"]
