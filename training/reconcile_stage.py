"""The reconcile stage of the cycle: a tenant's stored base forecasts made coherent over its hierarchy.

``reconcile_stage(tenant, run_id=...)`` reads the newest (or a named) base forecast run
(:func:`features.forecasts.read_forecasts`, stage ``base``), builds the tenant's hierarchy from its master
data, gives every aggregate node a base forecast of its own, reconciles all quantile levels with
:func:`kernels.reconcile.reconcile_quantiles` and stores every node's reconciled quantiles as the
``reconciled`` run ``run_id`` (re-running the same run id replaces it).

Hierarchy. The bottom level is the stored base forecast's units (``sku|location|channel``). The levels above
it come from the tenant profile (:attr:`features.profile.TenantProfile.hierarchy`, lists of the columns in
:data:`LEVEL_COLUMNS`: the unit keys, the ``skus`` attributes category / family / brand and the
``locations`` attributes region / kind / parent_id). With no levels configured the default is the total,
every attribute that is set somewhere and splits the units (attributes null everywhere or with a single
value are skipped, as is an attribute that splits the units exactly like one already taken, e.g. region and
parent_id when each region has one DC), ``channel_id`` and ``sku_id/location_id`` when the units sell
through several channels (planning's stocking points). A missing attribute value is the explicit node
``(none)``; a unit whose SKU or location is not in the master data gets ``(unknown)`` for that table's
attributes and is counted in ``extra["unknown_units"]`` (ingest refuses such sales rows, so it only happens
when master data was removed after forecasting); nothing is dropped. Node ids follow
``kernels.reconcile_frame``: ``total``, ``region=R1``, ``category=FOODS/region=R1``; the ``level`` column is
``bottom`` or the level's columns joined by ``/`` (``total`` for the empty level). A level whose nodes hold
fewer than 4 units on average (``sku_id/location_id`` over 2-3 channels) is stored as the sums of its
reconciled units and left out of the solve (``role: summed`` in ``extra["levels"]``): a baseline on two
units adds little to the units' own forecasts, and at 100k units it would make 50k aggregates of 90.

Aggregate base forecasts. Summing the bottom base forecasts gives coherent aggregates, but reconciling those
changes nothing. Aggregates are smooth, so a statistical baseline on their own history is informative: each
aggregate's sales history (the units' sales of the last few seasons from :func:`features.facts.scan_facts`,
summed with the summing matrix) is forecast by the best of three baselines in a rolling-origin backtest (up
to 8 origins, lowest mean absolute error per node): seasonal naive and moving average from
:mod:`training.baselines`, and the seasonal mean of the last few seasons (the mean of seasonal-naive
forecasts from successive seasons). Its centre is that forecast plus the median backtest residual (the
stored level nearest 0.5), and its quantile at level tau is the centre plus the sum of its units' offsets
``q_tau - q_centre``. Only the centre is the aggregate's own: reconciling quantile by quantile against the
aggregates' own (narrow) quantiles squeezes the units' intervals, because a sum of quantiles is not the
quantile of the sum. Measured on synthetic daily data (2,000 units, 28 days held out, units forecast by a
28-day mean with Poisson quantiles, scaled pinball loss, seeds 0 and 1): own aggregate quantiles took the
total from 0.048 (bottom-up) to 0.019-0.029 but made the units worse (0.177 -> 0.185-0.198); own centres
take the total to 0.033 and leave the units as good or better (wls_var 0.1764 vs 0.1770, 0.1801 vs 0.1802;
sku_id/location_id 0.1438 vs 0.1462). Planning decides on the units, so the units' spread is kept; the
aggregates' intervals are the comonotone sums (wide). The aggregates' error variances (for ``wls_var`` and
``mint_shrink``) are the mean squared residuals of their backtest. Without enough history for one origin
the aggregates start from the bottom sums (``extra["aggregate_base"]["kind"] == "bottom_sum"``) and the
reconciled forecasts are the base forecasts.

Method. ``method`` argument, else the profile's ``reconcile_method``, else ``wls_var`` when the base run's
model has stored backtest residuals (:func:`features.forecasts.read_residuals`) and ``wls_struct``
otherwise. ``wls_var`` (W = the diagonal of error variances) is the default with residuals rather than
``mint_shrink`` because the node variances come from different backtests (the model's at the bottom, the
baselines' above), which give variances per node but no aligned residual matrix for a covariance; and for a
diagonal W the non-negative answer is the exact constrained optimum. The variances: bottom units, the mean
squared model residual (units without residuals: the variance implied by their base quantile spread under a
normal); aggregates, the mean squared residual of their baseline backtest. ``mint_shrink`` is available: its
residual matrix is the seasonal differences of every node's recent history (aligned, so the correlations are
real), each row rescaled to the node's variance above. Non-negative reconciliation is on by default (demand).

Coherence (max |S b - y| over all nodes and quantiles, absolute and relative to the largest value) and
monotone quantiles are checked before writing and stored in ``meta.extra`` with the hierarchy's levels.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

import numpy as np
import polars as pl
import scipy.sparse as sp

from features.forecasts import (
    ForecastRunMeta,
    forecast_runs,
    latest_forecast_run,
    read_forecasts,
    sales_watermark,
    write_forecasts,
)
from features.profile import get_profile
from features.tables import read_table
from kernels.reconcile import Hierarchy, ReconciliationError, reconcile_quantiles
from training._aggregate_base import (
    _base_all,
    _bottom_variance,
    _history,
    _history_periods,
    _shrink_residuals,
)
from training._hierarchy import (
    LEVEL_COLUMNS,
    NONE,
    UNIT_COLUMNS,
    UNKNOWN,
    HierarchyError,
    TenantHierarchy,
    build_hierarchy,
)

__all__ = [
    "LEVEL_COLUMNS",
    "METHODS",
    "NONE",
    "UNKNOWN",
    "HierarchyError",
    "build_hierarchy",
    "reconcile_stage",
]

log = logging.getLogger(__name__)

#: Methods the stage runs (``wls`` needs user weights and ``middle_out`` a depth: not stage methods).
METHODS = ("bottom_up", "top_down", "ols", "wls_struct", "wls_var", "mint_shrink")
_COHERENCE_TOL = 1e-6
_STEPS = 6


def _base_run(tenant: str, base_run: str | None, facts_dir) -> ForecastRunMeta:
    if base_run is None:
        meta = latest_forecast_run(tenant, "base", facts_dir=facts_dir)
        if meta is None:
            raise LookupError(
                f"no base forecasts stored for tenant {tenant!r}; run the forecast stage first "
                f"(replenish cycle --tenant {tenant} --stage forecast)"
            )
        return meta
    for meta in forecast_runs(tenant, "base", facts_dir=facts_dir):
        if meta.run_id == base_run:
            return meta
    raise LookupError(f"no base forecast run {base_run!r} for tenant {tenant!r}")


def _base_arrays(base: pl.DataFrame, meta: ForecastRunMeta):
    """Units (one row each, in row order), base quantiles (m, H, Q) and the rows grouped by unit.

    The stored rows come grouped by unit in horizon order (``write_forecasts`` sorts them), which is checked
    in O(rows) without sorting; other orders are sorted first.
    """
    H, qcols = meta.horizon, meta.quantile_columns
    if base.height == 0:
        raise ValueError(
            f"base forecast run {meta.run_id!r} of tenant {meta.tenant!r} has no bottom-level rows"
        )
    if not _grouped(base, H):
        base = base.sort("unique_id", "horizon")
        if not _grouped(base, H):
            counts = base.group_by("unique_id").agg(
                pl.len().alias("n"), pl.col("horizon").n_unique().alias("h")
            )
            bad = counts.filter((pl.col("n") != H) | (pl.col("h") != H))
            uid = bad["unique_id"][0] if bad.height else base["unique_id"][0]
            raise ValueError(
                f"base forecast run {meta.run_id!r}: unit {uid!r} needs exactly one row per horizon 1..{H}"
            )
    units = base.gather(np.arange(0, base.height, H)).select(
        "unique_id", *UNIT_COLUMNS, pl.col("date").alias("__d1")
    )
    nulls = [c for c in UNIT_COLUMNS if units[c].null_count()]
    if nulls:
        raise ValueError(f"base forecast run {meta.run_id!r}: bottom rows with an empty {nulls[0]}")
    q_b = base.select(qcols).to_numpy().reshape(units.height, H, len(qcols))
    return units, q_b, base


def _grouped(base: pl.DataFrame, H: int) -> bool:
    """Whether the rows are blocks of H rows per unit, horizons 1..H in order, each unit in one block."""
    if base.height % H:
        return False
    m = base.height // H
    if not np.array_equal(base["horizon"].to_numpy(), np.tile(np.arange(1, H + 1), m)):
        return False
    uid = base["unique_id"]
    first = uid.gather(np.arange(0, base.height, H))
    return bool((uid == first.gather(np.repeat(np.arange(m), H))).all()) and first.n_unique() == m


def _method(method: str | None, profile_method: str | None, has_residuals: bool) -> str:
    chosen = method or profile_method or ("wls_var" if has_residuals else "wls_struct")
    if chosen not in METHODS:
        raise ValueError(f"reconciliation method {chosen!r}: expected one of {', '.join(METHODS)}")
    return chosen


def _reconcile(
    hier: Hierarchy,
    y_hat: np.ndarray,
    method: str,
    var: np.ndarray,
    Y: np.ndarray | None,
    freq: str,
    nonnegative: bool,
) -> np.ndarray:
    kwargs: dict = {"nonnegative": nonnegative}
    if method == "wls_var":
        method, kwargs["weights"] = "wls", var  # W = diag of the error variances gathered per node
    elif method == "mint_shrink":
        kwargs["residuals"] = _shrink_residuals(Y, var, freq)
    return reconcile_quantiles(hier, y_hat, method, **kwargs)


def _checks(S: sp.csr_array, a: int, y: np.ndarray) -> dict:
    """Coherence (max |S b - y| over all nodes, absolute and relative to max |y|) and monotone quantiles.

    Args:
        S: summing matrix (n x m), the a aggregates first.
        a: number of aggregate rows.
        y: forecasts of every node as stored, shape (n, H, Q).
    """
    n, H, Q = y.shape
    flat = y.reshape(n, H * Q)
    err = float(np.abs(S @ flat[a:] - flat).max(initial=0.0))
    scale = float(np.abs(flat).max(initial=0.0))
    bad = int((np.diff(y, axis=2) < -1e-9 * (1.0 + np.abs(y[:, :, 1:]))).sum())
    return {
        "coherence": {"max_abs": err, "max_rel": err / scale if scale > 0 else 0.0},
        "monotone": bad == 0,
        "non_monotone_values": bad,
        "min_value": float(flat.min(initial=0.0)),
    }


def _output(th: TenantHierarchy, base: pl.DataFrame, y: np.ndarray, source: np.ndarray, qcols, H: int):
    """The stored frame: aggregate rows, then the units' rows (base columns kept), reconciled quantiles.

    Args:
        th: the hierarchy (every node).
        base: the base rows sorted by unit and horizon.
        y: reconciled quantiles of every node, shape (n, H, Q).
        source: ``source`` of every aggregate node, shape (a,).
        qcols: quantile columns.
        H: horizon.
    """
    n, m = th.S.shape
    a = n - m
    bottom = base.select(
        "unique_id",
        pl.lit("bottom").alias("level"),
        *UNIT_COLUMNS,
        "date",
        "horizon",
        "source",
        "model_version",
        "cold_start",
    ).with_columns([pl.Series(c, y[a:, :, i].ravel()) for i, c in enumerate(qcols)])
    if a == 0:
        return bottom
    rows = np.repeat(np.arange(a), H)
    d = base["date"].to_numpy().reshape(m, H).astype("datetime64[D]").astype(np.int64)
    if (d == d[0]).all():  # one calendar for every unit (daily, monthly and most weekly data)
        d_a = np.broadcast_to(d[0], (a, H))
    else:  # weekly units on different weekdays: a node's period starts with its earliest unit's
        d_a = np.full((a, H), np.iinfo(np.int64).max)
        C = th.S[:a].tocoo()
        np.minimum.at(d_a, C.row, d[C.col])
    top = pl.DataFrame(
        {
            "unique_id": th.ids[:a].gather(rows),
            "level": th.level[:a].gather(rows),
            **{c: th.keys[c][:a].gather(rows) for c in UNIT_COLUMNS},
            "date": pl.Series(d_a.ravel().astype("datetime64[D]")).cast(pl.Date),
            "horizon": pl.Series(np.tile(np.arange(1, H + 1), a), dtype=pl.Int64),
            "source": pl.Series(source.tolist(), dtype=pl.String).gather(rows),
            "model_version": pl.Series([None] * (a * H), dtype=pl.String),
            "cold_start": pl.Series(np.zeros(a * H, dtype=bool)),
            **{c: y[:a, :, i].ravel() for i, c in enumerate(qcols)},
        }
    )
    return pl.concat([top, bottom.select(top.columns)], how="vertical_relaxed")


def reconcile_stage(
    tenant: str,
    *,
    run_id: str,
    base_run: str | None = None,
    settings=None,
    engine=None,
    progress: Callable[[int, int], None] | None = None,
    method: str | None = None,
    nonnegative: bool = True,
) -> ForecastRunMeta:
    """Reconcile a tenant's stored base forecasts over its hierarchy and store them as stage ``reconciled``.

    Args:
        tenant: whose forecasts.
        run_id: the reconciled run written (the same id again replaces it).
        base_run: base forecast run to reconcile; None: the newest.
        settings: ``features.settings.Settings``; default ``get_settings()``.
        engine: state store (profile, master data); default ``make_engine(settings.database_url)``, migrated.
        progress: called as ``progress(done, total)`` after each step.
        method: one of :data:`METHODS`; None: the profile's ``reconcile_method``, else ``wls_var`` with
            backtest residuals, else ``wls_struct``.
        nonnegative: coherent non-negative forecasts (demand); see :mod:`kernels.reconcile`.

    Returns:
        The stored run's metadata; ``extra`` holds ``coherence`` (max_abs, max_rel), ``monotone``, ``levels``
        (name, columns, nodes, role), ``nodes``, ``aggregate_base``, ``residual_units``, ``unknown_units`` and
        ``seconds`` per step before the write.

    Raises:
        LookupError: no base forecast run (or not ``base_run``) for the tenant.
        HierarchyError: the profile's hierarchy names an unknown column.
        ValueError: an unknown method, or malformed base forecasts.
        kernels.reconcile.ReconciliationError: the reconciliation system is singular, or the result is not
            coherent within 1e-6 relative or not monotone (nothing is stored then).
    """
    if settings is None:
        from features.settings import get_settings

        settings = get_settings()
    own = engine is None
    if own:
        from features.store import make_engine, migrate

        settings.ensure_home()
        engine = make_engine(settings.database_url)
        migrate(engine)
    try:
        return _run(
            tenant, run_id, base_run, settings, engine, progress or (lambda _d, _t: None), method, nonnegative
        )
    finally:
        if own:
            engine.dispose()


def _run(tenant, run_id, base_run, settings, engine, progress, method, nonnegative) -> ForecastRunMeta:
    facts_dir, times, t0 = settings.facts_dir, {}, time.perf_counter()

    def step(name: str, done: int) -> None:
        nonlocal t0
        times[name] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        progress(done, _STEPS)

    meta = _base_run(tenant, base_run, facts_dir)
    H, qcols, freq = meta.horizon, meta.quantile_columns, meta.freq
    units, q_b, base = _base_arrays(read_forecasts(tenant, "base", meta.run_id, facts_dir=facts_dir), meta)
    profile = get_profile(engine, tenant)
    step("read_base", 1)
    skus = read_table("skus", tenant, engine=engine, settings=settings)
    locations = read_table("locations", tenant, engine=engine, settings=settings)
    th = build_hierarchy(units, skus, locations, profile.hierarchy)
    if th.unknown_units:
        log.warning(
            "tenant %s: %d forecast unit(s) not in the master data, reconciled under %s",
            tenant,
            th.unknown_units,
            UNKNOWN,
        )
    step("hierarchy", 2)
    Y_b = _history(tenant, units, freq, _history_periods(freq, H), facts_dir)
    seen = np.flatnonzero(Y_b.any(axis=0))
    Y_b = Y_b[:, seen[0] :] if seen.size else Y_b[:, :0]
    step("history", 3)
    var_b, residual_units = _bottom_variance(tenant, meta, units["unique_id"], q_b, facts_dir)
    chosen = _method(method, profile.reconcile_method, residual_units > 0)
    y_hat, var, agg = _base_all(th.hierarchy, Y_b, q_b, var_b, meta.levels, freq)
    step("aggregate_base", 4)
    hier = th.hierarchy
    Y = np.vstack([hier.C @ Y_b, Y_b]) if chosen == "mint_shrink" else None
    history_periods = int(Y_b.shape[1])
    del Y_b
    y_s = _reconcile(hier, y_hat, chosen, var, Y, freq, nonnegative)
    n, m = th.S.shape
    y = (th.S @ y_s[hier.bottom_rows].reshape(m, -1)).reshape(n, H, len(qcols))
    del y_hat, y_s, Y, q_b  # the written frame is the peak: keep only what it needs
    checks = _checks(th.S, n - m, y)
    if checks["coherence"]["max_rel"] > _COHERENCE_TOL or not checks["monotone"]:
        raise ReconciliationError(
            f"tenant {tenant!r}: reconciled forecasts fail their checks ({checks}); nothing was stored"
        )
    step("reconcile", 5)
    source = np.full(n - m, "bottom_sum", dtype=object)
    source[th.solved[: hier.a]] = agg["source"]
    frame = _output(th, base, y, source, qcols, H)
    del base, y
    names, counts = np.unique(agg["source"], return_counts=True)
    extra = {
        **checks,
        "levels": [{"name": nm, "columns": list(c), "nodes": k, "role": r} for nm, c, k, r in th.levels],
        "nodes": n,
        "bottom_units": m,
        "nonnegative": nonnegative,
        "residual_units": residual_units,
        "unknown_units": th.unknown_units,
        "aggregate_base": {
            "kind": agg["kind"],
            "history_periods": history_periods,
            "origins": agg["origins"],
            "baselines": {str(k): int(v) for k, v in zip(names, counts, strict=True)},
        },
        "history_watermark": sales_watermark(tenant, facts_dir=facts_dir),
        "seconds": dict(times),  # the steps before the write
    }
    out = ForecastRunMeta(
        run_id=run_id,
        tenant=tenant,
        stage="reconciled",
        freq=freq,
        horizon=H,
        levels=meta.levels,
        data_watermark=meta.data_watermark,
        model_name=meta.model_name,
        model_version=meta.model_version,
        method=chosen,
        base_run=meta.run_id,
        extra=extra,
    )
    path = write_forecasts(tenant, frame, out, facts_dir=facts_dir)
    step("write", 6)
    stored = ForecastRunMeta.from_json(json.loads(path.with_suffix(".json").read_text()))
    log.info("tenant %s: reconciled run %s (%s, %d nodes) in %s", tenant, run_id, chosen, n, times)
    return stored
