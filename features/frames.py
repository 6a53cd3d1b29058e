"""Feature frames: long sales facts turned into dense per-series panels for forecasting.

A :class:`Panel` holds, for ``N`` planning units over ``T`` periods, the target history, the known future
inputs (prices, promotions, holidays, calendar), static attributes and the hierarchy keys, as dense arrays
that a window sampler can gather from without any per-row Python. Frames are built from a DataFrame with
vectorised polars/pandas/NumPy operations only.

:func:`tenant_frame` turns any tenant's facts (sales, the promotions calendar, SKU and location master
data) into the model frame of :func:`tenant_spec` on the tenant's grid (daily ``D``, weekly ``W``, monthly
``MS``): price relative to the series' usual price, promotion flag and discount depth as known inputs (future
periods from the promotions calendar), calendar inputs from the dates, seasonal target lags, and the
SKU/location attributes as static categoricals.

Missing target values are ``NaN``; known inputs are expected for every period of the panel, including future
periods beyond the last observed target (that is what makes them *known*).

This module is the public face; :class:`FrameSpec` and the grids live in ``features._grids``, the tenant
frame in ``features._tenant_frames``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features._grids import (
    CALENDAR_INPUTS,
    GRIDS,
    LAG_PREFIX,
    MASTER_ATTRIBUTES,
    TENANT_KEYS,
    FrameSpec,
    grid_of,
    pandas_freq,
    snap_dates,
)
from features._tenant_frames import master_attributes, tenant_frame, tenant_spec, unit_statics

__all__ = [
    "CALENDAR_INPUTS",
    "FrameSpec",
    "LAG_PREFIX",
    "MASTER_ATTRIBUTES",
    "Panel",
    "SALES_SPEC",
    "TENANT_KEYS",
    "add_target_lags",
    "build_panel",
    "concat_panels",
    "extend_known",
    "grid_of",
    "master_attributes",
    "pandas_freq",
    "sales_frame",
    "sales_spec",
    "snap_dates",
    "tenant_frame",
    "tenant_spec",
    "unit_statics",
]



_CALENDAR = {
    "month": lambda t: t.month,
    "weekday": lambda t: t.weekday,
    "day_of_month": lambda t: t.day,
    "week_of_year": lambda t: t.isocalendar().week,
}
# Every value a calendar input can take: a model trained on five months still knows the sixth.
_CALENDAR_VALUES = {
    "month": range(1, 13),
    "weekday": range(7),
    "day_of_month": range(1, 32),
    "week_of_year": range(1, 54),
}


def _calendar_vocab(name: str, vocab: dict) -> list[str]:
    return vocab[name] if name in vocab else sorted(str(v) for v in _CALENDAR_VALUES[name])


@dataclass
class Panel:
    """Dense per-series arrays.

    Attributes:
        spec: the column roles.
        keys: (N, len(series_keys)) key values per series, in panel order.
        times: (T,) ``datetime64`` grid.
        y: (N, T) float32 target, ``NaN`` where unobserved.
        known_real: (N, T, Kr) float32 known continuous inputs (``NaN`` filled with 0).
        known_cat: (N, T, Kc) int64 codes into ``vocab[name]``.
        static_cat: (N, Sc) int64 codes into ``vocab[name]``.
        static_real: (N, Sr) float32.
        vocab: category labels per categorical, sorted as strings.
        first: (N,) index of the first observed target per series (T if none).
        last: (N,) index of the last observed target per series (-1 if none).
    """

    spec: FrameSpec
    keys: pd.DataFrame
    times: np.ndarray
    y: np.ndarray
    known_real: np.ndarray
    known_cat: np.ndarray
    static_cat: np.ndarray
    static_real: np.ndarray
    vocab: dict[str, list[str]] = field(default_factory=dict)
    first: np.ndarray | None = None
    last: np.ndarray | None = None

    @property
    def n_series(self) -> int:
        """Number of series N."""
        return self.y.shape[0]

    @property
    def n_times(self) -> int:
        """Number of periods T."""
        return self.y.shape[1]

    def series_ids(self) -> list[str]:
        """One string id per series, ``key1|key2|...``."""
        cols = [self.keys[c].astype(str) for c in self.keys.columns]
        if not cols:
            return []
        return cols[0].str.cat(cols[1:], sep="|").tolist() if len(cols) > 1 else cols[0].tolist()

    def time_index(self, when) -> int:
        """Index of a timestamp in the grid.

        Raises:
            KeyError: ``when`` is not on the grid.
        """
        pos = int(np.searchsorted(self.times, np.datetime64(pd.Timestamp(when), "ns")))
        if pos >= len(self.times) or self.times[pos] != np.datetime64(pd.Timestamp(when), "ns"):
            raise KeyError(f"{when!r} is not on the panel's time grid ({self.times[0]} .. {self.times[-1]})")
        return pos


def _codes(values: pd.Series, vocab: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    s = values.astype(str)
    labels = sorted(s.unique()) if vocab is None else list(vocab)
    cat = pd.Categorical(s, categories=labels)
    codes = cat.codes.astype(np.int64)
    if (codes < 0).any():
        unknown = sorted(set(s[codes < 0]))[:5]
        raise ValueError(f"unknown categories {unknown}: not in the vocabulary the model was trained with")
    return codes, labels


def _observed_span(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last observed period of each series of ``y`` (N, T); (T, -1) for a series never observed."""
    n_t = y.shape[1]
    observed = ~np.isnan(y)
    any_obs = observed.any(axis=1)
    first = np.where(any_obs, observed.argmax(axis=1), n_t)
    last = np.where(any_obs, n_t - 1 - observed[:, ::-1].argmax(axis=1), -1)
    return first, last


