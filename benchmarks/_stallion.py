"""The bundled Stallion data as a model frame, for the benchmarks only (the tutorial protocol).

Production forecasting knows only the fact store (``features.frames.tenant_frame``); the Stallion file enters
the product through ingest like any tenant's files. The benchmarks that reproduce pytorch-forecasting's TFT
tutorial (``stallion_accuracy.py``, ``inference.py``, ``gpu_training.py``) build the tutorial's own columns
from the raw file here: agency x SKU series, log regular price, discount, any special day that month, log
population and income, month, and optional seasonal lags of the volume.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from features.frames import FrameSpec, add_target_lags

__all__ = ["STALLION_PATH", "STALLION_SPEC", "stallion_frame", "stallion_spec", "stallion_panel"]

STALLION_PATH = Path(__file__).resolve().parent.parent / "data" / "stallion.parquet"

_STALLION_EVENTS = (
    "easter_day",
    "good_friday",
    "new_year",
    "christmas",
    "labor_day",
    "independence_day",
    "revolution_day_memorial",
    "regional_games",
    "fifa_u_17_world_cup",
    "football_gold_cup",
    "beer_capital",
    "music_fest",
)

STALLION_SPEC = FrameSpec(
    series_keys=("agency", "sku"),
    time="date",
    target="volume",
    known_reals=("log_price_regular", "discount_in_percent", "special_day"),
    known_categoricals=("month",),
    static_categoricals=("agency", "sku"),
    static_reals=("log_population", "log_income"),
    freq="MS",
)


def stallion_spec(lags: Sequence[int] = ()) -> FrameSpec:
    """:data:`STALLION_SPEC` plus a ``log_volume_lag<k>`` known input per seasonal lag k (k >= horizon)."""
    extra = tuple(f"log_volume_lag{k}" for k in lags)
    return dataclasses.replace(STALLION_SPEC, known_reals=(*STALLION_SPEC.known_reals, *extra))


def stallion_frame(df: pd.DataFrame, lags: Sequence[int] = ()) -> pd.DataFrame:
    """Derive the model columns of :data:`STALLION_SPEC` (or :func:`stallion_spec`) from raw Stallion.

    Args:
        df: the bundled ``stallion.parquet`` frame (agency, sku, date, volume, prices, events, demographics).
        lags: seasonal target lags to add as known inputs (see :func:`add_target_lags`).

    Returns:
        A copy with ``log_price_regular``, ``special_day`` (any holiday/event that month), ``log_population``,
        ``log_income``, ``month`` and the lag columns added.
    """
    out = df.copy()
    out["agency"] = out["agency"].astype(str)
    out["sku"] = out["sku"].astype(str)
    out["log_price_regular"] = np.log(out["price_regular"].clip(lower=1.0))
    out["special_day"] = (out[list(_STALLION_EVENTS)].to_numpy().sum(axis=1) > 0).astype(np.float32)
    out["log_population"] = np.log(out["avg_population_2017"].clip(lower=1))
    out["log_income"] = np.log(out["avg_yearly_household_income_2017"].clip(lower=1))
    out["month"] = pd.to_datetime(out["date"]).dt.month.astype(str)
    if lags:
        out = add_target_lags(out, STALLION_SPEC, lags)
    return out


def stallion_panel(lags: Sequence[int] = (), max_series: int | None = None, path: str | Path | None = None):
    """The Stallion panel of :func:`stallion_spec` (the first ``max_series`` agency x SKU series if given)."""
    from features.frames import build_panel

    df = pd.read_parquet(path or STALLION_PATH)
    if max_series is not None:
        keys = df[["agency", "sku"]].astype(str).drop_duplicates().sort_values(["agency", "sku"])
        keep = keys.head(max_series)
        df = df.merge(keep.astype(df[["agency", "sku"]].dtypes.to_dict()), on=["agency", "sku"])
    return build_panel(stallion_frame(df, tuple(lags)), stallion_spec(tuple(lags)))
