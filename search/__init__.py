"""convsearch: hyperparameter search for Keras CNNs on Ray Tune, Optuna and MLflow.

Run ``python -m search.run --help``. The modules follow the data: `space` -> `sampling`
-> `config` -> `model` -> `train` -> `tracking`, with `engine` running trials on Ray.
"""