def build_panel(df, spec: FrameSpec, vocab: dict[str, list[str]] | None = None, *, statics=None) -> Panel:
    """Turn a long frame (one row per series and period) into a dense :class:`Panel`.

    Args:
        df: long frame (pandas, or polars for large panels) with the columns named in ``spec``; (series,
            time) pairs must be unique.
        spec: the column roles.
        vocab: category vocabularies to reuse (those of a trained model); new ones are derived when None.
        statics: polars only: one row per series with the series keys and the static columns (e.g.
            :func:`unit_statics`), instead of static columns on every row of ``df``.

    Returns:
        The panel, series sorted by their keys, time grid from the first to the last timestamp at
        ``spec.freq``.

    Raises:
        ValueError: a named column is missing, (series, time) pairs repeat, or a timestamp is off the grid.
    """
    if not isinstance(df, pd.DataFrame):
        return _build_panel_polars(df, spec, vocab, statics)
    needed = [
        *spec.series_keys,
        spec.time,
        spec.target,
        *spec.known_reals,
        *spec.static_reals,
        *spec.static_categoricals,
        *(c for c in spec.known_categoricals if c not in _CALENDAR),
    ]
    missing = [c for c in dict.fromkeys(needed) if c not in df.columns]
    if missing:
        raise ValueError(f"frame is missing column(s) {missing}; expected the columns named in the FrameSpec")
    keys = list(spec.series_keys)
    t = pd.to_datetime(df[spec.time])
    grid = pd.date_range(t.min(), t.max(), freq=spec.freq)
    times = grid.values.astype("datetime64[ns]")
    t_idx = np.searchsorted(times, t.values.astype("datetime64[ns]"))
    off = (t_idx >= len(times)) | (
        times[np.minimum(t_idx, len(times) - 1)] != t.values.astype("datetime64[ns]")
    )
    if off.any():
        bad = t[off].iloc[0]
        raise ValueError(f"column {spec.time!r}: {bad} is not on the {spec.freq!r} grid starting {grid[0]}")

    key_frame = df[keys].astype(str)
    grouper = key_frame.groupby(keys, sort=True)
    s_idx = grouper.ngroup().to_numpy()
    uniq_keys = grouper.size().index.to_frame(index=False)
    n, n_t = len(uniq_keys), len(times)
    if pd.Series(s_idx * n_t + t_idx).duplicated().any():
        raise ValueError(f"frame has repeated ({', '.join(keys)}, {spec.time}) rows; aggregate them first")

    y = np.full((n, n_t), np.nan, dtype=np.float32)
    y[s_idx, t_idx] = pd.to_numeric(df[spec.target], errors="raise").to_numpy(np.float32)

    known_real = np.zeros((n, n_t, len(spec.known_reals)), dtype=np.float32)
    for j, c in enumerate(spec.known_reals):
        known_real[s_idx, t_idx, j] = np.nan_to_num(df[c].to_numpy(np.float32))

    vocab = dict(vocab or {})
    known_cat = np.zeros((n, n_t, len(spec.known_categoricals)), dtype=np.int64)
    grid_ts = pd.DatetimeIndex(times)
    for j, c in enumerate(spec.known_categoricals):
        if c in _CALENDAR and c not in df.columns:
            vals = pd.Series(np.asarray(_CALENDAR[c](grid_ts)))
            codes, vocab[c] = _codes(vals, _calendar_vocab(c, vocab))
            known_cat[:, :, j] = codes[None, :]
        else:
            codes, vocab[c] = _codes(df[c], vocab.get(c))
            known_cat[s_idx, t_idx, j] = codes

    first_rows = np.unique(s_idx, return_index=True)[1]
    static_cat = np.zeros((n, len(spec.static_categoricals)), dtype=np.int64)
    for j, c in enumerate(spec.static_categoricals):
        codes, vocab[c] = _codes(df[c].iloc[first_rows].reset_index(drop=True), vocab.get(c))
        static_cat[:, j] = codes
    static_real = np.zeros((n, len(spec.static_reals)), dtype=np.float32)
    for j, c in enumerate(spec.static_reals):
        static_real[:, j] = np.nan_to_num(df[c].to_numpy(np.float32)[first_rows])

    first, last = _observed_span(y)
    return Panel(
        spec=spec,
        keys=uniq_keys,
        times=times,
        y=y,
        known_real=known_real,
        known_cat=known_cat,
        static_cat=static_cat,
        static_real=static_real,
        vocab=vocab,
        first=first,
        last=last,
    )


