"""End-to-end training entry points used by the CLI and the demo.

* :func:`train_and_register` — load data, fit the TFT, backtest it beside the baselines, track the run in
MLflow,
  register a version and apply the champion gate. Returns a :class:`TrainResult` (``.version``).
* :func:`promote` — move ``champion`` to a version by hand (recorded as forced).
* :func:`load_panel` — the feature panel a config describes.

Example::

    from training.config import load_train_config
    from training.pipeline import train_and_register
    from training.predict import load_predictor

    result = train_and_register(load_train_config("configs/train/tiny.yaml"))
    predictor = load_predictor("champion", model_name=result.model_name)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.frames import Panel, build_panel, stallion_frame, stallion_spec
from training.config import TrainConfig

__all__ = [
    "TrainResult",
    "facts_frame",
    "future_panel",
    "load_panel",
    "train_and_register",
    "backtest_version",
    "promote",
    "STALLION_PATH",
]

STALLION_PATH = Path(__file__).resolve().parent.parent / "data" / "stallion.parquet"


@dataclass
class TrainResult:
    """What a training run produced.

    Attributes:
        model_name: registered model name.
        version: the new version.
        run_id: MLflow run id.
        promoted: whether the gate made it champion.
        reason: the gate's reason.
        summary: backtest figures per model.
        train_seconds: training wall time.
    """

    model_name: str
    version: str
    run_id: str
    promoted: bool
    reason: str
    summary: dict
    train_seconds: float


def facts_frame(config: TrainConfig) -> pd.DataFrame:
    """The sales facts of ``config.data.tenant`` from the Parquet fact store, as a model frame.

    Raises:
        ValueError: the tenant has no sales facts (ingest them first).
    """
    from features.facts import read_sales
    from features.frames import sales_frame
    from features.settings import get_settings

    tenant = config.data.tenant or get_settings().tenant
    sales = read_sales(tenant)
    if sales.height == 0:
        raise ValueError(
            f"data.source=facts: tenant {tenant!r} has no sales facts; ingest sales first "
            "(replenish ingest sales FILE, or features.stallion.load_into_store)"
        )
    return sales_frame(sales)


def load_panel(config: TrainConfig) -> Panel:
    """The feature panel of ``config.data``: Stallion (bundled file or ``data.path``) or the sales facts."""
    if config.data.source == "facts":
        from features.frames import sales_spec

        if config.data.lags:
            raise ValueError("data.lags: seasonal lag inputs are only built for source=stallion")
        df = facts_frame(config)
        if config.data.max_series is not None:
            keys = df[["sku_id", "location_id", "channel_id"]].drop_duplicates()
            keys = keys.sort_values(list(keys.columns)).head(config.data.max_series)
            df = df.merge(keys, on=list(keys.columns))
        return build_panel(df, sales_spec(config.data.freq, static_keys=True))
    path = config.data.path or STALLION_PATH
    df = pd.read_parquet(path)
    if config.data.max_series is not None:
        keys = df[["agency", "sku"]].astype(str).drop_duplicates().sort_values(["agency", "sku"])
        keep = keys.head(config.data.max_series)
        df = df.merge(keep.astype(df[["agency", "sku"]].dtypes.to_dict()), on=["agency", "sku"])
    if any(k < config.fit.horizon for k in config.data.lags):
        raise ValueError(
            f"data.lags={config.data.lags}: each lag must be >= "
            f"fit.horizon={config.fit.horizon} "
            "to be known over the whole horizon"
        )
    lags = tuple(config.data.lags)
    return build_panel(stallion_frame(df, lags), stallion_spec(lags))


def future_panel(
    spec, path: str | Path | None = None, frame: pd.DataFrame | None = None
) -> tuple[Panel, list[str]]:
    """The Stallion panel a model needs to forecast past the history, built with the model's own columns.

    The frame gets the model's seasonal lag columns, then ``spec.horizon`` future periods per series with the
    known inputs carried forward (:func:`features.frames.extend_known`: today's prices and promotions
    continue), the lags of those periods recomputed from history; series with a category the model never saw
    are left out.

    Args:
        spec: the model's :class:`~training.windows.InputSpec` (``predictor.spec``).
        path: Stallion parquet (default: the bundled file).
        frame: the history as a model frame in the spec's columns instead (e.g. :func:`facts_frame`).

    Returns:
        ``(panel, skipped)``: forecast from ``int(panel.last.max()) + 1``; ``skipped`` lists left-out
        series ids.
    """
    from features.frames import add_target_lags, extend_known

    fspec = spec.frame_spec
    lags = [
        int(c.removeprefix("log_volume_lag")) for c in fspec.known_reals if c.startswith("log_volume_lag")
    ]
    df = frame if frame is not None else stallion_frame(pd.read_parquet(path or STALLION_PATH), lags)
    known = pd.Series(True, index=df.index)
    for c in fspec.static_categoricals:  # a category the model never saw has no embedding
        known &= df[c].astype(str).isin(spec.vocab[c])
    gone = df.loc[~known, list(fspec.series_keys)].drop_duplicates().astype(str)
    skipped = ["|".join(row) for row in gone.itertuples(index=False, name=None)]
    future = extend_known(df[known], fspec, spec.horizon)
    if lags:  # the lags of future periods come from the history, not from the carried-forward last row
        future = add_target_lags(future, fspec, lags)
    return build_panel(future, fspec, vocab=spec.vocab), skipped


def _cutoff(panel: Panel, config: TrainConfig) -> int:
    cutoff = panel.n_times - 1 - config.holdout
    if cutoff < config.fit.horizon + (config.fit.min_encoder_length or config.fit.encoder_length // 2):
        raise ValueError(
            f"holdout={config.holdout}: too little history left to train "
            f"({panel.n_times} periods in the panel)"
        )
    return cutoff


def train_and_register(config: TrainConfig, panel: Panel | None = None) -> TrainResult:
    """Fit, backtest, track, register and gate one model.

    Args:
        config: the training config.
        panel: a ready panel (default: :func:`load_panel`).

    Returns:
        The :class:`TrainResult`.
    """
    from training.backtest import rolling_origins, run_backtest
    from training.gate import apply_gate
    from training.plots import best_worst_fan_charts
    from training.predict import Predictor
    from training.registry import client, log_training_run
    from training.tft.estimator import TFTEstimator

    panel = panel if panel is not None else load_panel(config)
    cutoff = _cutoff(panel, config)
    fitted = TFTEstimator(config).fit(panel, cutoff)
    predictor = Predictor(fitted.spec, fitted.model_cfg, fitted.state_dict)
    H = config.fit.horizon
    origins = rolling_origins(panel.n_times, H, config.backtest.origins, config.backtest.step, config.holdout)
    pt = predictor.prepare(panel)
    result = run_backtest(
        panel,
        lambda p, o: predictor.forecast(p, o, pt=pt).quantiles,
        origins,
        H,
        config.fit.season,
        fitted.spec.quantiles,
    )
    figures = best_worst_fan_charts(panel, result)
    tables = {"backtest_by_series.csv": result.by_series, "backtest_by_level.csv": result.by_level}
    run_id, version = log_training_run(config, fitted, result.flat_metrics(), figures, tables)
    import matplotlib.pyplot as plt

    for f in figures.values():
        plt.close(f)
    c = client(config.tracking_uri)
    c.set_model_version_tag(config.name, version, "backtest_origins", ",".join(map(str, origins)))
    decision = apply_gate(
        c, config.name, version, result.summary["model"]["wape"], result.summary[result.best_baseline]["wape"]
    )
    return TrainResult(
        model_name=config.name,
        version=version,
        run_id=run_id,
        promoted=decision.promote,
        reason=decision.reason,
        summary=result.summary,
        train_seconds=fitted.train_seconds,
    )


def backtest_version(config: TrainConfig, version_or_alias: str = "champion", panel: Panel | None = None):
    """Backtest a registered version on ``config``'s data and origins (no training).

    Returns:
        The :class:`~training.backtest.BacktestResult`.
    """
    from training.backtest import rolling_origins, run_backtest
    from training.predict import load_predictor

    panel = panel if panel is not None else load_panel(config)
    pred = load_predictor(version_or_alias, config.name, config.tracking_uri)
    H = pred.spec.horizon
    origins = rolling_origins(panel.n_times, H, config.backtest.origins, config.backtest.step, config.holdout)
    pt = pred.prepare(panel)
    return run_backtest(
        panel,
        lambda p, o: pred.forecast(p, o, pt=pt).quantiles,
        origins,
        H,
        pred.spec.season,
        pred.spec.quantiles,
    )


def promote(version: str, model_name: str, tracking_uri: str | None = None):
    """Make ``version`` champion by hand.

    The decision is recorded on the version, as forced when the gate's rule would have refused.

    Returns:
        The :class:`~training.gate.GateDecision`.
    """
    from training.gate import apply_gate
    from training.registry import client

    c = client(tracking_uri)
    mv = c.get_model_version(model_name, str(version))
    wape = float(mv.tags.get("backtest_wape", "nan"))
    base = float(mv.tags.get("baseline_wape", "nan"))
    return apply_gate(c, model_name, str(version), wape, base if not np.isnan(base) else np.inf, force=True)
