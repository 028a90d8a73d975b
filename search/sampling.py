"""Sample one trial's parameters from a `SearchSpace`.

`suggest_params` is the define-by-run function the engine gives Optuna (through Ray
Tune's `OptunaSearch`): for each parameter it asks the sampler for a value, so Optuna
sees every searched parameter and its distribution. Fixed parameters are returned without
asking, so they never clutter the study. Conditional parameters (a value that exists only
when another has a given value) will be added here.
"""

from __future__ import annotations

from typing import Any

from search.distributions import Suggester
from search.space import SearchSpace


def suggest_params(space: SearchSpace, trial: Suggester) -> dict[str, Any]:
    """One value for every parameter of `space`, by dotted name."""
    return {name: dist.suggest(trial, name) for name, dist in space.distributions.items()}
