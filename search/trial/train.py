"""Train one compiled model with early stopping and checkpoints a restart can continue
from.

Called inside a trial. After every epoch it calls `on_epoch` with the epoch's metrics;
the engine turns those calls into Ray Tune reports. An epoch is checkpointed (the trial's
checkpoint folder rewritten: best and latest epoch, see `search.trial.checkpoints`) when
it is the best so far (the search needs that model), when training ends, and otherwise
once `checkpoint_interval_s` seconds have passed since the last checkpoint: a restarted
trial loses at most that much training, and a fast epoch does not pay for a checkpoint
it does not need. Given the state of an earlier run (`resume`), training continues from
the epoch after it, with early stopping where it stood. Nothing here knows about Ray or
MLflow.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from search.data import Dataset
from search.errors import TrainingError
from search.metrics import EPOCH_METRICS, MONITOR, OBJECTIVE
from search.trial.checkpoints import BEST_FILE, TrainingState, load_best, save_epoch
from search.trial.config import TrialConfig
from search.trial.model import one_hot_labels, plateau_callback

#: Batch size of validation and test passes (no gradients: bigger is just faster).
EVALUATION_BATCH = 256
#: The file name of a trial's best model inside its checkpoint directory.
CHECKPOINT_FILE = BEST_FILE
#: Batches per call into TensorFlow while training a long run (Keras's
#: ``steps_per_execution``). Keras's default of one returns to Python after every batch,
#: and for the small CNNs a search tries that return costs more than the batch: on digits
#: (bench.overhead's CNN, 40 batches an epoch, 2 CPUs) an epoch took 116-122 ms with 8
#: against 150-221 ms with 1 (4 runs each); 40 gained little more per epoch and made the
#: first epoch slower, which short trials (ASHA) pay.
STEPS_PER_EXECUTION = 8
#: Fewest batches a training run must have ahead of it to run STEPS_PER_EXECUTION per
#: call; a shorter run calls one batch at a time (`steps_per_call`). Keras's loop over
#: several batches costs more to trace than a single batch's step, and every trial
#: traces afresh: on 2 CPUs the first epoch took 0.16-0.35 s longer with 8 on digits, and
#: a whole 1-epoch trial of 4 batches 0.3-0.6 s longer, while each later batch saved
#: 1.5-2.1 ms (medians of 3 runs each, two CNNs): even after 144-203 batches.
MULTI_BATCH_MIN_BATCHES = 200


@dataclass(frozen=True)
class EpochReport:
    """One finished epoch, as a trial reports it."""

    epoch: int  # counted from 1
    metrics: dict[str, float]  # EPOCH_METRICS and OBJECTIVE
    #: The checkpoint folder when it was just rewritten for this epoch, else None.
    checkpoint_dir: Path | None
    #: True when this epoch is the best so far (the folder's best model changed).
    improved: bool
    #: True when training ends after this epoch by its own rule (early stopping or the
    #: epoch budget), so a trial whose last report lacks it was stopped from outside.
    last: bool
    #: Seconds spent writing checkpoints so far in this run of the trainer.
    checkpoint_seconds: float = 0.0


@dataclass(frozen=True)
class TrainingOutcome:
    """What a finished training run achieved."""

    epochs: int
    best_epoch: int
    best_val_accuracy: float


OnEpoch = Callable[[EpochReport], None]

#: A figure of a model, measured on the model a trial keeps (see `train`).
KeptMetric = Callable[[keras.Model], float]


def configure_tensorflow(cpu_threads: int | None, deterministic: bool = False) -> None:
    """Make TensorFlow share the machine: grow GPU memory on demand (so trials can share
    a GPU) and cap CPU threads at the trial's CPUs (so concurrent trials do not fight);
    with `deterministic`, run only deterministic kernels (what a GPU needs for the same
    seed to give the same weights twice).

    Must run before TensorFlow executes anything in the process; later calls are no-ops
    but for turning determinism on (a process runs the trials of one search, all with
    the same setting; TensorFlow cannot turn it off).
    """
    import tensorflow as tf

    try:
        for gpu in tf.config.list_physical_devices("GPU"):
            tf.config.experimental.set_memory_growth(gpu, True)
        if cpu_threads:
            tf.config.threading.set_intra_op_parallelism_threads(cpu_threads)
            tf.config.threading.set_inter_op_parallelism_threads(min(2, cpu_threads))
    except RuntimeError:
        pass  # TensorFlow already initialised in this process (a reused worker).
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def input_pipeline(data: Dataset, batch_size: int, *, seed: int = 0,
                   one_hot: bool = False) -> tuple[Any, Any]:
    """`tf.data` pipelines over the training and validation splits: cached after the first
    pass, training examples reshuffled every epoch (seeded), batched, and prefetched so
    the accelerator does not wait for input. Labels are one-hot with `one_hot` (for a loss
    with label smoothing)."""
    import tensorflow as tf

    def labels(y: np.ndarray) -> np.ndarray:
        return np.eye(data.num_classes, dtype="float32")[y] if one_hot else y

    train = (tf.data.Dataset.from_tensor_slices((data.x_train, labels(data.y_train)))
             .cache()
             .shuffle(len(data.y_train), seed=seed, reshuffle_each_iteration=True)
             .batch(batch_size)
             .prefetch(tf.data.AUTOTUNE))
    val = (tf.data.Dataset.from_tensor_slices((data.x_val, labels(data.y_val)))
           .batch(EVALUATION_BATCH)
           .cache()
           .prefetch(tf.data.AUTOTUNE))
    return train, val


@contextmanager
def batches_per_call(model: keras.Model, steps: int) -> Iterator[keras.Model]:
    """Within the block, `model` trains and validates `steps` batches per call into
    TensorFlow; afterwards it is as compiled again. Only the training run takes the
    setting, not the model: checkpoints and registered models load as Keras compiles
    them, and their ``predict`` is Keras's usual one."""
    compiled = model.steps_per_execution
    # Keras keeps the functions it traced, each for the batches per call it was traced for.
    model.train_function = model.test_function = model.predict_function = None
    model.steps_per_execution = steps
    try:
        yield model
    finally:
        model.steps_per_execution = compiled
        model.train_function = model.test_function = model.predict_function = None


