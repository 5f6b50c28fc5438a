"""Search strategies: pure numerics (numpy, scipy, scikit-learn), no Prefect or MLflow.

Each built-in strategy's module is imported the first time the strategy is named.
"""

from amtune.strategies.base import (
    Strategy,
    Trial,
    make_strategy,
    register,
    strategy_names,
    strategy_options,
)
from amtune.strategies.space import Categorical, Numeric, SearchSpace, SpaceError

__all__ = [
    "Categorical",
    "Numeric",
    "SearchSpace",
    "SpaceError",
    "Strategy",
    "Trial",
    "make_strategy",
    "register",
    "strategy_names",
    "strategy_options",
]
