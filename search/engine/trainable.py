"""One trial inside a Ray worker: build (or restore) the config's CNN, train it, and
report every epoch to Tune with the trial's checkpoint folder.

A trial that Ray restarts (a resumed search, a retried worker) finds its latest
checkpoint with `tune.get_checkpoint()` and continues after that epoch; one whose
training had already ended only reports its result again. A trial whose own code raises
(a diverged loss, a model that cannot be built, a bug) reports the error and its best
value so far as its final result instead of raising: Tune retries only trials whose
worker died, and the search algorithm learns the value. Workers are reused from trial
to trial (TensorFlow stays loaded); one whose memory has grown is replaced.

Replacing a worker: TensorFlow keeps about 6 MB of every model a process has trained
(the traced training step's graphs stay referenced from its C++ side; measured with
Keras 3.15 / TensorFlow 2.21, `keras.backend.clear_session` and `gc.collect` do not free
them), so a reused worker grows from trial to trial. A trial that starts in a worker that
grew by more than the limit raises `WorkerRecycled` before it does anything; Tune then
restarts it on a fresh worker, as it does a trial whose worker died (this uses one of its
``--max-failures`` restarts; with none allowed, workers are not replaced).
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import time
import traceback
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune.trainable.function_trainable import wrap_function

from search.data import Dataset
from search.engine.callbacks import ERROR, ERROR_DETAIL, LAST_EPOCH, WORKER_RSS
from search.engine.searchers import TRIAL_NUMBER
from search.engine.stopping import EPOCH
from search.errors import TrainingError
from search.memory import rss_mb
from search.metrics import LATENCY, OBJECTIVE, PARAMS, ROBUST_ACCURACY
from search.objectives import worst_values
from search.settings import SearchSettings
from search.trial.checkpoints import TrainingState, read_state
from search.trial.config import TrialConfig
from search.trial.faults import inject
from search.workdirs import new_workdir, remove_workdir

logger = logging.getLogger(__name__)

#: A reused worker whose memory grew by more than this since its first trial ended is
#: replaced by a fresh one (see the module's doc). The environment variable
#: GROWTH_LIMIT_ENV overrides it (a negative value replaces every worker after one trial).
WORKER_GROWTH_LIMIT_MB = 256.0
GROWTH_LIMIT_ENV = "CONVSEARCH_WORKER_GROWTH_LIMIT_MB"

#: Longest traceback kept with a failed trial's result.
_DETAIL_CHARS = 20_000

#: This worker's memory after its first trial, the baseline for WORKER_GROWTH_LIMIT_MB.
_first_trial_rss: float | None = None
#: Whether this worker has frozen its imported objects (`_freeze_imports`).
_imports_frozen = False


def make_trainable(data: Dataset, settings: SearchSettings, cpu_threads: int,
                   gpus: float, objectives: tuple[str, ...]) -> Any:
    """The Tune trainable of a search: `run_trial` with the data in Ray's object store,
    the trial's resources, and worker recycling. Call inside a Ray session."""
    data_ref = ray.put(data)

    def convsearch_trial(config: dict[str, Any]) -> None:
        run_trial(config, data=ray.get(data_ref), settings=settings, cpu_threads=cpu_threads,
                  objectives=objectives)

    return tune.with_resources(wrap_function(convsearch_trial, name="convsearch_trial"),
                               {"cpu": cpu_threads, "gpu": gpus})


class WorkerRecycled(RuntimeError):
    """Raised by a trial that starts in a worker whose memory grew too much, so that Ray
    restarts it on a fresh worker."""


def run_trial(config: dict[str, Any], *, data: Dataset, settings: SearchSettings,
              cpu_threads: int, objectives: tuple[str, ...]) -> None:
    """One trial, inside a Ray worker: build or restore, train, report each epoch.

    Reports, with every epoch, where the trial's own time went so far (``time_*``
    seconds): setup (TensorFlow start-up in a fresh worker), model build, and reporting
    (`tune.report`, which also persists checkpoints), and the worker's memory.
    """
    global _first_trial_rss
    started = time.perf_counter()
    limit = float(os.environ.get(GROWTH_LIMIT_ENV, WORKER_GROWTH_LIMIT_MB))
    if _first_trial_rss is not None and settings.max_failures > 0 and \
            rss_mb() - _first_trial_rss > limit:
        raise WorkerRecycled(f"this worker's memory grew from {_first_trial_rss:.0f} MB to "
                             f"{rss_mb():.0f} MB; the trial restarts on a fresh worker")
    from search.trial.lean_import import keras_extras_skipped

    with keras_extras_skipped():  # the worker's first trial imports TensorFlow here
        from search.trial.train import configure_tensorflow
    configure_tensorflow(cpu_threads, settings.deterministic)
    import keras

    _freeze_imports()
    keras.backend.clear_session()  # with a full garbage collection
    keras.utils.set_random_seed(settings.seed)
    number = int(config.get(TRIAL_NUMBER, 0))
    trial_config = TrialConfig.from_params({k: v for k, v in config.items()
                                            if k != TRIAL_NUMBER})
    workdir = new_workdir("trial")
    try:
        _Trial(trial_config, number, data, settings, objectives, workdir, started).run()
    finally:
        # Quick: Tune waits for this thread before it reuses the worker, and gives up
        # after a few seconds. The full collection comes with the next trial's start.
        remove_workdir(workdir)
        keras.backend.clear_session(free_memory=False)
        if _first_trial_rss is None:
            gc.collect()
            _first_trial_rss = rss_mb()