def build_training_variables(model: keras.Model, batches: Any) -> None:
    """Create the optimizer's variables and those of the compiled loss and metrics before
    ``fit``, from the shapes of `batches` (a `tf.data` pipeline).

    Keras otherwise creates them in the first call of its training step, and TensorFlow
    traces a function that creates variables twice: once creating them, then again
    without. Trained weights are the same either way. On 2 CPUs (medians of 4, digits):
    a 1-epoch trial of 300 images trained in 0.86 s with them built first against 1.53 s
    (1-block CNN, Adam), 1.01 s against 1.62 s (2 blocks), 0.59 s against 0.65 s (SGD,
    which has no slot variables); 3 epochs on all of digits, 1.49 s against 1.99 s.
    Keras builds them this way itself when it trains under a distribution strategy; the
    method has no public name, so a Keras without it trains as before."""
    build = getattr(model, "_symbolic_build", None)
    if build is not None:
        build(data_batch=batches.element_spec)


def steps_per_call(batches: int) -> int:
    """Batches per call into TensorFlow for a training run of `batches` batches in all:
    STEPS_PER_EXECUTION once the run is long enough to repay tracing Keras's loop over
    them (see MULTI_BATCH_MIN_BATCHES), else one."""
    return STEPS_PER_EXECUTION if batches >= MULTI_BATCH_MIN_BATCHES else 1


def training_steps(config: TrialConfig, data: Dataset, max_epochs: int) -> int:
    """Batches in a whole training of `max_epochs` epochs: what a decaying learning-rate
    schedule spans."""
    return max_epochs * math.ceil(len(data.y_train) / config.batch_size)


def train(model: keras.Model, config: TrialConfig, data: Dataset, *, max_epochs: int,
          patience: int, checkpoint_dir: Path, on_epoch: OnEpoch | None = None,
          shuffle_seed: int = 0, resume: TrainingState | None = None,
          checkpoint_interval_s: float = 0.0,
          kept_metrics: Mapping[str, KeptMetric] | None = None) -> TrainingOutcome:
    """Fit `model` on the training split, validating each epoch.

    Stops after `patience` epochs without a better `MONITOR`, and leaves `model` holding
    its best epoch's weights, which are also saved as `checkpoint_dir / CHECKPOINT_FILE`.
    With `resume` (the state saved in `checkpoint_dir` by an earlier run, whose latest
    model `model` is), training continues after `resume.epoch`.

    `kept_metrics` measure the model the trial keeps: each is measured when an epoch
    becomes the best, and every epoch reports (and checkpoints) the best epoch's value,
    as it does `OBJECTIVE`, so a trial's figures all describe the one model it keeps.

    Raises:
        TrainingError: the loss became NaN or infinite.
    """
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    early_stopping = _ResumableEarlyStopping(
        monitor=MONITOR, mode="max", patience=patience, restore_best_weights=True,
        resume=resume, best_weights=(load_best(checkpoint_dir).get_weights()
                                     if resume is not None else None))
    reporter = _EpochReporter(checkpoint_dir, on_epoch, max_epochs, early_stopping, resume,
                              checkpoint_interval_s, kept_metrics or {})
    plateau = plateau_callback(config)
    callbacks = [
        keras.callbacks.TerminateOnNaN(),
        *([plateau] if plateau is not None else []),
        early_stopping,
        # Last: EarlyStopping has decided whether training ends when it reports.
        reporter,
    ]
    train_batches, val_batches = input_pipeline(data, config.batch_size, seed=shuffle_seed,
                                                one_hot=one_hot_labels(model))
    done_epochs = resume.epoch if resume is not None else 0
    ahead = training_steps(config, data, max_epochs - done_epochs)
    build_training_variables(model, train_batches)
    with batches_per_call(model, steps_per_call(ahead)):
        model.fit(train_batches, epochs=max_epochs, validation_data=val_batches,
                  initial_epoch=done_epochs,
                  callbacks=callbacks, shuffle=False, verbose=0)  # the pipeline shuffles
    if reporter.diverged_at is not None:
        raise TrainingError(f"loss became NaN or infinite in epoch {reporter.diverged_at} "
                            f"(optimizer {config.optimizer}, learning rate "
                            f"{config.learning_rate:g})")
    return TrainingOutcome(epochs=reporter.epochs, best_epoch=reporter.best_epoch,
                           best_val_accuracy=reporter.best)


