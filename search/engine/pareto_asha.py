"""MO-ASHA: asynchronous successive halving that ranks trials by several objectives.

Ray Tune's schedulers rank by one metric, so in a search over ``[val_accuracy, params]``
ASHA cuts a small model that lags in accuracy at an early rung, although it may be on
the Pareto front at the end. `ParetoASHA` keeps ASHA's rungs (grace period times powers
of the reduction factor) and its asynchronous rule (a trial is judged against the trials
that reached the rung before it), but ranks a rung's trials by non-dominated sorting
with an epsilon-net inside each front (`search.objectives.pareto_order`): a trial goes on
if it is among the top 1/reduction_factor of that order. Sizes and latencies are known
from the first epoch; only accuracy evolves.

Tune keeps no scheduler state in its experiment snapshots, so a resumed search starts
with empty rungs (as ASHA does).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from search.objectives import OBJECTIVES, pareto_order


class ParetoASHA(FIFOScheduler):
    """Stops a trial at a rung unless it ranks in the rung's top 1/`reduction_factor` by
    Pareto order over `objectives` (names in `search.objectives.OBJECTIVES`)."""

    def __init__(self, objectives: Sequence[str], *, time_attr: str, max_t: int,
                 grace_period: int, reduction_factor: int) -> None:
        super().__init__()
        self.objectives = [OBJECTIVES[name] for name in objectives]
        self.time_attr = time_attr
        self.reduction_factor = reduction_factor
        self.milestones = []
        milestone = grace_period
        while milestone < max_t:
            self.milestones.append(milestone)
            milestone *= reduction_factor
        #: Per milestone: each trial's objective vector when it reached it (larger better).
        self.rungs: dict[int, dict[str, tuple[float, ...]]] = {m: {} for m in self.milestones}
        #: Trials stopped at a rung, by id: the milestone.
        self.stopped: dict[str, int] = {}

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        values = [result.get(objective.metric) for objective in self.objectives]
        if self.time_attr not in result or any(v is None for v in values):
            return TrialScheduler.CONTINUE
        point = tuple(o.oriented(float(v)) for o, v in zip(self.objectives, values,
                                                            strict=True))
        if any(math.isnan(x) for x in point):
            return TrialScheduler.CONTINUE
        elapsed = result[self.time_attr]
        for milestone in reversed(self.milestones):
            rung = self.rungs[milestone]
            if elapsed < milestone or trial.trial_id in rung:
                continue
            rung[trial.trial_id] = point
            if not self.promotable(milestone, trial.trial_id):
                self.stopped[trial.trial_id] = milestone
                return TrialScheduler.STOP
            break
        return TrialScheduler.CONTINUE

    def promotable(self, milestone: int, trial_id: str) -> bool:
        """Whether the trial ranks in the top 1/reduction_factor of the trials recorded at
        this milestone so far (the first to arrive always goes on)."""
        rung = self.rungs[milestone]
        ids = list(rung)
        order = pareto_order([rung[i] for i in ids])
        keep = max(1, math.ceil(len(ids) / self.reduction_factor))
        return ids.index(trial_id) in order[:keep]

    def debug_string(self) -> str:
        counts = ", ".join(f"{m}: {len(r)}" for m, r in self.rungs.items())
        return f"ParetoASHA: trials per rung {{{counts}}}, {len(self.stopped)} stopped"
