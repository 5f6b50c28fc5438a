"""Search strategies: pure numerics (numpy, scipy, scikit-learn), no Prefect or MLflow.

Each built-in strategy's module is imported the first time the strategy is named.
The early-stopping rules (``make_rule``, ``Curve``) are pure too: a spec's
``early_stopping:`` section is ``make_rule(section)``, asked once per reported step.
"""

from amtune.strategies.base import (
    Strategy,
    Trial,
    make_strategy,
    register,
    strategy_names,
    strategy_options,
)
from amtune.strategies.early_stopping import Curve, StoppingRule, make_rule
from amtune.strategies.space import Categorical, Numeric, SearchSpace, SpaceError

__all__ = [
    "Categorical",
    "Curve",
    "Numeric",
    "SearchSpace",
    "SpaceError",
    "StoppingRule",
    "Strategy",
    "Trial",
    "make_rule",
    "make_strategy",
    "register",
    "strategy_names",
    "strategy_options",
]