class _ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """Keras's EarlyStopping, which a continued run starts where the earlier one stood
    (patience counter, best value and weights) instead of from scratch."""

    def __init__(self, *, resume: TrainingState | None, best_weights: list | None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._resume = resume
        self._resume_weights = best_weights

    def on_train_begin(self, logs: dict | None = None) -> None:
        super().on_train_begin(logs)
        if self._resume is not None:
            self.wait = self._resume.wait
            self.best = self._resume.best
            self.best_epoch = self._resume.best_epoch - 1  # Keras counts from 0
            self.best_weights = self._resume_weights


class _EpochReporter(keras.callbacks.Callback):
    """Turns Keras epoch ends into checkpoints and `on_epoch` calls, and remembers the
    best epoch."""

    def __init__(self, checkpoint_dir: Path, on_epoch: OnEpoch | None, max_epochs: int,
                 early_stopping: keras.callbacks.EarlyStopping,
                 resume: TrainingState | None, checkpoint_interval_s: float,
                 kept_metrics: Mapping[str, KeptMetric]) -> None:
        super().__init__()
        self.kept_metrics = kept_metrics
        #: The kept metrics' values at the best epoch (a resumed run's from its state).
        self.kept = {name: resume.metrics[name] for name in kept_metrics
                     if resume and name in resume.metrics}
        self.history = list(resume.history) if resume else []
        self.checkpoint_dir = checkpoint_dir
        self.on_epoch = on_epoch
        self.max_epochs = max_epochs
        self.early_stopping = early_stopping
        self.checkpoint_interval_s = checkpoint_interval_s
        self.last_checkpoint = time.monotonic()
        self.checkpoint_seconds = 0.0
        self.best = resume.best if resume else -math.inf
        self.best_epoch = resume.best_epoch if resume else 0
        self.epochs = resume.epoch if resume else 0
        self.diverged_at: int | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        number = epoch + 1
        metrics = {name: float(logs[name]) for name in EPOCH_METRICS if name in logs}
        if not all(math.isfinite(metrics.get(name, 0.0)) for name in ("loss", "val_loss")):
            self.diverged_at = number
            self.model.stop_training = True
            return
        self.epochs = number
        improved = metrics[MONITOR] > self.best  # the same rule as EarlyStopping's
        if improved:
            self.best, self.best_epoch = metrics[MONITOR], number
            self.kept = {name: measure(self.model)
                         for name, measure in self.kept_metrics.items()}
        metrics[OBJECTIVE] = self.best
        metrics.update(self.kept)
        self.history.append(dict(metrics))
        last = bool(self.model.stop_training) or number >= self.max_epochs
        due = time.monotonic() - self.last_checkpoint >= self.checkpoint_interval_s
        if improved or last or due:
            started = time.monotonic()
            save_epoch(self.model, self.checkpoint_dir, TrainingState(
                epoch=number, best=self.best, best_epoch=self.best_epoch,
                wait=int(self.early_stopping.wait), finished=last, metrics=metrics,
                history=list(self.history)))
            self.last_checkpoint = time.monotonic()
            self.checkpoint_seconds += self.last_checkpoint - started
        if self.on_epoch is not None:
            self.on_epoch(EpochReport(
                epoch=number, metrics=metrics, last=last, improved=improved,
                checkpoint_dir=self.checkpoint_dir if improved or last or due else None,
                checkpoint_seconds=self.checkpoint_seconds))


def inference_latency_ms(model: keras.Model, images: np.ndarray, *, batch: int = 32,
                         repeats: int = 7) -> float:
    """Median milliseconds per image of inference on batches of `batch` images, after a
    warm-up call (which traces the graph)."""
    x = np.resize(images, (batch, *images.shape[1:])).astype("float32")
    model.predict_on_batch(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict_on_batch(x)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1000.0 / batch


def load_checkpoint(checkpoint_dir: Path) -> keras.Model:
    """The model a trial saved as its best epoch.

    Raises:
        TrainingError: the checkpoint is missing or unreadable.
    """
    return load_best(checkpoint_dir)


def evaluate(model: keras.Model, data: Dataset) -> dict[str, float]:
    """Loss and accuracy on the test split, which no trial has seen."""
    labels = np.eye(data.num_classes, dtype="float32")[data.y_test] \
        if one_hot_labels(model) else data.y_test
    loss, accuracy = model.evaluate(data.x_test, labels, batch_size=EVALUATION_BATCH,
                                    verbose=0)
    return {"test_loss": float(loss), "test_accuracy": float(accuracy)}


def predict_classes(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """The most probable class of each image."""
    return model.predict(images, batch_size=EVALUATION_BATCH, verbose=0).argmax(axis=-1)
