"""convsearch: hyperparameter search for Keras CNNs on Ray Tune, Optuna and MLflow.

Run ``python -m search.run --help``. The packages follow the data: `space` (file ->
validated space -> one sample) -> `trial` (config -> model -> training) -> `tracking`
(MLflow), with `engine` running trials on Ray and `pipeline` the one entry point from a
request to a registered model.
"""
