"""MLflow models-from-code entry: a thin pyfunc around the artefact folder (no pickled model object).

``load_context`` reads ``config.json`` + ``spec.json`` + ``weights.pt`` once; ``predict`` takes a long feature
frame (history plus the future rows carrying known inputs, in the columns of the model's ``FrameSpec``) and
returns the long forecast frame of :meth:`training.predict.ModelForecast.to_frame`.
"""

from __future__ import annotations

import mlflow
from mlflow.pyfunc import PythonModel


class TFTPyfunc(PythonModel):
    """Pyfunc wrapper; the artefact key is ``tft``."""

    def load_context(self, context):
        """Load the artefact once per process."""
        from training.artifact import load_artifact
        from training.predict import Predictor

        spec, model_cfg, state = load_artifact(context.artifacts["tft"])
        self.predictor = Predictor(spec, model_cfg, state)

    def predict(self, context, model_input, params=None):
        """Forecast every series in ``model_input`` from one past its last observed target."""
        from features.frames import build_panel

        spec = self.predictor.spec
        panel = build_panel(model_input, spec.frame_spec, vocab=spec.vocab)
        return self.predictor.forecast(panel).to_frame()


mlflow.models.set_model(TFTPyfunc())
