"""The names of the metrics trials report: the one home of these strings.

Kept apart from `search.trial.train` so modules that must not import TensorFlow (the space
loader, objectives, the CLI's checks) can use them.
"""

from __future__ import annotations

#: The Keras metric that early stopping, checkpoints and the search all rank by.
MONITOR = "val_accuracy"
#: The best `MONITOR` a trial has reached so far. A trial's model is its best epoch
#: (EarlyStopping restores it), so this is the trial's score at any time.
OBJECTIVE = "best_val_accuracy"
#: Per-epoch metrics every trial reports, in Keras's names.
EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")
#: Size and speed of a trial's model, reported with its epochs (objectives can use them).
PARAMS = "params"
LATENCY = "latency_ms"
#: Validation accuracy under the fast gradient sign method (an objective a space may ask
#: for; see `search.trial.robustness`).
ROBUST_ACCURACY = "robust_accuracy"
