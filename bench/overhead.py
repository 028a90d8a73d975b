"""``python -m bench.overhead --trials N --epochs E``: what running trials through the
full search costs, next to bare ``model.fit``.

The same N fixed configs (one CNN, N learning rates from a generated grid space) are
trained for exactly E epochs each, on the embedded digits:

(a)   bare ``model.fit`` calls in this process, one after another, with Keras's defaults
      (one batch per call into TensorFlow): the limit, a user's own loop;
(a*)  the same with as many batches per call as the trainer takes for such a run
      (``steps_per_call``: 8 for long runs, 1 for short ones): how much of (a') - (a)
      that setting makes;
(a')  the product's trainer in this process (tf.data pipeline, EarlyStopping that never
      fires, checkpoints as a search writes them: every best epoch, the last one, and
      others every ``--checkpoint-interval`` seconds);
(a'') the same with a checkpoint after every epoch: (a'') - (a') is what checkpointing
      every epoch would add;
(b1)  the full search (`search.pipeline.execute`), one trial at a time: Ray Tune (no
      scheduler), checkpoints persisted by Tune, the experiment snapshots that make it
      resumable, MLflow writes (SQLite) in a background thread;
(b2)  the full search with the default concurrency for this machine.

A search's time is counted from the call to `execute` (which starts its own Ray
instance, as a user's search does, and opens the MLflow store) until its last trial
ends; what comes after (waiting for the last MLflow writes, evaluating the best model on
the test split and registering it) is shown on its own, once per search. The bare loop already uses
every core through TensorFlow's own threads, so it is the limit for both searches.
Prints the runs, the ratio (b)/(a), and where (b1)'s extra time goes. Everything runs
side by side in one process run, since the machines are noisy.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from search.memory import exit_after_heavy_imports
from search.observers import SearchObserver, TrialResult
from search.settings import DEFAULT_CHECKPOINT_INTERVAL_S as DEFAULT_INTERVAL
from search.settings import SearchSettings


def fixed_space(trials: int, epochs: int) -> str:
    """A grid space with exactly `trials` points: one CNN, `trials` learning rates."""
    rates = [round(1e-3 * (10 ** (i / max(1, trials - 1))), 6) for i in range(trials)]
    return (f"description: {trials} fixed configs for bench.overhead\n"
            f"learning_rate: {{grid: {rates}}}\n"
            "optimizer: adam\nconv_blocks: 2\nfilters: 32\nkernel_size: 3\npooling: max\n"
            "dense_units: 64\nbatch_size: 32\n")


class TrialTimes(SearchObserver):
    """Keeps each trial's latest ``time_*`` metrics, how long after its start (in the
    driver) its first epoch was reported, and when the last trial ended."""

    def __init__(self) -> None:
        self.created = time.perf_counter()
        self.first_start = 0.0
        self.latest: dict[str, dict[str, float]] = {}
        self.started: dict[str, float] = {}
        self.first_report: dict[str, float] = {}
        self.last_end = 0.0

    def trial_started(self, trial_id: str, params: dict, number: int = 0) -> None:
        self.started[trial_id] = time.perf_counter()
        self.first_start = self.first_start or self.started[trial_id] - self.created

    def epoch_ended(self, trial_id: str, epoch: int, metrics: dict[str, float]) -> None:
        self.latest[trial_id] = {k: v for k, v in metrics.items() if k.startswith("time_")}
        if epoch == 1:
            self.first_report[trial_id] = time.perf_counter() - self.started[trial_id]

    def trial_ended(self, result: TrialResult) -> None:
        self.last_end = time.perf_counter()

    def total(self, key: str) -> float:
        return sum(times.get(key, 0.0) for times in self.latest.values())


def bare_loop(configs: list, data: Any, epochs: int, *, trainer: bool,
              interval: float = 0.0, steps_per_call: int = 1) -> float:
    """Seconds to train `configs` one after another in this process: with the product's
    trainer, or with bare ``model.fit`` (`steps_per_call` batches per call)."""
    import keras

    from search.trial.model import build_model
    from search.trial.train import batches_per_call, train

    started = time.perf_counter()
    for config in configs:
        keras.backend.clear_session(free_memory=False)
        keras.utils.set_random_seed(0)
        model = build_model(config, data.input_shape, data.num_classes, data.value_scale)
        if trainer:
            with tempfile.TemporaryDirectory() as workdir:
                train(model, config, data, max_epochs=epochs, patience=epochs + 1,
                      checkpoint_dir=Path(workdir), checkpoint_interval_s=interval)
        else:
            with batches_per_call(model, steps_per_call):
                model.fit(data.x_train, data.y_train, batch_size=config.batch_size,
                          epochs=epochs, validation_data=(data.x_val, data.y_val), verbose=0)
    return time.perf_counter() - started


def full_search(space_file: Path, trials: int, epochs: int, concurrency: int | None,
                workdir: Path, name: str) -> dict[str, Any]:
    """One search through the public entry point; seconds until its last trial ended,
    and after."""
    from search.pipeline import execute, prepare
    from search.request import SearchRequest

    settings = SearchSettings(name=name, algorithm="grid", scheduler="none", trials=trials,
                              max_epochs=epochs, patience=epochs + 1,
                              concurrency=concurrency, storage=workdir / "ray")
    request = SearchRequest(space=str(space_file), settings=settings, experiment="bench",
                            tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}",
                            model_name=f"bench-{name}")
    prepared = prepare(request)
    times = TrialTimes()
    started = time.perf_counter()
    report = execute(prepared, [times])
    ended = time.perf_counter()
    return {"seconds": times.last_end - started, "after": ended - times.last_end,
            "epochs": sum(t.epochs for t in report.outcome.trials),
            "setup": times.total("time_setup_s"), "report": times.total("time_report_s"),
            "build": times.total("time_build_s"),
            "checkpoint": times.total("time_checkpoint_s"),
            "first_report": sum(times.first_report.values()),
            "start_up": times.first_start,
            "trials": len(report.outcome.trials)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8, help="fixed configs to train")
    parser.add_argument("--epochs", type=int, default=20, help="epochs per config")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from search.data import load_dataset
    from search.space import parse_space
    from search.space.sampling import grid_points
    from search.trial.config import TrialConfig
    from search.trial.train import steps_per_call, training_steps

    data = load_dataset("digits")
    text = fixed_space(args.trials, args.epochs)
    space = parse_space(text, path="bench-overhead.yaml")
    points, _ = grid_points(space, data.input_shape, data.num_classes)
    configs = [TrialConfig.from_params(p) for p in points]
    per_call = steps_per_call(training_steps(configs[0], data, args.epochs))
    epochs_total = args.trials * args.epochs

    bare_loop(configs[:1], data, 1, trainer=False)  # warm TensorFlow up, as workers are
    bare = bare_loop(configs, data, args.epochs, trainer=False)
    bare_product = bare_loop(configs, data, args.epochs, trainer=False,
                             steps_per_call=per_call)
    trainer = bare_loop(configs, data, args.epochs, trainer=True, interval=DEFAULT_INTERVAL)
    every_epoch = bare_loop(configs, data, args.epochs, trainer=True, interval=0.0)
    with tempfile.TemporaryDirectory() as tmp:
        space_file = Path(tmp) / "bench-overhead.yaml"
        space_file.write_text(text)
        one = full_search(space_file, args.trials, args.epochs, 1, Path(tmp), "one")
        # A search runs no more trials at once than it has: with one, (b2) is (b1).
        default = one if args.trials == 1 else full_search(
            space_file, args.trials, args.epochs, None, Path(tmp), "all")

    console = Console(width=120)
    runs = Table(title=f"{args.trials} configs x {args.epochs} epochs on digits, "
                       f"{os.cpu_count()} CPUs")
    for column in ("run", "seconds", "epochs", "epochs/s", "ratio to (a)"):
        runs.add_column(column, justify="right" if column != "run" else "left")
    same = " (is b1: one trial)" if default is one else ""
    rows = [("(a) bare model.fit, Keras's defaults", bare, epochs_total),
            (f"(a*) bare model.fit, {per_call} batches per call", bare_product,
             epochs_total),
            ("(a') product trainer, in process", trainer, epochs_total),
            ("(a'') product trainer, a checkpoint every epoch", every_epoch, epochs_total),
            ("(b1) full search, 1 trial at a time", one["seconds"], one["epochs"]),
            (f"(b2) full search, default concurrency{same}", default["seconds"],
             default["epochs"])]
    for label, seconds, epochs in rows:
        runs.add_row(label, f"{seconds:.1f}", str(epochs), f"{epochs / seconds:.2f}",
                     f"{seconds / bare:.2f}")
    console.print(runs)
    console.print(f"ratio (b)/(a): {one['seconds'] / bare:.2f} (one at a time), "
                  f"{default['seconds'] / bare:.2f} (default concurrency); (b1)/(a*): "
                  f"{one['seconds'] / bare_product:.2f}")
    console.print(f"after the trials, once per search (last MLflow writes, test evaluation, "
                  f"registering the best model): {one['after']:.1f} s (b1), "
                  f"{default['after']:.1f} s (b2)")

    # The search runs the product's trainer, so its extra cost is measured against (a').
    extra = one["seconds"] - trainer
    parts = Table(title="Where (b1)'s time beyond (a') goes: seconds over the search, and per "
                        "trial. Driver and worker run in parallel, so parts can overlap.")
    parts.add_column("component")
    parts.add_column("seconds", justify="right")
    parts.add_column("per trial", justify="right")
    parts.add_column("share of (b1) - (a')", justify="right")
    bare_epoch = trainer / epochs_total
    start_latency = one["first_report"] - one["setup"] - one["build"] - one["trials"] * bare_epoch
    known = [("search start-up until the first trial starts (Ray's start beside the MLflow "
              "store's opening, then Tune and the trial's worker process)", one["start_up"]),
             ("worker start before the trial runs (process, imports incl. TensorFlow; "
              "workers are reused, so mostly the first trial)", start_latency),
             ("trial set-up inside the trial function", one["setup"]),
             ("inside tune.report (metrics, persisting checkpoints, waiting for the driver "
              "to take each result and snapshot the experiment)", one["report"]),
             ("writing checkpoints in the trial (also in (a'))", one["checkpoint"])]
    for label, seconds in known:
        parts.add_row(label, f"{seconds:.2f}", f"{seconds / one['trials']:.3f}",
                      f"{seconds / extra:.0%}" if extra > 0 else "-")
    console.print(parts)
    console.print(f"(b1) - (a') = {extra:.2f} s. The parts are measured separately and can "
                  "overlap (the first report includes the first epoch's graph tracing), so "
                  "they need not add up to it. MLflow is written from a background thread "
                  "of the driver, off the trials' path.")
    console.print(f"(a*) - (a): {bare_product - bare:+.2f} s: the trainer's "
                  f"{per_call} batches per call. (a') - (a*): "
                  f"{trainer - bare_product:+.2f} s: the trainer's tf.data pipeline "
                  "(cached, prefetched) against model.fit on NumPy arrays, and its "
                  "training variables built before fit (one trace of the training step "
                  "instead of two), callbacks and checkpoint writes included. (a'') - (a'): "
                  f"{every_epoch - trainer:+.2f} s: checkpointing every epoch.")


if __name__ == "__main__":
    main()
    exit_after_heavy_imports(0)
