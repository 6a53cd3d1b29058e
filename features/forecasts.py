"""Stored forecasts: versioned facts the forecast and reconcile stages write, planning and serving read.

A forecast run is one Parquet file and one JSON file of metadata per (tenant, stage, run)::

    <facts_dir>/forecasts/tenant=<tenant>/stage=<base|reconciled>/run=<run_id>.parquet
    <facts_dir>/forecasts/tenant=<tenant>/stage=<base|reconciled>/run=<run_id>.json

Both are written to temporary names and renamed into place (the metadata last, so a run is visible only
once its rows are); writing the same run again replaces it, so re-running a stage never duplicates rows.
The metadata (:class:`ForecastRunMeta`) names what the forecast came from: the model version (or none when
every unit came from a baseline), the reconciliation method and the base run, and the sales watermark at the
time, so that any answer can be traced and a stale forecast recognised (:func:`sales_watermark`).

Rows (:data:`FORECAST_SCHEMA` plus one Float64 column per quantile level, :func:`quantile_column`), one per
node of the hierarchy and horizon step: ``unique_id`` (``sku|location|channel`` at the bottom, a node id such
as ``total`` or ``region=R1`` above), ``level`` (``bottom`` or the level's name), ``sku_id``, ``location_id``,
``channel_id`` (null where the level lacks them), ``date`` (period start), ``horizon`` (1..H), ``source``
(``model:<name>`` / ``baseline:<name>``), ``model_version`` (null for a baseline) and ``cold_start`` (the unit
was forecast by the fallback baseline or with too little history).

Backtest residuals (``actual - p50`` per unit, origin and horizon) are kept per model version beside them
(:func:`write_residuals`), for reconciliation methods that estimate the error covariance.

Grids: the sales dates decide the period (:func:`infer_freq`): daily ``D``, weekly ``W`` (any weekday) or
monthly ``MS``; month-end dates are monthly data too and are moved to the month start (:func:`to_grid`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

__all__ = [
    "FORECAST_SCHEMA",
    "FREQS",
    "QUANTILE_COLUMNS",
    "RESIDUAL_SCHEMA",
    "STAGES",
    "ForecastRunMeta",
    "forecast_runs",
    "infer_freq",
    "latest_forecast_run",
    "period_days",
    "quantile_column",
    "quantile_columns",
    "read_forecasts",
    "read_residuals",
    "sales_watermark",
    "to_grid",
    "write_forecasts",
    "write_residuals",
]

#: Stages that write forecasts.
STAGES = ("base", "reconciled")
#: Supported grids and their mean period length in days.
FREQS = {"D": 1.0, "W": 7.0, "MS": 365.25 / 12}
#: Quantile columns of the default levels (0.1, 0.25, 0.5, 0.75, 0.9).
QUANTILE_COLUMNS = ("p10", "p25", "p50", "p75", "p90")
#: The fixed columns of a forecast frame (the quantile columns follow them).
FORECAST_SCHEMA: dict[str, Any] = {
    "unique_id": pl.String,
    "level": pl.String,
    "sku_id": pl.String,
    "location_id": pl.String,
    "channel_id": pl.String,
    "date": pl.Date,
    "horizon": pl.Int64,
    "source": pl.String,
    "model_version": pl.String,
    "cold_start": pl.Boolean,
}
#: Columns of stored backtest residuals.
RESIDUAL_SCHEMA: dict[str, Any] = {
    "unique_id": pl.String,
    "origin": pl.Int64,
    "horizon": pl.Int64,
    "residual": pl.Float64,
}
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


def quantile_column(q: float) -> str:
    """Column name of quantile level ``q``: 0.1 -> ``p10``, 0.05 -> ``p05``, 0.975 -> ``p97.5``."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"quantile level {q!r}: expected a number in (0, 1)")
    pct = round(q * 100, 6)
    return f"p{int(pct):02d}" if pct == int(pct) else f"p{pct:g}"