def add_target_lags(df: pd.DataFrame, spec: FrameSpec, lags: Sequence[int], prefix: str = "log_volume_lag"):
    """Add ``<prefix><k>`` = log1p(target k periods earlier) per series, for lags at least the horizon.

    Such a lag is a *known* input over any horizon up to k. Periods with no value k periods earlier (the
    first k of a series, only ever in an encoder) take the period's own log1p(target), which the encoder sees
    anyway. Recompute after appending future rows (:func:`extend_known`) so the lags of the future come from
    history.

    Args:
        df: long frame sorted or not; one row per (series, period).
        spec: the column roles.
        lags: the lags k.
        prefix: column name prefix.

    Returns:
        ``df`` with the lag columns (a copy).
    """
    out = df.copy()
    out["_t"] = pd.to_datetime(out[spec.time])
    out = out.sort_values([*spec.series_keys, "_t"])
    g = out.groupby(list(spec.series_keys), sort=False, observed=True)[spec.target]
    own = np.log1p(out[spec.target].clip(lower=0))
    for k in lags:
        lagged = np.log1p(g.shift(k).clip(lower=0))
        out[f"{prefix}{k}"] = lagged.fillna(own).fillna(0.0).astype(np.float32)
    return out.drop(columns="_t").sort_index()


def extend_known(df: pd.DataFrame, spec: FrameSpec, periods: int) -> pd.DataFrame:
    """Append ``periods`` future rows per series carrying the known inputs forward (target left missing).

    Known reals and categoricals keep each series' last value (an assumption: today's price and promotion plan
    continue), calendar categoricals follow the dates, static attributes are copied. Use real future prices
    and promotions when they are known instead.

    Args:
        df: long frame in ``spec``'s columns, history only.
        spec: the column roles.
        periods: how many periods to add after each series' last row.

    Returns:
        ``df`` with the future rows appended (target ``NaN``).
    """
    keys = list(spec.series_keys)
    t = pd.to_datetime(df[spec.time])
    last_rows = (
        df.assign(**{spec.time: t}).sort_values(spec.time).groupby(keys, sort=False, observed=True).tail(1)
    )
    offsets = pd.tseries.frequencies.to_offset(spec.freq)
    futures = []
    for k in range(1, periods + 1):
        f = last_rows.copy()
        f[spec.time] = f[spec.time] + k * offsets
        f[spec.target] = np.nan
        futures.append(f)
    out = pd.concat([df.assign(**{spec.time: t}), *futures], ignore_index=True)
    if "month" in out.columns and "month" in spec.known_categoricals:
        out["month"] = out[spec.time].dt.month.astype(str)
    return out


SALES_SPEC = FrameSpec(
    series_keys=("sku_id", "location_id", "channel_id"),
    time="date",
    target="qty",
    known_reals=("price", "promo"),
    known_categoricals=("weekday",),
    static_categoricals=("channel_id",),
    freq="D",
)


