"""The trainer: per-epoch reports and checkpoints, early stopping, divergence, and
continuing from a checkpoint."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

from search.errors import TrainingError
from search.metrics import EPOCH_METRICS, MONITOR, OBJECTIVE
from search.trial import train as trainer
from search.trial.checkpoints import LATEST_FILE, TrainingState, load_latest, read_state
from search.trial.config import TrialConfig
from search.trial.model import build_model
from search.trial.train import (
    CHECKPOINT_FILE,
    evaluate,
    load_checkpoint,
    train,
)


def _model(data, **kwargs):
    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(0)
    config = TrialConfig.from_params({"conv_blocks": 1, "filters": 8, "dense_units": 16,
                                      **kwargs})
    return config, build_model(config, data.input_shape, data.num_classes, data.value_scale)


def test_every_epoch_is_reported_with_its_checkpoint(small_digits, tmp_path):
    config, model = _model(small_digits, optimizer="adam", learning_rate=0.01)
    reports = []

    def on_epoch(report):
        # The folder holds this epoch when the report goes out: its state, the best model,
        # and the latest one when it is not the best.
        state = read_state(report.checkpoint_dir)
        assert state.epoch == report.epoch and state.finished == report.last
        assert (report.checkpoint_dir / CHECKPOINT_FILE).is_file()
        assert (report.checkpoint_dir / LATEST_FILE).is_file() == (not report.improved)
        reports.append(report)

    outcome = train(model, config, small_digits, max_epochs=4, patience=4,
                    checkpoint_dir=tmp_path, on_epoch=on_epoch)
    assert [r.epoch for r in reports] == [1, 2, 3, 4]
    assert outcome.epochs == 4
    best = -1.0
    for report in reports:
        assert set(EPOCH_METRICS) | {OBJECTIVE} <= set(report.metrics)
        improved = report.metrics[MONITOR] > best
        best = max(best, report.metrics[MONITOR])
        assert report.metrics[OBJECTIVE] == best
        assert report.improved == improved
    assert [r.last for r in reports] == [False, False, False, True]
    assert outcome.best_val_accuracy == best
    assert best > 0.5  # it learned


def test_early_stopping_restores_the_best_epoch(small_digits, tmp_path):
    # A learning rate this high makes validation accuracy peak early and wander.
    config, model = _model(small_digits, optimizer="sgd", learning_rate=1.5)
    reports = []
    outcome = train(model, config, small_digits, max_epochs=30, patience=2,
                    checkpoint_dir=tmp_path, on_epoch=reports.append)
    assert outcome.epochs < 30
    assert reports[-1].last
    assert outcome.epochs - outcome.best_epoch == 2
    _, accuracy = model.evaluate(small_digits.x_val, small_digits.y_val, verbose=0)
    assert accuracy == pytest.approx(outcome.best_val_accuracy, abs=1e-6)
    saved = load_checkpoint(tmp_path)
    _, saved_accuracy = saved.evaluate(small_digits.x_val, small_digits.y_val, verbose=0)
    assert saved_accuracy == pytest.approx(outcome.best_val_accuracy, abs=1e-6)


def test_kept_metrics_describe_the_best_epochs_model(small_digits, tmp_path):
    # Validation accuracy wanders at this learning rate, so later epochs are not the best.
    config, model = _model(small_digits, optimizer="sgd", learning_rate=1.5)
    measured = []

    def kept_accuracy(kept):
        measured.append(len(reports) + 1)
        return float(kept.evaluate(small_digits.x_val, small_digits.y_val, verbose=0)[1])

    reports = []
    train(model, config, small_digits, max_epochs=8, patience=8, checkpoint_dir=tmp_path,
          on_epoch=reports.append, kept_metrics={"kept_accuracy": kept_accuracy})
    assert measured == [r.epoch for r in reports if r.improved]
    assert len(measured) < len(reports)  # some epochs were not the best
    for report in reports:  # every epoch reports the best epoch's model
        assert report.metrics["kept_accuracy"] == pytest.approx(report.metrics[OBJECTIVE],
                                                                abs=1e-6)
    # A continued run reports the kept value from its checkpoint until a new best.
    state = read_state(tmp_path)
    assert state.metrics["kept_accuracy"] == reports[-1].metrics["kept_accuracy"]
    unbeatable = dataclasses.replace(state, best=1.01, finished=False)
    more = []
    train(load_latest(tmp_path, state), config, small_digits, max_epochs=9, patience=9,
          checkpoint_dir=tmp_path, on_epoch=more.append, resume=unbeatable,
          kept_metrics={"kept_accuracy": kept_accuracy})
    assert more[0].metrics["kept_accuracy"] == state.metrics["kept_accuracy"]


def test_several_batches_per_call_train_the_same_weights_as_one(small_digits, tmp_path,
                                                                monkeypatch):
    # Batches of 8 images give more batches an epoch than one call takes, a short last call
    # and a short last batch; the augmentation draws random numbers every batch.
    config = TrialConfig.from_params({"conv_blocks": 1, "filters": 8, "dense_units": 16,
                                      "batch_size": 8, "augmentation.rotation": 0.1})
    per_call = trainer.STEPS_PER_EXECUTION
    batches = -(-len(small_digits.y_train) // config.batch_size)
    assert batches > per_call > 1 and batches % per_call

    calls = []

    class CountingTerminateOnNaN(keras.callbacks.TerminateOnNaN):
        """The trainer's own callback, counting Keras's returns to Python."""

        def on_train_batch_end(self, batch, logs=None):
            calls.append(batch)
            super().on_train_batch_end(batch, logs)

    monkeypatch.setattr(keras.callbacks, "TerminateOnNaN", CountingTerminateOnNaN)

    def trained(steps_per_call, min_batches=0):
        monkeypatch.setattr(trainer, "STEPS_PER_EXECUTION", steps_per_call)
        monkeypatch.setattr(trainer, "MULTI_BATCH_MIN_BATCHES", min_batches)
        keras.backend.clear_session(free_memory=False)
        keras.utils.set_random_seed(0)
        model = build_model(config, small_digits.input_shape, small_digits.num_classes,
                            small_digits.value_scale)
        reports = []
        folder = tmp_path / f"{steps_per_call}-{min_batches}"
        calls.clear()
        train(model, config, small_digits, max_epochs=2, patience=2, checkpoint_dir=folder,
              on_epoch=reports.append)
        return model, [report.metrics for report in reports], folder, len(calls)

    several, several_metrics, folder, several_calls = trained(per_call)
    one, one_metrics, _, one_calls = trained(1)
    assert (several_calls, one_calls) == (2 * -(-batches // per_call), 2 * batches)
    # A run shorter than the least that repays the loop's tracing goes batch by batch.
    *_, short_calls = trained(per_call, min_batches=2 * batches + 1)
    assert short_calls == 2 * batches
    for ours, keras_default in zip(several.get_weights(), one.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, keras_default)
    assert several_metrics == one_metrics
    # The setting was the training run's: the model and its checkpoint are as compiled.
    assert several.steps_per_execution == 1
    assert load_checkpoint(folder).steps_per_execution == 1


def test_the_training_step_is_traced_once(small_digits, tmp_path):
    """Variables created in the first step would make TensorFlow trace it twice (see
    `build_training_variables`); the step's Python runs once per trace."""
    config, model = _model(small_digits, optimizer="adam", learning_rate=0.01)
    traced = []
    step = model.train_step

    def counted_step(data):
        traced.append(data)
        return step(data)

    model.train_step = counted_step
    train(model, config, small_digits, max_epochs=2, patience=2, checkpoint_dir=tmp_path)
    assert len(traced) == 1


