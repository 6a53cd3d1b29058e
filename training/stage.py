"""The train and forecast stages of a tenant's cycle: its own facts in, versioned facts out.

* :func:`train_tenant` — train the tenant's model on its sales facts (grid read from the data or its
  profile), backtest it beside the baselines, register a version tagged ``tenant=<t>`` under the tenant's
  model name (``features.profile.model_name_for``), apply the champion gate and store the backtest
  residuals (``features.forecasts.write_residuals``).
* :func:`forecast_stage` — forecast every planning unit (and every series with recent sales) with the
  tenant's champion version, P10..P90, and store the run (``features.forecasts.write_forecasts``, stage
  ``base``) with the model version and the sales watermark. Each unit is served through the version's
  selection (``training.served``): per segment (demand class x history length) the TFT, a statsforecast
  model or an ensemble, as chosen on validation (``source`` ``model:<name>``, ``baseline:<model>`` or
  ``ensemble:<a>+<b>``). Units the TFT cannot forecast (a SKU, location or attribute it has no embedding
  for, or less history than its shortest encoder) get the statistical models of their segment, marked
  ``cold_start``; those with less than a season of history are forecast from similar items
  (``similar:<attribute>``, :func:`_cold_from_peers`). Versions trained
  before selections were stored serve the TFT with the gate's hand-written baseline as the fallback.
* :func:`resolve_train_config` — the training config of a tenant: grid defaults, then the profile's
  ``train`` settings, then the caller's overrides, validated before any training.
* :func:`training.quiet.quiet` — the output filter the CLI, the cycle and the demo wrap their work in.

Both stages read only the stores (sales, promotions, master data, the registry) and write only facts and
registry entries, so each can be re-run alone; re-running :func:`forecast_stage` with the same ``run_id``
replaces that run.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import polars as pl

from training.config import TrainConfig, TrainConfigError, config_error
from training.pipeline import TrainResult
from training.quiet import quiet

__all__ = [
    "DEFAULT_HORIZON",
    "GRID_DEFAULTS",
    "TRAIN_SERIES_CAP",
    "TrainResult",
    "forecast_stage",
    "quiet",
    "resolve_train_config",
    "tenant_config",
    "train_tenant",
]

Progress = Callable[[int, int], None]

#: Encoder length and season per grid (daily, weekly, monthly).
GRID_DEFAULTS = {"D": (56, 7), "W": (52, 52), "MS": (24, 12)}
#: Horizon per grid when neither the profile nor the planning units name one.
DEFAULT_HORIZON = {"D": 28, "W": 13, "MS": 6}
#: Series trained on at most, unless ``data.max_series`` says otherwise (a global model learns from a sample).
TRAIN_SERIES_CAP = 20_000
#: Fallback when a model version records no best baseline.
_FALLBACK_BASELINE = "moving_average"


def _noop(done: int, total: int) -> None:
    return None


def _merge(base: dict, new: dict) -> dict:
    out = dict(base)
    for k, v in (new or {}).items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def resolve_train_config(
    tenant: str,
    *,
    freq: str,
    profile=None,
    horizon_periods: int | None = None,
    n_series: int | None = None,
    overrides: dict | None = None,
) -> TrainConfig:
    """The training config of ``tenant``: defaults of its grid, its profile's settings, then ``overrides``.

    Defaults: encoder and season of :data:`GRID_DEFAULTS`; horizon from the profile, else the largest
    ``planning_units.horizon_periods``, else :data:`DEFAULT_HORIZON`, capped at 4 seasons; holdout and
    backtest step equal to the horizon (one backtest origin); at most :data:`TRAIN_SERIES_CAP` series.

    Args:
        tenant: whose data.
        freq: the grid (``D``, ``W``, ``MS``) read from the data (the profile's ``freq`` wins over it).
        profile: the tenant's ``features.profile.TenantProfile`` (None: defaults).
        horizon_periods: the largest ``horizon_periods`` of the tenant's planning units, if any.
        n_series: series available (to apply the cap).
        overrides: nested ``TrainConfig`` fields that win over everything.

    Raises:
        TrainConfigError: a field is invalid or the combination is impossible (e.g. holdout < horizon);
            the message names the field, its value and what is allowed.
    """
    from features.profile import TenantProfile, model_name_for

    profile = profile or TenantProfile()
    user = _merge(profile.train or {}, overrides or {})
    freq = (user.get("data") or {}).get("freq") or profile.freq or freq
    if freq not in GRID_DEFAULTS:
        raise TrainConfigError(f"invalid training config:\n  data.freq = {freq!r}: expected one of D, W, MS")
    enc, season = GRID_DEFAULTS[freq]
    season = (user.get("fit") or {}).get("season", season)
    horizon = min(profile.horizon or horizon_periods or DEFAULT_HORIZON[freq], 4 * season)
    horizon = (user.get("fit") or {}).get("horizon", horizon)
    base = {
        "name": model_name_for(tenant, profile),
        "data": {"tenant": tenant, "freq": freq},
        "fit": {"encoder_length": enc, "season": season, "horizon": horizon, "progress": False},
        "holdout": horizon,
        "backtest": {"origins": 1, "step": horizon},
    }
    if n_series is not None and n_series > TRAIN_SERIES_CAP:
        base["data"]["max_series"] = TRAIN_SERIES_CAP
    raw = _merge(base, user)
    raw["data"] = {**raw["data"], "tenant": tenant}
    try:
        return TrainConfig(**raw)
    except Exception as exc:
        from pydantic import ValidationError

        if isinstance(exc, ValidationError):
            raise config_error(exc, f"for tenant {tenant!r} (grid defaults + profile + overrides)") from None
        raise


def _max_horizon(units: pl.DataFrame) -> int | None:
    if units.height == 0 or "horizon_periods" not in units.columns:
        return None
    v = units["horizon_periods"].max()
    return int(v) if v is not None else None


def _tenant_config(tenant: str, settings, engine, overrides: dict | None) -> tuple[TrainConfig, pl.DataFrame]:
    from features.forecasts import infer_freq
    from features.profile import get_profile
    from training._data import read_master, recent_sales

    recent = recent_sales(tenant, settings=settings)
    active = recent.select("sku_id", "location_id", "channel_id").unique()
    config = resolve_train_config(
        tenant,
        freq=infer_freq(recent["date"]),
        profile=get_profile(engine, tenant),
        horizon_periods=_max_horizon(read_master(tenant, "planning_units", settings=settings, engine=engine)),
        n_series=active.height,
        overrides=overrides,
    )
    return config, active


def tenant_config(tenant: str, *, settings=None, engine=None, overrides: dict | None = None) -> TrainConfig:
    """The training config :func:`train_tenant` would use now (grid of the recent sales, profile, overrides).

    Raises:
        ValueError: the tenant has no sales facts.
        TrainConfigError: the resolved config is invalid.
    """
    from features.settings import get_settings
    from training._data import open_engine

    settings = settings or get_settings()
    with open_engine(settings, engine) as eng:
        return _tenant_config(tenant, settings, eng, overrides)[0]


def train_tenant(
    tenant: str,
    *,
    settings=None,
    engine=None,
    overrides: dict | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Train, backtest, register and gate the tenant's model on its own facts.

    The config is resolved (:func:`resolve_train_config`) and validated before the history is read; the
    panel is checked before training (an encoder longer than every series, or no training window at all,
    is refused with a :class:`~training.config.TrainConfigError`; series too short to train on are named
    in a :class:`~training.quiet.ShortSeriesWarning` and in ``TrainResult.short_series``).

    Args:
        tenant: whose data and model.
        settings: ``features.settings.Settings`` (default: ``get_settings()``).
        engine: state store (default: one on ``settings.database_url``).
        overrides: nested ``TrainConfig`` fields for this run only (the profile's ``train`` stays).
        progress: ``progress(done, total)`` after each step.

    Returns:
        The :class:`~training.pipeline.TrainResult` (version, gate decision, backtest, short series).

    Raises:
        ValueError: the tenant has no sales facts.
        TrainConfigError: the config is invalid or impossible for the data.
    """
    from features.forecasts import infer_freq
    from features.settings import get_settings
    from training._data import (
        TenantFacts,
        open_engine,
        sample_series,
        tenant_panel,
    )
    from training.pipeline import check_panel, train_and_register
    from training.served import gate_version

    settings = settings or get_settings()
    tick = progress or _noop
    with open_engine(settings, engine) as eng:
        config, active = _tenant_config(tenant, settings, eng, overrides)
        series = None
        if config.data.max_series is not None:
            series = sample_series(active, config.data.max_series, config.fit.seed)
        facts = TenantFacts.read(tenant, settings=settings, engine=eng, series=series)
    tick(1, 7)
    freq = config.data.freq or infer_freq(facts.sales["date"])
    panel = tenant_panel(facts, facts.spec(freq, config.data.lags, config.data.attributes))
    del facts
    short = check_panel(config, panel)
    tick(2, 7)
    result = train_and_register(
        config, panel, tenant=tenant, short_series=short, progress=lambda d, t: tick(2 + d, 7), gate=False
    )
    gated = gate_version(config, panel, result)
    tick(7, 7)
    d = gated["decision"]
    return dataclasses.replace(
        result, promoted=d.promote, reason=f"{d.reason} (served: {gated['served']})",
        best_baseline=gated["best_baseline"], served=gated["served"], selection=gated["selection"].to_dict(),
    )


# --- the forecast stage ---------------------------------------------------------------------


def _champion(tenant: str, model_name: str):
    from training.predict import load_predictor
    from training.registry import client

    try:
        pred = load_predictor("champion", model_name)
    except LookupError:
        from training.registry import list_versions

        versions = [v["version"] for v in list_versions(model_name)]
        if versions:
            raise LookupError(
                f"tenant {tenant!r} has no champion model: {model_name!r} has version(s) "
                f"{', '.join(versions)} but none passed the champion gate; promote one by hand "
                f"(`replenish models promote {versions[0]} --tenant {tenant}`) or train again "
                f"(`replenish cycle --tenant {tenant} --train`, `replenish train --tenant {tenant}`)"
            ) from None
        raise LookupError(
            f"tenant {tenant!r} has no champion model ({model_name!r} has no version yet): train one "
            f"first with `replenish cycle --tenant {tenant} --train` or `replenish train --tenant {tenant}`"
        ) from None
    from training.served import load_selection

    c = client()
    tags = c.get_model_version(model_name, pred.version).tags
    return pred, tags.get("best_baseline") or _FALLBACK_BASELINE, load_selection(c, model_name, pred.version)


def _sales_end(tenant: str, facts_dir) -> date:
    from features.facts import scan_facts

    end = scan_facts("sales", tenant, columns=["date"], facts_dir=facts_dir).select(pl.col("date").max())
    value = end.collect().item()
    if value is None:
        raise ValueError(
            f"tenant {tenant!r} has no sales facts; ingest them first (replenish ingest sales FILE --tenant "
            f"{tenant})"
        )
    return value


def _grid_step(freq: str, end: date, k: int) -> date:
    """The period ``k`` steps from ``end`` on the pandas grid ``freq`` (negative: back)."""
    off = pd.tseries.frequencies.to_offset(freq)
    return (pd.Timestamp(end) + k * off).date()


def baseline_quantiles(y_hist: np.ndarray, H: int, levels, name: str, season: int) -> np.ndarray:
    """The fallback forecast: a baseline's point forecast with the unit's empirical quantiles around it.

    Each level is the baseline forecast plus the distance of that empirical quantile of the unit's recent
    history from its median (non-negative, monotone). A unit without history gets zeros.

    Args:
        y_hist: (N, T) recent history (``NaN`` = unobserved).
        H: horizon.
        levels: (Q,) quantile levels.
        name: a baseline of ``training.baselines.BASELINES``.
        season: seasonal period (seasonal naive).

    Returns:
        (N, H, Q) quantiles.
    """
    from training.baselines import BASELINES

    fn = BASELINES.get(name, BASELINES[_FALLBACK_BASELINE])
    point = fn(y_hist, H, season) if name == "seasonal_naive" else fn(y_hist, H)
    point = np.nan_to_num(point)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: units without history
        qs = np.nanquantile(y_hist, list(levels), axis=1).T  # (N, Q)
        med = np.nanmedian(y_hist, axis=1)
    spread = np.nan_to_num(qs - med[:, None])
    out = point[:, :, None] + spread[:, None, :]
    return np.maximum(np.sort(out, axis=-1), 0.0)


def _rows(keys: pl.DataFrame, dates: list, q: np.ndarray, levels, source, version, cold) -> pl.DataFrame:
    """Forecast rows (the ``features.forecasts`` layout) of N units x H periods."""
    from features.forecasts import quantile_column

    N, H, _ = q.shape
    rep = pl.Series(np.repeat(np.arange(N), H))
    k = keys.select("sku_id", "location_id", "channel_id")[rep]
    cols = {
        "unique_id": k.select(pl.concat_str(["sku_id", "location_id", "channel_id"], separator="|"))[:, 0],
        "level": pl.repeat("bottom", N * H, eager=True),
        "sku_id": k["sku_id"],
        "location_id": k["location_id"],
        "channel_id": k["channel_id"],
        "date": pl.Series(np.tile(np.asarray(dates, dtype="datetime64[D]"), N)).cast(pl.Date),
        "horizon": pl.Series(np.tile(np.arange(1, H + 1), N), dtype=pl.Int64),
        "source": pl.Series(np.repeat(np.asarray(source, dtype=object), H).tolist(), dtype=pl.String),
        "model_version": pl.Series(np.repeat(np.asarray(version, dtype=object), H).tolist(), dtype=pl.String),
        "cold_start": pl.Series(np.repeat(np.asarray(cold, dtype=bool), H)),
    }
    for j, lv in enumerate(levels):
        cols[quantile_column(lv)] = pl.Series(q[..., j].reshape(-1).astype(np.float64))
    return pl.DataFrame(cols)


def _periods_to(first, end: date, freq: str):
    """Periods from ``first`` to ``end`` inclusive on the grid (a polars expression)."""
    if freq == "MS":
        return (end.year - first.dt.year()) * 12 + end.month - first.dt.month().cast(pl.Int64) + 1
    days = (pl.lit(end) - first).dt.total_days()
    return (days // 7 if freq.startswith("W") else days) + 1


def _history(rows: pl.DataFrame, units: pl.DataFrame, hist_dates: list, freq: str) -> np.ndarray:
    """(N, T) recent history of ``units`` (in their order) from long frame rows, ``NaN`` where no sale."""
    from features.frames import TENANT_KEYS

    keys = list(TENANT_KEYS)
    idx_u = units.select(keys).with_row_index("_u")
    idx_t = pl.DataFrame(
        {"date": hist_dates, "_t": np.arange(len(hist_dates))}, schema={"date": pl.Date, "_t": pl.Int64}
    )
    r = rows.filter(pl.col("qty").is_not_null()).join(idx_u, on=keys).join(idx_t, on="date")
    y = np.full((units.height, len(hist_dates)), np.nan)
    y[r["_u"].to_numpy(), r["_t"].to_numpy()] = r["qty"].to_numpy()
    return y


@dataclass(frozen=True)
class _Window:
    """What every chunk of a forecast run shares: the model, the fallback and the periods."""

    pred: object
    name: str
    baseline: str
    end: date
    hist_dates: list
    future: list
    selection: object = None


def _forecast_chunk(w: _Window, ch: pl.DataFrame, sales, promotions, counts: dict) -> list[pl.DataFrame]:
    """Forecast rows of one chunk of units: the model where it can, the baseline elsewhere."""
    from features.frames import TENANT_KEYS, build_panel, tenant_frame

    keys = list(TENANT_KEYS)
    spec = w.pred.spec
    fspec = spec.frame_spec
    levels = list(spec.quantiles)
    attrs = [c for c in fspec.static_categoricals if c not in keys]
    frame = tenant_frame(
        sales.join(ch.select(keys), on=keys, how="semi"),
        fspec,
        promotions=promotions.join(ch.select(keys), on=keys, how="semi"),
        future=spec.horizon,
        end=w.end,
    )
    counts["promoted"] += frame.filter(pl.col("qty").is_null() & (pl.col("promo") > 0)).height
    # history = periods from the unit's first sale in the window to the end (a period without a sales row
    # inside that span is a period without sales, as the model's encoder reads it)
    first = frame.filter(pl.col("qty").is_not_null()).group_by(keys).agg(pl.col("date").min())
    seen = first.with_columns(_periods_to(pl.col("date"), w.end, fspec.freq).alias("_n")).drop("date")
    ch = ch.join(seen, on=keys, how="left", maintain_order="left").with_columns(pl.col("_n").fill_null(0))
    ok = pl.col("_known") & (pl.col("_n") >= spec.min_encoder_length)
    m_units, b_units = ch.filter(ok), ch.filter(~ok)
    counts["unknown_to_model"] += b_units.filter(~pl.col("_known")).height
    counts["short_history"] += b_units.filter(pl.col("_known")).height
    if w.selection is not None:
        return [_served_chunk(w, ch, frame, m_units, attrs, counts)]
    out = []
    if m_units.height:
        panel = build_panel(
            frame.join(m_units.select(keys), on=keys, how="semi"),
            fspec,
            vocab=spec.vocab,
            statics=m_units.select(*keys, *attrs),
        )
        fc = w.pred.forecast(panel, panel.time_index(w.future[0]))
        n = panel.n_series
        keys_pl = pl.from_pandas(panel.keys)
        src, ver = [f"model:{w.name}"] * n, [w.pred.version] * n
        out.append(_rows(keys_pl, w.future, fc.quantiles, levels, src, ver, fc.cold_start))
        counts["model"] += n
    if b_units.height:
        y = _history(frame, b_units, w.hist_dates, fspec.freq)
        q = baseline_quantiles(y, spec.horizon, levels, w.baseline, spec.season)
        n = b_units.height
        out.append(
            _rows(b_units, w.future, q, levels, [f"baseline:{w.baseline}"] * n, [None] * n, [True] * n)
        )
        counts["baseline"] += n
    return out


def _cold_from_peers(ch: pl.DataFrame, y, q, source: list, no_tft, levels, season, attrs,
                     counts) -> np.ndarray:
    """(N, H, Q) ``q`` with the cold units forecast from similar items (``training.cold_start``).

    Cold: the TFT does not forecast the unit and it has fewer observed periods than a season (a new SKU or
    store). Peers: the warm units of the chunk with the same SKU elsewhere, then the same attribute (the
    model's static categoricals, e.g. family, category, the one with more distinct values first), then the
    same location; all warm units where none is shared. Their served forecasts give the cold unit's (no
    history: the spread of the peers' medians; a few periods: the peers' mean scaled to the unit's level).
    ``source`` becomes ``similar:<attribute>``. A chunk where every unit is cold keeps the statistical
    forecasts and counts them (``cold_without_peers``).
    """
    from features.frames import TENANT_KEYS
    from training.cold_start import cold_units, peer_labels, similar_items_forecast
    from training.served import fill_gaps

    y = fill_gaps(y)
    cold = np.asarray(no_tft, bool) & cold_units(y, season)
    if not cold.any():
        return q
    if cold.all():
        counts["cold_without_peers"] += int(cold.sum())
        return q
    keys = list(TENANT_KEYS)
    # attributes most specific first: the one with more distinct values (family before category)
    attrs = sorted((c for c in attrs if c in ch.columns), key=lambda c: -ch[c].n_unique())
    names = [c for c in (keys[0], *attrs, keys[1]) if c in ch.columns]
    groups = [ch[c].cast(pl.String).fill_null("unknown").to_numpy() for c in names]
    q = similar_items_forecast(y, q, cold, groups, levels)
    for i, label in zip(np.flatnonzero(cold), peer_labels(cold, groups, names), strict=True):
        source[i] = f"similar:{label}"
    counts["cold_from_peers"] += int(cold.sum())
    return q


def _served_chunk(w: _Window, ch: pl.DataFrame, frame, m_units: pl.DataFrame, attrs, counts) -> pl.DataFrame:
    """Forecast rows of a chunk through the version's selection (``training.served.served_forecast``)."""
    from features.frames import TENANT_KEYS, build_panel, grid_of
    from training.served import TFT, served_forecast

    keys = list(TENANT_KEYS)
    spec = w.pred.spec
    N, H, Q = ch.height, spec.horizon, len(spec.quantiles)
    tft, has, cold = np.zeros((N, H, Q)), np.zeros(N, bool), np.ones(N, bool)
    sel = w.selection
    tft_used = TFT in sel.models and any(v[sel.models.index(TFT)] > 0 for v in sel.segment_weights.values())
    if m_units.height and not tft_used:  # the selection gives the TFT no weight: no need to run it
        u = ch.with_row_index("_u").join(m_units.select(keys), on=keys, how="semi")["_u"].to_numpy()
        has[u], cold[u] = True, False
    elif m_units.height:
        panel = build_panel(frame.join(m_units.select(keys), on=keys, how="semi"), spec.frame_spec,
                            vocab=spec.vocab, statics=m_units.select(*keys, *attrs))
        fc = w.pred.forecast(panel, panel.time_index(w.future[0]))
        pos = (pl.from_pandas(panel.keys).select(keys).with_row_index("_p")
               .join(ch.select(keys).with_row_index("_u"), on=keys))
        u, p = pos["_u"].to_numpy(), pos["_p"].to_numpy()
        tft[u], has[u], cold[u] = fc.quantiles[p], True, np.asarray(fc.cold_start, bool)[p]
    y = _history(frame, ch, w.hist_dates, spec.frame_spec.freq)
    q, source, uses = served_forecast(w.selection, y, tft, has, spec.season, H, grid_of(spec.frame_spec.freq),
                                      w.name)
    q = _cold_from_peers(ch, y, q, source, ~has, list(spec.quantiles), spec.season, attrs, counts)
    counts["model"] += int(has.sum())
    counts["baseline"] += int((~has).sum())
    counts["served_tft"] += int(uses.sum())
    version = np.where(has, w.pred.version, None)
    return _rows(ch, w.future, q, spec.quantiles, source, version, cold)


def forecast_stage(
    tenant: str,
    *,
    run_id: str,
    settings=None,
    engine=None,
    progress: Progress | None = None,
    chunk_size: int = 50_000,
):
    """Forecast every unit of the tenant with its champion and store the run (stage ``base``).

    Units: every planning unit plus every series with sales in the recent window (the longest of the
    model's encoder, two seasons, its lags and, with a stored selection, the statistical models' history of
    ``training.served.STAT_HISTORY``). The known future inputs come from the promotions calendar (a future
    period without a calendar row is unpromoted at the usual price); the forecast starts one period after
    the latest sales date. With a stored selection every unit is served through it
    (``training.served.served_forecast``); units the TFT cannot forecast (an id or attribute it has no
    embedding for, or fewer observed periods than its shortest encoder) get the statistical models of their
    segment, ``cold_start=True`` and no ``model_version``; with less than a season of history, the
    forecasts of similar items (:func:`_cold_from_peers`, counted in ``extra["cold_from_peers"]``).
    Without one (older versions): the TFT, and the gate's best baseline with empirical quantiles
    (:func:`baseline_quantiles`) for those units.
    Units are processed ``chunk_size`` at a time (bounded memory) through the fast tensor path.

    Args:
        tenant: whose data and model.
        run_id: the run (re-running the same id replaces its rows).
        settings: ``features.settings.Settings`` (default: ``get_settings()``).
        engine: state store (default: one on ``settings.database_url``).
        progress: ``progress(units done, units total)`` after each chunk.
        chunk_size: units per chunk.

    Returns:
        The stored run's ``features.forecasts.ForecastRunMeta`` (counts in ``extra``).

    Raises:
        LookupError: the tenant has no champion model (the message names the command that trains one).
        ValueError: the tenant has no sales facts.
    """
    from features.settings import get_settings
    from training.forecast_work import commit_forecast, forecast_chunk, forecast_work, new_forecast_counts

    settings = settings or get_settings()
    tick = progress or _noop
    work = forecast_work(tenant, settings=settings, engine=engine)
    units, total = work.units, work.units.height
    out, counts = [], new_forecast_counts()
    tick(0, total)
    for i in range(0, total, chunk_size):
        out.extend(forecast_chunk(work, units.slice(i, chunk_size), counts, settings=settings))
        tick(min(i + chunk_size, total), total)
    return commit_forecast(work, run_id, out, counts, settings=settings)
