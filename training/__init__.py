"""Forecasting: global TFT, baselines, backtests, MLflow registry with a champion gate, fast inference.

Public entry points (import from the defining modules):

* ``training.pipeline.train_and_register(config) -> TrainResult`` (``.version``, ``.promoted``): fit,
backtest,
  track, register and gate; ``training.config.load_train_config(path_or_dict)`` builds the config.
* ``training.predict.load_predictor(version_or_alias="champion") -> Predictor``; ``Predictor.forecast(panel)``
  gives quantiles (N, H, Q) with cold-start flags.
* ``training.baselines`` and ``training.metrics``: the baselines and accuracy metrics on plain arrays.
* ``training.statistical.fit_predict(y, season, horizon, levels, models) -> {model: (N, H, Q)}``:
  statsforecast baselines (naive, seasonal naive, AutoETS, Theta/AutoTheta, CrostonSBA, TSB, ADIDA, IMAPA).
* ``training.selection.select(val_forecasts, val_actuals, levels, ...) -> Selection``: model choice or
  ensemble per demand-class segment (or per series) from validation origins before the test window.
* ``training.gate.decide`` / ``apply_gate``: the champion rule.

Layers of the model (STYLE.md): ``training.tft.module`` (network), ``training.tft.lightning_module`` (training
step), ``training.tft.estimator`` (data + Trainer). Data windows: ``training.windows``.
"""

__all__: list[str] = []
