"""Search strategies: pure numerics (numpy, scipy, scikit-learn), no Prefect or MLflow."""

from strategies import (
    gp_ei,  # noqa: F401  (registers)
    grid,  # noqa: F401  (registers)
    random_search,  # noqa: F401  (registers)
    sobol,  # noqa: F401  (registers)
)
from strategies.base import (
    Strategy,
    Trial,
    make_strategy,
    register,
    strategy_names,
    strategy_options,
)
from strategies.space import Categorical, Numeric, SearchSpace, SpaceError

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
