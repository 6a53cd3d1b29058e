"""Forecasting: global TFT, baselines, backtests, MLflow registry with a champion gate, fast inference.

Public entry points (import from the defining modules):

* ``training.stage.train_tenant(tenant, ...) -> TrainResult`` and ``training.stage.forecast_stage(tenant,
  run_id=...) -> ForecastRunMeta``: the cycle's train and forecast stages on a tenant's own facts (any grid:
  D, W, MS), writing registry versions tagged with the tenant and stored forecasts (``features.forecasts``).
* ``training.pipeline.train_and_register(config, panel)`` / ``load_panel(config)`` / ``promote``: the same
  steps on an explicit config; ``training.config.load_train_config(path_or_dict)`` builds the config.
* ``training.predict.load_predictor(version_or_alias="champion", model_name) -> Predictor``;
  ``Predictor.forecast(panel)`` gives quantiles (N, H, Q) with cold-start flags.
* ``training.baselines`` and ``training.metrics``: the baselines and accuracy metrics on plain arrays.
* ``training.statistical.fit_predict(y, season, horizon, levels, models) -> {model: (N, H, Q)}``:
  statsforecast baselines (naive, seasonal naive, AutoETS, Theta/AutoTheta, CrostonSBA, TSB, ADIDA, IMAPA).
* ``training.served.gate_version`` / ``served_forecast``: the served selection of a version (TFT and
  statsforecast models per demand class, fitted on the validation window before the holdout, gated on the
  holdout, stored with the version) and its application at forecast time; ``training.level_report``: the
  per-level accuracy report (before / after reconciliation) logged to MLflow. See docs/forecasting.md.
* ``training.selection.select(val_forecasts, val_actuals, levels, ...) -> Selection``: model choice or
  ensemble per demand-class segment (or per series) from validation origins before the test window.
* ``training.gate.decide`` / ``apply_gate``: the champion rule.
* ``training.quiet.quiet(verbose=False)``: our dependencies' warnings, logs and progress bars filtered.

Layers of the model (STYLE.md): ``training.tft.module`` (network), ``training.tft.lightning_module`` (training
step), ``training.tft.estimator`` (data + Trainer). Data windows: ``training.windows``.
"""

__all__: list[str] = []
