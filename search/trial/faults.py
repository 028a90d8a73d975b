"""Fault injection for tests: make a chosen trial fail at a chosen epoch, the way Ray
tests its own fault tolerance. Off unless the environment variable `FAULTS_ENV` is set.

The variable holds a JSON list of faults, each
``{"trial": N, "epoch": E, "action": A, "once": PATH}``: when trial number N (1, 2, ...
in its search) finishes epoch E, it does A:

- ``raise``: raises RuntimeError (a bug in trial code: the trial fails, is not retried);
- ``nan``: raises TrainingError as a diverged loss would;
- ``exit``: kills its worker process (as an out-of-memory kill or a segfault would: Ray
  restarts the trial from its latest checkpoint);
- ``sleep:S``: sleeps S seconds (a slow epoch, to interrupt a search mid-trial).

With ``once``, the fault fires only if the file PATH does not exist yet, and creates it,
so a restarted trial runs on.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from search.errors import TrainingError

FAULTS_ENV = "CONVSEARCH_FAULTS"


def inject(trial_number: int, epoch: int) -> None:
    """Do what `FAULTS_ENV` says trial `trial_number` does after `epoch`, if anything."""
    text = os.environ.get(FAULTS_ENV)
    if not text:
        return
    for fault in json.loads(text):
        if fault.get("trial") != trial_number or fault.get("epoch") != epoch:
            continue
        once = fault.get("once")
        if once:
            try:
                Path(once).touch(exist_ok=False)
            except FileExistsError:
                continue
        action = str(fault["action"])
        if action == "raise":
            raise RuntimeError(f"injected fault in trial {trial_number} at epoch {epoch}")
        if action == "nan":
            raise TrainingError(f"loss became NaN or infinite in epoch {epoch} (injected)")
        if action == "exit":
            os._exit(17)
        if action.startswith("sleep:"):
            time.sleep(float(action.split(":", 1)[1]))
