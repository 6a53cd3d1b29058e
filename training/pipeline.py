"""Training entry points on a tenant's facts: panel, fit, backtest, track, register, gate.

* :func:`load_panel` — the feature panel of a config's tenant, from the fact store (any grid: D, W, MS).
* :func:`check_panel` — config checks that need the data (encoder vs series lengths, short series).
* :func:`train_and_register` — fit the TFT, backtest it beside the baselines, track the run in MLflow,
  register a version (tagged with the tenant) and apply the champion gate. Returns a :class:`TrainResult`.
* :func:`backtest_version` — backtest a registered version without training.
* :func:`promote` — move ``champion`` to a version by hand (recorded as forced).

The per-tenant stage (:func:`training.stage.train_tenant`) builds the config from the tenant's grid and
profile and calls these. Example::

    from training.config import load_train_config
    from training.pipeline import load_panel, train_and_register

    cfg = load_train_config({"data": {"tenant": "acme"}, "fit": {"horizon": 7}, "holdout": 7})
    result = train_and_register(cfg, load_panel(cfg))
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from features.frames import Panel, grid_of
from training.config import TrainConfig, TrainConfigError
from training.quiet import ShortSeriesWarning

__all__ = [
    "TrainResult",
    "backtest_version",
    "check_panel",
    "load_panel",
    "promote",
    "residual_frame",
    "train_and_register",
]


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
        tenant: whose data trained it (None for a panel given by the caller without one).
        freq: grid of the panel (``D``, ``W``, ``MS``).
        horizon: periods forecast.
        n_series: series in the panel.
        short_series: ids of series too short to give a training window (see :func:`check_panel`).
        best_baseline: the baseline with the lowest backtest WAPE (the fallback of the forecast stage).
        residuals: backtest residual rows stored (0 when none were written).
        served: what the version serves (``with_tft`` or ``statistical_only``; ``training.served``), empty
            when the WAPE gate of this module decided alone.
        selection: the served selection (``training.selection.Selection.to_dict``), empty likewise.
    """

    model_name: str
    version: str
    run_id: str
    promoted: bool
    reason: str
    summary: dict
    train_seconds: float
    tenant: str | None = None
    freq: str = ""
    horizon: int = 0
    n_series: int = 0
    short_series: list[str] = field(default_factory=list)
    best_baseline: str = ""
    residuals: int = 0
    served: str = ""
    selection: dict = field(default_factory=dict)


def load_panel(config: TrainConfig, *, settings=None, engine=None) -> Panel:
    """The feature panel of ``config.data``: the tenant's sales, promotions and master data.

    The grid is ``config.data.freq`` or read from the sales dates (``features.forecasts.infer_freq``);
    month-end dates are moved onto the month-start grid.

    Raises:
        ValueError: the tenant has no sales facts, or the dates fit no grid (the message says which).
    """
    from features.forecasts import infer_freq
    from features.settings import get_settings
    from training._data import TenantFacts, open_engine, recent_sales, sample_series, tenant_panel

    settings = settings or get_settings()
    tenant = config.data.tenant or settings.tenant
    series = None
    if config.data.max_series is not None:  # drawn from the series active in the last months
        recent = recent_sales(tenant, settings=settings)
        series = sample_series(recent, config.data.max_series, config.fit.seed)
    with open_engine(settings, engine) as eng:
        facts = TenantFacts.read(tenant, settings=settings, engine=eng, series=series)
    freq = config.data.freq or infer_freq(facts.sales["date"])
    spec = facts.spec(freq, config.data.lags, config.data.attributes)
    return tenant_panel(facts, spec)


def _windows_per_series(panel: Panel, config: TrainConfig) -> np.ndarray:
    fit = config.fit
    min_l = fit.min_encoder_length if fit.min_encoder_length is not None else fit.encoder_length // 2
    step = fit.val_step or fit.horizon
    val_origin = panel.n_times - config.holdout - fit.horizon - (fit.val_origins - 1) * step
    lo = np.asarray(panel.first, np.int64) + min_l
    hi = np.minimum(np.asarray(panel.last, np.int64), val_origin - 1) - fit.horizon + 1
    return np.maximum(hi - lo + 1, 0)