def sales_spec(freq: str = "D", static_keys: bool = False) -> FrameSpec:
    """:data:`SALES_SPEC` on another grid: ``"D"`` (weekday), ``"W"``/``"W-<DAY>"`` (week), ``"MS"`` (month).

    Args:
        freq: grid of the sales dates (``"W"`` is weeks starting on Mondays).
        static_keys: every series key (SKU, location, channel) as a static categorical, not only the channel.
    """
    if grid_of(freq) not in GRIDS:
        raise ValueError(f"freq={freq!r}: the sales frame supports 'D', 'W' (or 'W-<DAY>') and 'MS'")
    cal = CALENDAR_INPUTS[grid_of(freq)][:1]
    freq = pandas_freq(grid_of(freq)) if freq == "W" else freq
    static = SALES_SPEC.series_keys if static_keys else SALES_SPEC.static_categoricals
    return dataclasses.replace(SALES_SPEC, freq=freq, known_categoricals=cal, static_categoricals=static)


def sales_frame(sales) -> pd.DataFrame:
    """A sales fact table (the contract's columns, polars or pandas) as a model frame for :data:`SALES_SPEC`.

    Missing prices are filled with the series' median price (0 if it never had one); ``promo`` becomes 0/1.
    """
    import polars as pl

    if isinstance(sales, pd.DataFrame):
        sales = pl.from_pandas(sales)
    keys = list(SALES_SPEC.series_keys)
    out = sales.with_columns(
        pl.col("price").fill_null(pl.col("price").median().over(keys)).fill_null(0.0).cast(pl.Float32),
        pl.col("promo").cast(pl.Float32),
        pl.col("qty").cast(pl.Float32),
    )
    return out.to_pandas()


def _polars_codes(col, labels: list[str] | None, name: str):
    import polars as pl

    col = col.cast(pl.String)
    labels = sorted(col.unique().drop_nulls().to_list()) if labels is None else list(labels)
    lut = pl.DataFrame({"_v": labels, "_c": np.arange(len(labels), dtype=np.int32)})
    codes = pl.DataFrame({"_v": col}).join(lut, on="_v", how="left", maintain_order="left")["_c"]
    if codes.null_count():
        unknown = sorted(set(col.filter(codes.is_null()).to_list()))[:5]
        raise ValueError(
            f"column {name!r}: unknown categories {unknown}: not in the vocabulary the model was trained with"
        )
    return codes.to_numpy().astype(np.int32), labels


def _grid_index(col, lo, freq: str):
    """Period index of dates from ``lo`` on the grid (off-grid dates land between indices; checked later)."""
    import polars as pl

    if freq == "MS":
        return (col.dt.year() - lo.year) * 12 + col.dt.month().cast(pl.Int64) - lo.month
    days = (col - pl.lit(lo)).dt.total_days()
    return days // 7 if freq.startswith("W") else days