def quantile_columns(levels: Sequence[float]) -> list[str]:
    """:func:`quantile_column` of each level, in order."""
    return [quantile_column(q) for q in levels]


@dataclasses.dataclass(frozen=True)
class ForecastRunMeta:
    """What one stored forecast run is and where it came from.

    Attributes:
        run_id: the run (names the files; the cycle's run id or a stage's own).
        tenant: owner.
        stage: ``base`` or ``reconciled``.
        freq: grid of the periods (``D``, ``W``, ``MS``).
        horizon: periods forecast.
        levels: quantile levels of the quantile columns, increasing.
        data_watermark: :func:`sales_watermark` of the sales the forecast was made from.
        model_name: registered model, or None.
        model_version: model version, or None when every unit came from a baseline.
        method: reconciliation method (stage ``reconciled``).
        base_run: the base run a reconciled run came from.
        created_at: UTC ISO time of the write (filled by :func:`write_forecasts`).
        extra: anything else worth keeping (counts, coherence error, hierarchy levels, inputs used).
    """

    run_id: str
    tenant: str
    stage: str
    freq: str
    horizon: int
    levels: tuple[float, ...]
    data_watermark: str
    model_name: str | None = None
    model_version: str | None = None
    method: str | None = None
    base_run: str | None = None
    created_at: str = ""
    extra: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"ForecastRunMeta.stage={self.stage!r}: expected one of {STAGES}")
        if self.freq not in FREQS:
            raise ValueError(f"ForecastRunMeta.freq={self.freq!r}: expected one of {tuple(FREQS)}")
        if not _RUN_ID.match(self.run_id or ""):
            raise ValueError(
                f"ForecastRunMeta.run_id={self.run_id!r}: expected 1-128 letters, digits, '_', '.', ':', '-'"
            )
        if self.horizon < 1:
            raise ValueError(f"ForecastRunMeta.horizon={self.horizon}: expected >= 1")
        lv = tuple(float(q) for q in self.levels)
        if not lv or any(not 0 < q < 1 for q in lv) or list(lv) != sorted(set(lv)):
            raise ValueError(f"ForecastRunMeta.levels={self.levels!r}: expected increasing levels in (0, 1)")
        object.__setattr__(self, "levels", lv)

    @property
    def quantile_columns(self) -> list[str]:
        """The quantile columns of this run's frame."""
        return quantile_columns(self.levels)

    def to_json(self) -> dict:
        """A JSON-ready dict."""
        d = dataclasses.asdict(self)
        d["levels"] = list(self.levels)
        return d

    @classmethod
    def from_json(cls, d: dict) -> ForecastRunMeta:
        """The inverse of :meth:`to_json` (unknown keys are kept in ``extra``)."""
        names = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in d.items() if k in names}
        unknown = {k: v for k, v in d.items() if k not in names}
        if unknown:
            known["extra"] = {**known.get("extra", {}), **unknown}
        known["levels"] = tuple(known.get("levels", ()))
        return cls(**known)


def _facts_dir(facts_dir: Path | None) -> Path:
    if facts_dir is not None:
        return Path(facts_dir)
    from features.settings import get_settings

    return Path(get_settings().facts_dir)


def _stage_dir(facts_dir: Path | None, tenant: str, stage: str) -> Path:
    if stage not in STAGES:
        raise ValueError(f"stage={stage!r}: expected one of {STAGES}")
    return _facts_dir(facts_dir) / "forecasts" / f"tenant={tenant}" / f"stage={stage}"