def check_panel(config: TrainConfig, panel: Panel) -> list[str]:
    """Refuse configs the data cannot train, before any training; name the series too short to use.

    Returns:
        Ids of the series that give no training window (also warned about with
        :class:`~training.quiet.ShortSeriesWarning`: their count and the first few ids).

    Raises:
        TrainConfigError: the encoder is longer than every series, or no series gives a training window;
            the message names the fields, their values and what the data allows.
    """
    fit = config.fit
    lengths = np.where(panel.last >= panel.first, panel.last - panel.first + 1, 0)
    longest = int(lengths.max()) if len(lengths) else 0
    grid = grid_of(panel.spec.freq)
    if fit.encoder_length > longest:
        raise TrainConfigError(
            f"invalid training config for this data:\n  fit.encoder_length = {fit.encoder_length}: longer "
            f"than the longest series ({longest} periods on the {grid!r} grid); set fit.encoder_length <= "
            f"{longest}"
        )
    counts = _windows_per_series(panel, config)
    if not counts.any():
        min_l = fit.min_encoder_length if fit.min_encoder_length is not None else fit.encoder_length // 2
        val = fit.horizon + (fit.val_origins - 1) * (fit.val_step or fit.horizon)
        need = min_l + fit.horizon + val + config.holdout
        raise TrainConfigError(
            "invalid training config for this data:\n"
            f"  no series gives a training window: one needs fit.min_encoder_length ({min_l}) + fit.horizon "
            f"({fit.horizon}) periods before the validation windows ({val} periods for fit.val_origins = "
            f"{fit.val_origins}) and the holdout ({config.holdout}), {need} periods in all; the longest "
            f"series has {longest} on the {grid!r} grid. Lower fit.encoder_length/min_encoder_length, "
            "fit.horizon, fit.val_origins or holdout"
        )
    ids = np.asarray(panel.series_ids(), dtype=object)
    short = ids[counts == 0].tolist()
    if short:
        warnings.warn(
            f"{len(short)} of {panel.n_series} series are too short to give a training window and are not "
            f"trained on (they are still forecast): {', '.join(short[:5])}{' ...' if len(short) > 5 else ''}",
            ShortSeriesWarning,
            stacklevel=2,
        )
    return short


def _cutoff(panel: Panel, config: TrainConfig) -> int:
    return panel.n_times - 1 - config.holdout


def residual_frame(panel: Panel, result) -> pl.DataFrame:
    """Backtest residuals ``actual - p50`` per unit, origin and horizon step (missing actuals dropped).

    ``origin`` is the forecast origin's period start as days since 1970-01-01.
    """
    if result.forecasts is None:
        return pl.DataFrame(
            schema={"unique_id": pl.String, "origin": pl.Int64, "horizon": pl.Int64, "residual": pl.Float64}
        )
    n_o, N, H, _ = result.forecasts.shape
    p50 = result.forecasts[..., result.levels.index(0.5)]
    res = (result.actuals - p50).reshape(-1)
    origin_days = panel.times[result.origins].astype("datetime64[D]").astype(np.int64)
    frame = pl.DataFrame(
        {
            "unique_id": np.tile(np.repeat(np.asarray(panel.series_ids(), dtype=object), H), n_o).tolist(),
            "origin": np.repeat(origin_days, N * H),
            "horizon": np.tile(np.arange(1, H + 1), n_o * N),
            "residual": res,
        }
    )
    return frame.filter(pl.col("residual").is_not_nan())


