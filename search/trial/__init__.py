"""One trial: a sample resolved into a `TrialConfig` (`config`), its shapes and parameter
counts without TensorFlow (`architecture`), the Keras CNN (`model`), and its training
with early stopping and checkpoints (`train`). Runs inside a Ray worker, knowing nothing
of Ray or MLflow.
"""
