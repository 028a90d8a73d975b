"""A trial worker's lean first import of TensorFlow: Keras imports, trains and saves
without its extras' packages, which import as usual afterwards."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from search.trial.lean_import import keras_extras_skipped
from tests.conftest import REPO

#: Runs in a fresh interpreter, as a new Ray worker does: nothing of TensorFlow, Keras or
#: the extras is loaded before the import under test.
_WORKER = textwrap.dedent("""
    import json, sys, tempfile
    from pathlib import Path
    from search.trial.lean_import import KERAS_EXTRAS, keras_extras_skipped

    with keras_extras_skipped():
        from search.trial.train import configure_tensorflow, train
    configure_tensorflow(1)
    loaded_with_keras = sorted(n for n in KERAS_EXTRAS if sys.modules.get(n) is not None)

    from search.data import load_dataset  # splits with scikit-learn: usable again
    from search.trial.checkpoints import load_best
    from search.trial.config import TrialConfig
    from search.trial.model import build_model

    data = load_dataset("digits", limit=120)
    config = TrialConfig.from_params({"conv_blocks": 1, "filters": 4, "dense_units": 8,
                                      "augmentation.flip": "horizontal",
                                      "augmentation.rotation": 0.1})
    model = build_model(config, data.input_shape, data.num_classes, data.value_scale)
    with tempfile.TemporaryDirectory() as folder:
        outcome = train(model, config, data, max_epochs=2, patience=2,
                        checkpoint_dir=Path(folder))
        restored = load_best(Path(folder))
    import matplotlib.pyplot
    print(json.dumps({"loaded_with_keras": loaded_with_keras, "epochs": outcome.epochs,
                      "restored": restored.count_params() == model.count_params()}))
""")


def _last_line_in_fresh_python(code: str, timeout_s: float) -> str:
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout_s)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def test_keras_trains_and_saves_without_its_extras_which_import_afterwards() -> None:
    result = json.loads(_last_line_in_fresh_python(_WORKER, 300))
    assert result["loaded_with_keras"] == []  # Keras left its extras off
    assert result["epochs"] == 2 and result["restored"]


def test_packages_already_loaded_are_left_alone(monkeypatch) -> None:
    from search.trial import lean_import

    monkeypatch.setattr(lean_import, "KERAS_EXTRAS", ("json", "convsearch_no_such_package"))
    with keras_extras_skipped():
        assert sys.modules["json"] is json
        assert sys.modules["convsearch_no_such_package"] is None
    assert sys.modules["json"] is json
    assert "convsearch_no_such_package" not in sys.modules


def test_a_workers_first_tensorflow_import_is_the_lean_one() -> None:
    # A Ray worker imports the trial's module before its first trial runs; were TensorFlow
    # imported there, the lean import in the trial would come too late to matter.
    probe = ("import sys; import search.engine.trainable; "
             "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    assert _last_line_in_fresh_python(probe, 120) == "[]"