def _build_panel_polars(df, spec: FrameSpec, vocab, statics) -> Panel:
    """:func:`build_panel` on a polars frame: joins and scatters, no per-row Python, no pandas copy."""
    import polars as pl

    keys = list(spec.series_keys)
    static_cols = [*spec.static_categoricals, *spec.static_reals]
    needed = [*keys, spec.time, spec.target, *spec.known_reals]
    needed += [c for c in spec.known_categoricals if c not in _CALENDAR]
    if statics is None:
        needed += static_cols
    missing = [c for c in dict.fromkeys(needed) if c not in df.columns]
    if missing:
        raise ValueError(f"frame is missing column(s) {missing}; expected the columns named in the FrameSpec")
    df = df.with_columns(*[pl.col(k).cast(pl.String) for k in keys], pl.col(spec.time).cast(pl.Date))
    units = df.select(keys).unique().sort(keys)
    if statics is not None:
        units = units.join(
            statics.with_columns(*[pl.col(k).cast(pl.String) for k in keys]),
            on=keys,
            how="left",
            maintain_order="left",
        )
        miss = [c for c in static_cols if c not in units.columns]
        if miss:
            raise ValueError(f"statics: missing column(s) {miss}")
    else:
        firsts = df.group_by(keys).agg(*[pl.col(c).first() for c in static_cols])
        units = units.join(firsts, on=keys, how="left", maintain_order="left")
    units = units.with_row_index("_s")
    lo, hi = df[spec.time].min(), df[spec.time].max()
    grid = pd.date_range(pd.Timestamp(lo), pd.Timestamp(hi), freq=spec.freq)
    times = grid.values.astype("datetime64[ns]")
    rows = df.join(units.select(*keys, "_s"), on=keys, how="left").with_columns(
        _grid_index(pl.col(spec.time), lo, spec.freq).alias("_t")
    )
    t_idx = rows["_t"].to_numpy()
    when = rows[spec.time].to_numpy().astype("datetime64[ns]")
    off = (t_idx < 0) | (t_idx >= len(times))
    off |= times[np.clip(t_idx, 0, len(times) - 1)] != when
    if off.any():
        bad = pd.Timestamp(when[off][0]).date()
        raise ValueError(
            f"column {spec.time!r}: {bad} is not on the {spec.freq!r} grid starting {grid[0].date()}"
        )
    s_idx = rows["_s"].to_numpy().astype(np.int64)
    n, n_t = units.height, len(times)
    flat = s_idx * n_t + t_idx
    if np.bincount(flat, minlength=n * n_t).max(initial=0) > 1:
        raise ValueError(f"frame has repeated ({', '.join(keys)}, {spec.time}) rows; aggregate them first")
    y = np.full((n, n_t), np.nan, dtype=np.float32)
    y.reshape(-1)[flat] = rows[spec.target].cast(pl.Float32).fill_null(float("nan")).to_numpy()
    known_real = np.zeros((n, n_t, len(spec.known_reals)), dtype=np.float32)
    for j, c in enumerate(spec.known_reals):
        known_real[s_idx, t_idx, j] = rows[c].cast(pl.Float32).fill_null(0.0).fill_nan(0.0).to_numpy()
    vocab = dict(vocab or {})
    known_cat = np.zeros((n, n_t, len(spec.known_categoricals)), dtype=np.int32)
    grid_ts = pd.DatetimeIndex(times)
    for j, c in enumerate(spec.known_categoricals):
        if c in _CALENDAR and c not in df.columns:
            vals = pd.Series(np.asarray(_CALENDAR[c](grid_ts))).astype(str)
            codes, vocab[c] = _polars_codes(pl.Series(vals.to_numpy()), _calendar_vocab(c, vocab), c)
            known_cat[:, :, j] = codes[None, :]
        else:
            codes, vocab[c] = _polars_codes(rows[c], vocab.get(c), c)
            known_cat[s_idx, t_idx, j] = codes
    static_cat = np.zeros((n, len(spec.static_categoricals)), dtype=np.int64)
    for j, c in enumerate(spec.static_categoricals):
        codes, vocab[c] = _polars_codes(units[c], vocab.get(c), c)
        static_cat[:, j] = codes
    static_real = np.zeros((n, len(spec.static_reals)), dtype=np.float32)
    for j, c in enumerate(spec.static_reals):
        static_real[:, j] = units[c].cast(pl.Float32).fill_null(0.0).to_numpy()
    first, last = _observed_span(y)
    return Panel(
        spec=spec,
        keys=units.select(keys).to_pandas(),
        times=times,
        y=y,
        known_real=known_real,
        known_cat=known_cat,
        static_cat=static_cat,
        static_real=static_real,
        vocab=vocab,
        first=first,
        last=last,
    )


def concat_panels(panels: Sequence[Panel]) -> Panel:
    """Stack panels over the same time grid and vocabularies (e.g. built chunk by chunk to bound memory)."""
    p0 = panels[0]
    for p in panels[1:]:
        if not np.array_equal(p.times, p0.times) or p.vocab != p0.vocab:
            raise ValueError("concat_panels: panels must share the time grid and the vocabularies")
    return Panel(
        spec=p0.spec,
        keys=pd.concat([p.keys for p in panels], ignore_index=True),
        times=p0.times,
        y=np.concatenate([p.y for p in panels]),
        known_real=np.concatenate([p.known_real for p in panels]),
        known_cat=np.concatenate([p.known_cat for p in panels]),
        static_cat=np.concatenate([p.static_cat for p in panels]),
        static_real=np.concatenate([p.static_real for p in panels]),
        vocab=p0.vocab,
        first=np.concatenate([p.first for p in panels]),
        last=np.concatenate([p.last for p in panels]),
    )
