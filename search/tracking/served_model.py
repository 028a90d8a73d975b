"""The registered model's serving code, logged with it as an MLflow model from code.

MLflow copies this file into every registered model and runs it to serve the model, so
serving needs MLflow, Keras and TensorFlow, not convsearch. It loads the model's Keras
file in Keras's safe mode (a model is data, never code) and predicts quietly: MLflow's
own Keras flavor calls ``predict`` with Keras's default progress bars, which would write
into every caller's standard output (a serving log, a notebook, a pipe).
"""

import mlflow.models
import mlflow.pyfunc
from mlflow.types.type_hints import TypeFromExample

#: Name of the Keras file among the logged model's artifacts.
KERAS_ARTIFACT = "keras_model"


class QuietKerasClassifier(mlflow.pyfunc.PythonModel):
    """Class probabilities for a batch of raw images (the model rescales them itself)."""

    def load_context(self, context):
        import keras

        self.model = keras.saving.load_model(context.artifacts[KERAS_ARTIFACT],
                                             safe_mode=True)

    # Images are arrays like the logged input example (MLflow's own hint for that).
    def predict(self, context, model_input: TypeFromExample, params=None):
        import numpy as np

        images = getattr(model_input, "values", model_input)  # a DataFrame's array
        return self.model.predict(np.asarray(images, dtype="float32"), verbose=0)


mlflow.models.set_model(QuietKerasClassifier())