def test_nan_loss_is_a_training_error(small_digits, tmp_path):
    # Pixels near float32's limit overflow the activations to inf, so the loss diverges.
    x = small_digits.x_train * np.float32(1e37)
    broken = dataclasses.replace(small_digits, x_train=x)
    config, model = _model(broken)
    with pytest.raises(TrainingError, match=r"loss became NaN or infinite in epoch 1 "
                                            r"\(optimizer adam"):
        train(model, config, broken, max_epochs=3, patience=3, checkpoint_dir=tmp_path)


def test_evaluate_reports_test_metrics(small_digits, tmp_path):
    config, model = _model(small_digits, learning_rate=0.01)
    train(model, config, small_digits, max_epochs=2, patience=2, checkpoint_dir=tmp_path)
    metrics = evaluate(load_checkpoint(tmp_path), small_digits)
    assert set(metrics) == {"test_loss", "test_accuracy"}
    assert 0.0 <= metrics["test_accuracy"] <= 1.0


def test_missing_checkpoint_is_a_training_error(tmp_path):
    with pytest.raises(TrainingError, match="cannot load checkpoint"):
        load_checkpoint(tmp_path)


def test_inference_latency_is_a_positive_per_image_time(small_digits):
    from search.trial.train import inference_latency_ms

    _, model = _model(small_digits)
    latency = inference_latency_ms(model, small_digits.x_val)
    assert 0.0 < latency < 100.0  # milliseconds per image for a tiny CNN


def test_input_pipeline_batches_shuffles_and_covers_every_example(small_digits):
    from search.trial.train import EVALUATION_BATCH, input_pipeline

    def epoch(batches):
        labels, sizes = [], []
        for _, y in batches:
            labels += list(np.asarray(y))
            sizes.append(len(y))
        return labels, sizes

    train_batches, val_batches = input_pipeline(small_digits, 32, seed=3)
    first, sizes = epoch(train_batches)
    second, _ = epoch(train_batches)
    assert sorted(first) == sorted(small_digits.y_train.tolist())
    assert sizes[:-1] == [32] * (len(sizes) - 1)
    assert first != small_digits.y_train.tolist()  # shuffled
    assert first != second  # and reshuffled every epoch
    again, _ = epoch(input_pipeline(small_digits, 32, seed=3)[0])
    assert again == first  # the same seed gives the same order
    val_labels, val_sizes = epoch(val_batches)
    assert val_labels == small_digits.y_val.tolist()  # validation keeps its order
    assert max(val_sizes) <= EVALUATION_BATCH