def train_and_register(
    config: TrainConfig,
    panel: Panel | None = None,
    *,
    tenant: str | None = None,
    short_series: list[str] | None = None,
    progress=None,
    gate: bool = True,
) -> TrainResult:
    """Fit, backtest, track, register and gate one model.

    Args:
        config: the training config.
        panel: a ready panel (default: :func:`load_panel`, checked with :func:`check_panel`).
        tenant: recorded on the version (tag ``tenant``); its backtest residuals are stored
            (``features.forecasts.write_residuals``). Default ``config.data.tenant``.
        short_series: series :func:`check_panel` named (when the caller checked the panel itself).
        progress: ``progress(done, total)`` after each step (fit, backtest, register, gate).
        gate: apply the WAPE gate here; False leaves the version unpromoted for the caller's gate
            (``training.stage.train_tenant`` gates the served selection, ``training.served``).

    Returns:
        The :class:`TrainResult`.
    """
    from training.backtest import rolling_origins, run_backtest
    from training.gate import apply_gate
    from training.plots import best_worst_fan_charts
    from training.predict import Predictor
    from training.registry import client, log_training_run
    from training.tft.estimator import TFTEstimator

    tick = progress or (lambda done, total: None)
    tenant = tenant or config.data.tenant
    if panel is None:
        panel = load_panel(config)
        short_series = check_panel(config, panel)
    short_series = list(short_series or [])
    fitted = TFTEstimator(config).fit(panel, _cutoff(panel, config))
    tick(1, 4)
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
    tick(2, 4)
    figures = best_worst_fan_charts(panel, result)
    tables = {"backtest_by_series.csv": result.by_series, "backtest_by_level.csv": result.by_level}
    run_id, version = log_training_run(config, fitted, result.flat_metrics(), figures, tables)
    import matplotlib.pyplot as plt

    for f in figures.values():
        plt.close(f)
    c = client(config.tracking_uri)
    tags = {
        "backtest_origins": ",".join(map(str, origins)),
        "best_baseline": result.best_baseline,
        "freq": grid_of(panel.spec.freq),
        "short_series": str(len(short_series)),
    }
    if tenant:
        tags["tenant"] = tenant
        c.set_registered_model_tag(config.name, "tenant", tenant)
    for k, v in tags.items():
        c.set_model_version_tag(config.name, version, k, v)
    tick(3, 4)
    if gate:
        best = result.summary[result.best_baseline]["wape"]
        decision = apply_gate(c, config.name, version, result.summary["model"]["wape"], best)
        promoted, reason = decision.promote, decision.reason
    else:
        promoted, reason = False, "gate left to the caller"
    n_res = 0
    if tenant:
        from features.forecasts import write_residuals
        from features.settings import get_settings

        res = residual_frame(panel, result)
        write_residuals(tenant, version, res, facts_dir=get_settings().facts_dir)
        n_res = res.height
    tick(4, 4)
    return TrainResult(
        model_name=config.name,
        version=version,
        run_id=run_id,
        promoted=promoted,
        reason=reason,
        summary=result.summary,
        train_seconds=fitted.train_seconds,
        tenant=tenant,
        freq=grid_of(panel.spec.freq),
        horizon=H,
        n_series=panel.n_series,
        short_series=short_series,
        best_baseline=result.best_baseline,
        residuals=n_res,
    )


def backtest_version(config: TrainConfig, version_or_alias: str = "champion", panel: Panel | None = None):
    """Backtest a registered version on ``config``'s data and origins (no training).

    The panel is built with the version's own columns and vocabularies (default: from the fact store).

    Returns:
        The :class:`~training.backtest.BacktestResult`.
    """
    from training.backtest import rolling_origins, run_backtest
    from training.predict import load_predictor

    pred = load_predictor(version_or_alias, config.name, config.tracking_uri)
    if panel is None:
        from features.settings import get_settings
        from training._data import TenantFacts, open_engine, tenant_panel

        settings = get_settings()
        with open_engine(settings) as eng:
            facts = TenantFacts.read(config.data.tenant or settings.tenant, settings=settings, engine=eng)
        facts.sales = _known_series(facts, pred.spec)
        panel = tenant_panel(facts, pred.spec.frame_spec, vocab=pred.spec.vocab)
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


def _known_series(facts, spec) -> pl.DataFrame:
    """The sales of the series whose ids and attributes the model has embeddings for."""
    keys = ["sku_id", "location_id", "channel_id"]
    ok = facts.sales.select(keys).unique()
    for c in spec.frame["static_categoricals"]:
        vocab = spec.vocab[c]
        if c in keys:
            ok = ok.filter(pl.col(c).is_in(vocab))
        else:
            table = facts.skus if c in facts.skus.columns else facts.locations
            key = "sku_id" if c in facts.skus.columns else "location_id"
            attr = table.select(pl.col(key), pl.col(c).cast(pl.String).fill_null("unknown"))
            ok = ok.join(attr, on=key, how="left").filter(pl.col(c).fill_null("unknown").is_in(vocab)).drop(c)
    return facts.sales.join(ok, on=keys, how="semi")


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