def _replace_atomically(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _check_frame(frame: pl.DataFrame, meta: ForecastRunMeta) -> pl.DataFrame:
    qcols = meta.quantile_columns
    missing = [c for c in (*FORECAST_SCHEMA, *qcols) if c not in frame.columns]
    if missing:
        raise ValueError(
            f"forecast frame: missing column(s) {missing}; expected {list(FORECAST_SCHEMA)} + {qcols}"
        )
    out = frame.select(
        *[pl.col(c).cast(t) for c, t in FORECAST_SCHEMA.items()],
        *[pl.col(c).cast(pl.Float64) for c in qcols],
    )
    for c in ("unique_id", "level", "date", "horizon", "source"):
        n = out[c].null_count()
        if n:
            raise ValueError(f"forecast frame: column {c!r} has {n} empty value(s); every row needs one")
    bad_h = out.filter((pl.col("horizon") < 1) | (pl.col("horizon") > meta.horizon)).height
    if bad_h:
        raise ValueError(f"forecast frame: {bad_h} row(s) with horizon outside 1..{meta.horizon}")
    finite = [(~pl.col(c).is_finite().fill_null(False)).sum().alias(c) for c in qcols]
    steps = [
        (pl.col(lo) > pl.col(hi) + 1e-9 * (1.0 + pl.col(hi).abs())).sum().alias(f"{lo}>{hi}")
        for lo, hi in zip(qcols, qcols[1:], strict=False)
    ]
    counts = out.select(*finite, *steps).row(0, named=True)  # one parallel pass over the quantiles
    if any(counts[c] for c in qcols):
        raise ValueError("forecast frame: quantile columns hold NaN, infinite or empty values")
    for name in counts:
        if ">" in name and counts[name]:
            lo, hi = name.split(">")
            raise ValueError(
                f"forecast frame: {counts[name]} row(s) with {lo} > {hi}; quantiles must be monotone"
            )
    return out


def _grouped(rows: pl.DataFrame) -> bool:
    """Whether every node's rows form one block with horizons increasing (checked in O(rows), no sort)."""
    if rows.height == 0:
        return True
    new_block = pl.col("unique_id") != pl.col("unique_id").shift(1)
    check = rows.select(
        blocks=new_block.fill_null(True).sum(),
        nodes=pl.col("unique_id").n_unique(),
        bad=((~new_block.fill_null(True)) & (pl.col("horizon") <= pl.col("horizon").shift(1))).sum(),
    ).row(0, named=True)
    return check["blocks"] == check["nodes"] and check["bad"] == 0


def write_forecasts(
    tenant: str, frame: pl.DataFrame, meta: ForecastRunMeta, *, facts_dir: Path | None = None
) -> Path:
    """Store one forecast run (replacing an earlier write of the same tenant, stage and run).

    Args:
        tenant: owner.
        frame: rows in :data:`FORECAST_SCHEMA` plus ``meta.quantile_columns``; shape (nodes x H, 10 + Q).
        meta: the run's metadata (``created_at`` is filled here).
        facts_dir: fact store root (default: settings).

    Returns:
        The Parquet file written.

    Raises:
        ValueError: a column is missing or empty, quantiles are not monotone, a horizon is out of range, or a
            (unique_id, horizon) pair repeats; nothing is written then.
    """
    if meta.tenant != tenant:
        raise ValueError(f"write_forecasts: meta.tenant={meta.tenant!r} but tenant={tenant!r}")
    rows = _check_frame(frame, meta)
    if not _grouped(rows):  # readers rely on one block per node in horizon order; sort only when needed
        rows = rows.sort("level", "unique_id", "horizon")
        if not _grouped(rows):  # sorted, so only a repeated (unique_id, horizon) breaks the blocks
            dup = rows.select(pl.struct("unique_id", "horizon").is_duplicated().sum()).item()
            raise ValueError(f"forecast frame: {dup} duplicated (unique_id, horizon) row(s)")
    meta = dataclasses.replace(
        meta,
        created_at=datetime.now(UTC).isoformat(timespec="microseconds"),
        extra={**meta.extra, "rows": rows.height, "units": rows["unique_id"].n_unique()},
    )
    folder = _stage_dir(facts_dir, tenant, meta.stage)
    folder.mkdir(parents=True, exist_ok=True)
    data, info = folder / f"run={meta.run_id}.parquet", folder / f"run={meta.run_id}.json"
    info.unlink(missing_ok=True)  # the run is invisible while its rows are replaced
    _replace_atomically(data, lambda p: rows.write_parquet(p, compression="zstd", statistics=True))
    _replace_atomically(info, lambda p: p.write_text(json.dumps(meta.to_json(), default=str)))
    return data


def forecast_runs(
    tenant: str, stage: str | None = None, *, facts_dir: Path | None = None
) -> list[ForecastRunMeta]:
    """The tenant's stored runs (of ``stage``, or of every stage), newest first."""
    metas = []
    for st in (stage,) if stage else STAGES:
        folder = _stage_dir(facts_dir, tenant, st)
        if not folder.is_dir():
            continue
        for info in folder.glob("run=*.json"):
            if (folder / (info.stem + ".parquet")).exists():
                metas.append(ForecastRunMeta.from_json(json.loads(info.read_text())))
    return sorted(metas, key=lambda m: (m.created_at, m.run_id), reverse=True)


def latest_forecast_run(tenant: str, stage: str, *, facts_dir: Path | None = None) -> ForecastRunMeta | None:
    """The newest run of ``stage`` for ``tenant``, or None."""
    runs = forecast_runs(tenant, stage, facts_dir=facts_dir)
    return runs[0] if runs else None


def read_forecasts(
    tenant: str,
    stage: str = "reconciled",
    run_id: str | None = None,
    *,
    level: str | None = "bottom",
    units: Sequence[str] | None = None,
    facts_dir: Path | None = None,
) -> pl.DataFrame:
    """Rows of one stored run (the newest of ``stage`` when ``run_id`` is None).

    Args:
        tenant: owner.
        stage: ``base`` or ``reconciled``.
        run_id: a run; None: the newest.
        level: only rows of this level (None: all levels).
        units: only these ``unique_id`` values.
        facts_dir: fact store root (default: settings).

    Returns:
        The rows, one block per node in horizon order, with a ``run_id`` column added; an empty frame with
        the schema and the default quantile columns when nothing is stored.

    Raises:
        LookupError: ``run_id`` is given and no such run of ``stage`` exists for ``tenant``.
    """
    folder = _stage_dir(facts_dir, tenant, stage)
    if run_id is None:
        meta = latest_forecast_run(tenant, stage, facts_dir=facts_dir)
        if meta is None:
            return pl.DataFrame(
                schema={"run_id": pl.String, **FORECAST_SCHEMA, **{c: pl.Float64 for c in QUANTILE_COLUMNS}}
            )
        run_id = meta.run_id
    path = folder / f"run={run_id}.parquet"
    if not path.exists() or not (folder / f"run={run_id}.json").exists():
        raise LookupError(f"no {stage} forecast run {run_id!r} for tenant {tenant!r}")
    lf = pl.scan_parquet(path)
    if level is not None:
        lf = lf.filter(pl.col("level") == level)
    if units is not None:
        lf = lf.filter(pl.col("unique_id").is_in(list(units)))
    return lf.collect().with_columns(pl.lit(run_id).alias("run_id")).select("run_id", pl.exclude("run_id"))


def write_residuals(
    tenant: str, model_version: str, frame: pl.DataFrame, *, facts_dir: Path | None = None
) -> Path:
    """Store the backtest residuals of a model version (replacing earlier ones of that version).

    Args:
        tenant: owner.
        model_version: the registry version the residuals belong to.
        frame: ``unique_id``, ``origin``, ``horizon``, ``residual`` (actual - p50); missing actuals dropped.
        facts_dir: fact store root (default: settings).
    """
    missing = [c for c in RESIDUAL_SCHEMA if c not in frame.columns]
    if missing:
        raise ValueError(f"residual frame: missing column(s) {missing}; expected {list(RESIDUAL_SCHEMA)}")
    rows = frame.select([pl.col(c).cast(t) for c, t in RESIDUAL_SCHEMA.items()]).filter(
        pl.col("residual").is_not_null() & pl.col("residual").is_finite()
    )
    folder = _facts_dir(facts_dir) / "forecast_residuals" / f"tenant={tenant}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"version={_safe(model_version)}.parquet"
    _replace_atomically(path, lambda p: rows.write_parquet(p, compression="zstd"))
    return path


def read_residuals(tenant: str, model_version: str, *, facts_dir: Path | None = None) -> pl.DataFrame:
    """Backtest residuals of ``model_version`` (empty frame with :data:`RESIDUAL_SCHEMA` when none)."""
    path = (
        _facts_dir(facts_dir)
        / "forecast_residuals"
        / f"tenant={tenant}"
        / f"version={_safe(model_version)}.parquet"
    )
    if not path.exists():
        return pl.DataFrame(schema=RESIDUAL_SCHEMA)
    return pl.read_parquet(path)


def _safe(name: str) -> str:
    if not re.match(r"^[A-Za-z0-9_.:-]{1,128}$", str(name)):
        raise ValueError(f"model_version={name!r}: expected letters, digits, '_', '.', ':', '-'")
    return str(name)


def sales_watermark(tenant: str, *, facts_dir: Path | None = None) -> str:
    """A token that changes whenever the tenant's sales facts change (a batch added, replaced or removed).

    Made from the names, sizes and modification times of the committed sales files and the last stored
    month; reads no rows, so it is cheap enough to check on a serving path every few seconds. Empty sales
    give ``"none"``.
    """
    root = _facts_dir(facts_dir) / "sales" / f"tenant={tenant}"
    files = sorted(root.glob("period=*/*.parquet")) if root.is_dir() else []
    if not files:
        return "none"
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f.parent.name}/{f.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    last_period = files[-1].parent.name.split("=", 1)[1]
    return f"{last_period}:{len(files)}:{h.hexdigest()[:16]}"


def _as_dates(dates) -> pl.Series:
    s = dates if isinstance(dates, pl.Series) else pl.Series("date", dates)
    if isinstance(s.dtype, pl.Datetime):
        s = s.dt.date()
    if s.dtype != pl.Date:
        s = s.cast(pl.Date)
    return s


def infer_freq(dates) -> str:
    """The grid of a set of sales dates: ``D``, ``W`` or ``MS``.

    Monthly: every date is the first or every date the last day of its month. Weekly: every date falls on
    the same weekday and distinct dates are at least 7 days apart. Daily: anything else whose dates are
    distinct days (gaps are allowed; they are missing periods).

    Args:
        dates: the sales dates (any iterable of dates, a polars or pandas series).

    Raises:
        ValueError: no dates, or a mix of month-start and month-end dates.
    """
    s = _as_dates(dates).drop_nulls().unique().sort()
    if s.len() == 0:
        raise ValueError("infer_freq: no dates to read the grid from")
    day = s.dt.day()
    month_end = s.dt.month_end()
    if s.len() >= 2 and (day == 1).all():
        return "MS"
    if s.len() >= 2 and (s == month_end).all():
        return "MS"
    weekday = s.dt.weekday()
    if s.len() >= 2 and weekday.n_unique() == 1:
        return "W"
    if s.len() >= 2 and ((day == 1) | (s == month_end)).all():
        raise ValueError(
            "infer_freq: the dates mix month starts and month ends; use one convention for monthly data "
            f"(e.g. {s[0]} and {s[-1]})"
        )
    return "D"


def to_grid(dates, freq: str) -> pl.Series:
    """Dates moved onto the ``freq`` grid: any day -> its month start for ``MS``; D and W unchanged.

    Returns:
        A polars Date series of the same length.
    """
    if freq not in FREQS:
        raise ValueError(f"freq={freq!r}: expected one of {tuple(FREQS)}")
    s = _as_dates(dates)
    return s.dt.month_start() if freq == "MS" else s


def period_days(freq: str) -> float:
    """Mean length of one period of ``freq`` in days (1, 7, 30.44)."""
    if freq not in FREQS:
        raise ValueError(f"freq={freq!r}: expected one of {tuple(FREQS)}")
    return FREQS[freq]