def _freeze_imports() -> None:
    """Once per worker: move everything alive now (TensorFlow's and Keras's modules, some
    400,000 objects) out of the garbage collector's sight. They live as long as the
    process, and every trial's full collection would otherwise walk them again: 0.2-0.3 s
    a trial instead of 0.02-0.05 s, measured on digits' small CNNs.

    No collection before the freeze: right after the imports it found nothing to free
    (0 unreachable objects in a Ray worker and in 19 fresh processes) and cost the
    first trial 0.16-0.24 s."""
    global _imports_frozen
    if not _imports_frozen:
        gc.freeze()
        _imports_frozen = True


class _Trial:
    """The steps of one trial, sharing its timing and size figures."""

    def __init__(self, config: TrialConfig, number: int, data: Dataset,
                 settings: SearchSettings, objectives: tuple[str, ...], workdir: Path,
                 started: float) -> None:
        self.config = config
        self.number = number
        self.data = data
        self.settings = settings
        self.objectives = objectives
        self.workdir = workdir
        self.timing = {"time_setup_s": 0.0, "time_build_s": 0.0, "time_report_s": 0.0,
                       "time_checkpoint_s": 0.0}
        self.size: dict[str, float] = {}
        self.started = started
        self.reporting = False
        #: The latest epoch reported (a failure reports no earlier one).
        self.epoch = 0

    def run(self) -> None:
        from search.trial.checkpoints import load_best, load_latest
        from search.trial.model import build_model, carry_over
        from search.trial.train import train, training_steps

        checkpoint = tune.get_checkpoint()
        state = None
        if checkpoint is not None:
            try:
                checkpoint.to_directory(str(self.workdir))
                state = read_state(self.workdir)
            except (OSError, TrainingError) as exc:
                # A driver killed between Tune deleting an old checkpoint and saving the
                # snapshot that names the new one leaves a name without files.
                logger.warning("trial %s: its checkpoint cannot be read (%s); it starts "
                               "over", self.number, exc)
                shutil.rmtree(self.workdir, ignore_errors=True)
                self.workdir.mkdir(mode=0o700, exist_ok=True)
        self.timing["time_setup_s"] = time.perf_counter() - self.started
        try:
            if state is not None and state.finished:
                # Ended before the restart (the driver died before it heard): say so again.
                self._measure(load_best(self.workdir))
                self._report({**state.metrics, EPOCH: state.epoch, LAST_EPOCH: True})
                return
            started = time.perf_counter()
            steps = training_steps(self.config, self.data, self.settings.max_epochs)
            if state is not None and self.settings.scheduler == "pbt":
                # The checkpoint may be another trial's, whose config PBT mutated.
                model = carry_over(load_latest(self.workdir, state), self.config,
                                   self.data.input_shape, self.data.num_classes,
                                   self.data.value_scale, training_steps=steps)
            elif state is not None:
                model = load_latest(self.workdir, state)
            else:
                model = build_model(self.config, self.data.input_shape,
                                    self.data.num_classes, self.data.value_scale,
                                    training_steps=steps)
            self.timing["time_build_s"] = time.perf_counter() - started
            self._measure(model)
            train(model, self.config, self.data, max_epochs=self.settings.max_epochs,
                  patience=self.settings.patience, checkpoint_dir=self.workdir,
                  on_epoch=self._on_epoch, shuffle_seed=self.settings.seed, resume=state,
                  checkpoint_interval_s=self.settings.checkpoint_interval,
                  kept_metrics=self._kept_metrics())
        except Exception as exc:
            if self.reporting:  # Tune's own machinery failed: not the trial's error
                raise
            self._report_failure(exc, read_state(self.workdir))

    def _kept_metrics(self) -> dict[str, Any]:
        """Figures of the model the trial keeps (its best epoch's), beyond accuracy: the
        FGSM attack behind the robust_accuracy objective, only when it is optimised."""
        if "robust_accuracy" not in self.objectives:
            return {}
        from search.trial.robustness import OBJECTIVE_EPSILON, fgsm_accuracy

        data = self.data
        return {ROBUST_ACCURACY: lambda model: fgsm_accuracy(
            model, data.x_val, data.y_val, OBJECTIVE_EPSILON, data.value_scale,
            data.value_range)}

    def _measure(self, model: Any) -> None:
        from search.trial.train import inference_latency_ms

        self.size[PARAMS] = float(model.count_params())
        if "latency_ms" in self.objectives:  # timing costs a little; only when optimised
            self.size[LATENCY] = inference_latency_ms(model, self.data.x_val)

    def _on_epoch(self, epoch: Any) -> None:
        self.epoch = epoch.epoch
        self.timing["time_checkpoint_s"] = epoch.checkpoint_seconds
        self._report({**epoch.metrics, EPOCH: epoch.epoch, LAST_EPOCH: epoch.last},
                     checkpoint_dir=epoch.checkpoint_dir)
        inject(self.number, epoch.epoch)

    def _report(self, metrics: dict[str, Any], checkpoint_dir: Path | None = None) -> None:
        checkpoint = tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        started = time.perf_counter()
        self.reporting = True
        tune.report({**metrics, **self.size, **self.timing, WORKER_RSS: rss_mb()},
                    checkpoint=checkpoint)
        self.reporting = False
        self.timing["time_report_s"] += time.perf_counter() - started

    def _report_failure(self, exc: Exception, state: TrainingState | None) -> None:
        """The final result of a trial whose code raised: the error, and the best value
        it reached (the worst possible one if it reached none)."""
        worst = worst_values(self.objectives)
        message = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
        logger.warning("trial %s failed: %s", self.number, message)
        self._report({**worst, **self.size,
                      OBJECTIVE: state.best if state is not None else worst.get(OBJECTIVE, 0.0),
                      EPOCH: max(self.epoch, state.epoch if state is not None else 0),
                      LAST_EPOCH: True,
                      ERROR: message, ERROR_DETAIL: traceback.format_exc()[-_DETAIL_CHARS:]})
