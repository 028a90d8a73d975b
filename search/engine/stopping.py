"""Who stops trials early: a trial scheduler across trials (ASHA stops laggards), and
`SearchStopper`, which ends the whole search when its `SearchControl` says a budget is
spent (epochs, time) or too many trials failed in a row.

`SearchStopper` stops each running trial at its next report rather than all at once
(Tune's `stop_all`), because a trial stopped all at once loses the checkpoint it was
saving then: the search would keep a trial's score without the model that earned it.
"""

from __future__ import annotations

from typing import Any

from ray.tune.schedulers import (
    ASHAScheduler,
    AsyncHyperBandScheduler,
    FIFOScheduler,
    MedianStoppingRule,
)
from ray.tune.stopper import Stopper

from search.engine.control import control_of
from search.engine.pareto_asha import ParetoASHA
from search.settings import SearchSettings
from search.space import SearchSpace

#: Trials whose results the median stopping rule compares a trial with, at the least.
MEDIAN_MIN_SAMPLES = 3

#: Reported with every epoch: the trial's own epoch counter (continues on restart), which
#: schedulers, budgets and MLflow steps count in.
EPOCH = "epoch"


def make_scheduler(settings: SearchSettings, space: SearchSpace) -> Any:
    """The trial scheduler for `settings.scheduler` (resolved), in epochs. Ray Tune's own,
    except MO-ASHA; PBT is made by `search.engine.population`."""
    name = settings.scheduler
    if name == "asha":
        return ASHAScheduler(time_attr=EPOCH, max_t=settings.max_epochs,
                             grace_period=settings.grace,
                             reduction_factor=settings.reduction_factor)
    if name == "mo-asha":
        return ParetoASHA(space.objectives, time_attr=EPOCH, max_t=settings.max_epochs,
                          grace_period=settings.grace,
                          reduction_factor=settings.reduction_factor)
    if name == "hyperband":
        # Ray's synchronous HyperBandScheduler pauses trials until a bracket is full; on
        # local Ray its searches hung in 2 of 10 test runs here (Tune waiting for a
        # placement group), so HyperBand is the asynchronous variant: a bracket per
        # first-cut epoch, grace * reduction_factor^k below max_epochs.
        return AsyncHyperBandScheduler(time_attr=EPOCH, max_t=settings.max_epochs,
                                       grace_period=settings.grace,
                                       reduction_factor=settings.reduction_factor,
                                       brackets=hyperband_brackets(settings))
    if name == "median":
        return MedianStoppingRule(time_attr=EPOCH, grace_period=settings.grace,
                                  min_samples_required=MEDIAN_MIN_SAMPLES)
    if name == "pbt":
        from search.engine.population import make_population_training

        return make_population_training(settings, space)
    return FIFOScheduler()


def hyperband_brackets(settings: SearchSettings) -> int:
    """HyperBand's brackets: one per power of the reduction factor that keeps a first cut
    (grace * rf^k) below max_epochs."""
    brackets, first_cut = 1, settings.grace * settings.reduction_factor
    while first_cut < settings.max_epochs:
        brackets += 1
        first_cut *= settings.reduction_factor
    return brackets


class SearchStopper(Stopper):
    """Stops every trial after its current epoch once the search is stopping."""

    def __init__(self, search_name: str) -> None:
        self.search_name = search_name

    def __call__(self, trial_id: str, result: dict) -> bool:
        control = control_of(self.search_name)
        if control is None:
            return False
        if EPOCH in result:
            control.epochs[trial_id] = int(result[EPOCH])
        return control.stopping()

    def stop_all(self) -> bool:
        return False