def test_training_continues_from_its_latest_checkpoint(small_digits, tmp_path):
    config, model = _model(small_digits, optimizer="adam", learning_rate=0.01)
    first = []
    with pytest.raises(KeyboardInterrupt):  # the driver dies after epoch 2
        def on_epoch(report):
            first.append(report)
            if report.epoch == 2:
                raise KeyboardInterrupt
        train(model, config, small_digits, max_epochs=5, patience=5, checkpoint_dir=tmp_path,
              on_epoch=on_epoch)
    steps = int(model.optimizer.iterations)

    state = read_state(tmp_path)
    assert (state.epoch, state.finished) == (2, False)
    restored = load_latest(tmp_path, state)
    assert int(restored.optimizer.iterations) == steps  # the optimizer's state came back
    second = []
    outcome = train(restored, config, small_digits, max_epochs=5, patience=5,
                    checkpoint_dir=tmp_path, on_epoch=second.append, resume=state)
    assert [r.epoch for r in second] == [3, 4, 5]
    assert outcome.epochs == 5 and second[-1].last
    assert int(restored.optimizer.iterations) == steps * 5 // 2
    # The best value carries over: it never drops below the first run's best.
    assert second[0].metrics[OBJECTIVE] >= first[-1].metrics[OBJECTIVE]
    # The checkpoint's learning curve is the first run's epochs, then the second's.
    history = read_state(tmp_path).history
    assert history == [r.metrics for r in first] + [r.metrics for r in second]


def test_a_continued_run_keeps_its_patience_count(small_digits, tmp_path):
    config, model = _model(small_digits, optimizer="adam", learning_rate=0.01)
    train(model, config, small_digits, max_epochs=1, patience=3, checkpoint_dir=tmp_path)
    state = read_state(tmp_path)
    # As if two epochs without improvement had passed, on an unbeatable best.
    unbeatable = TrainingState(epoch=3, best=1.01, best_epoch=1, wait=2, finished=False,
                               metrics=state.metrics)
    reports = []
    outcome = train(load_latest(tmp_path, state), config, small_digits, max_epochs=10,
                    patience=3, checkpoint_dir=tmp_path, on_epoch=reports.append,
                    resume=unbeatable)
    assert [r.epoch for r in reports] == [4]  # the third epoch without improvement stops it
    assert reports[-1].last and outcome.best_epoch == 1


def test_checkpoints_come_with_best_and_last_epochs_and_else_at_the_interval(small_digits,
                                                                            tmp_path):
    # A learning rate this high makes validation accuracy wander: some epochs are not
    # the best, and with a long interval they are not checkpointed.
    config, model = _model(small_digits, optimizer="sgd", learning_rate=1.5)
    reports = []
    train(model, config, small_digits, max_epochs=8, patience=8, checkpoint_dir=tmp_path,
          on_epoch=reports.append, checkpoint_interval_s=3600)
    assert any(not r.improved for r in reports[:-1])
    for report in reports:
        assert (report.checkpoint_dir is not None) == (report.improved or report.last)
    assert read_state(tmp_path).epoch == 8

    reports.clear()
    _, model = _model(small_digits, optimizer="sgd", learning_rate=1.5)
    train(model, config, small_digits, max_epochs=3, patience=8, checkpoint_dir=tmp_path,
          on_epoch=reports.append, checkpoint_interval_s=0)
    assert all(r.checkpoint_dir is not None for r in reports)


@pytest.mark.parametrize("schedule", ["cosine", "step"])
def test_a_decaying_schedule_lowers_the_learning_rate_over_training(small_digits, tmp_path,
                                                                   schedule):
    from search.trial.train import training_steps

    keras.backend.clear_session(free_memory=False)
    config = TrialConfig.from_params({"conv_blocks": 1, "filters": 4, "dense_units": 8,
                                      "learning_rate": 0.01, "lr_schedule": schedule})
    steps = training_steps(config, small_digits, max_epochs=4)
    model = build_model(config, small_digits.input_shape, small_digits.num_classes,
                        small_digits.value_scale, training_steps=steps)
    train(model, config, small_digits, max_epochs=4, patience=4, checkpoint_dir=tmp_path)
    assert int(model.optimizer.iterations) == steps
    final = float(model.optimizer.learning_rate)
    assert final < 0.01 * (0.2 if schedule == "cosine" else 0.3)  # 0.5^3 for step


def test_plateau_schedule_and_label_smoothing_train_and_evaluate(small_digits, tmp_path):
    from search.trial.model import one_hot_labels, plateau_callback

    config, model = _model(small_digits, learning_rate=0.01, lr_schedule="plateau",
                           label_smoothing=0.1)
    assert isinstance(plateau_callback(config), keras.callbacks.ReduceLROnPlateau)
    assert one_hot_labels(model) and model.loss.get_config()["label_smoothing"] == 0.1
    outcome = train(model, config, small_digits, max_epochs=3, patience=3,
                    checkpoint_dir=tmp_path)
    assert outcome.best_val_accuracy > 0.3
    assert 0 <= evaluate(model, small_digits)["test_accuracy"] <= 1
