"""Column roles of a long frame (:class:`FrameSpec`) and the time grids a tenant's facts can be on.

Internal to :mod:`features`; other packages import these names from :mod:`features.frames`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FrameSpec:
    """Which columns of a long frame play which role.

    Attributes:
        series_keys: columns identifying a planning unit, top of the hierarchy first (e.g. agency, sku).
        time: timestamp column.
        target: demand column.
        known_reals: continuous inputs known in advance (price, discount, holiday flags).
        known_categoricals: categorical inputs known in advance; ``"month"`` / ``"weekday"`` are derived from
            ``time`` when absent from the frame.
        static_categoricals: per-series categorical attributes (often the series keys themselves).
        static_reals: per-series continuous attributes (the first value per series is used).
        freq: pandas frequency of the time grid (``"MS"`` monthly, ``"D"`` daily, ``"W-MON"`` weekly on
            Mondays).
    """

    series_keys: tuple[str, ...]
    time: str
    target: str
    known_reals: tuple[str, ...] = ()
    known_categoricals: tuple[str, ...] = ()
    static_categoricals: tuple[str, ...] = ()
    static_reals: tuple[str, ...] = ()
    freq: str = "MS"

    def __post_init__(self) -> None:
        if not self.series_keys:
            raise ValueError("FrameSpec.series_keys: give at least one column identifying a series")


#: The grids a tenant's sales can be on.
GRIDS = ("D", "W", "MS")
#: Columns identifying a planning unit in the fact store.
TENANT_KEYS = ("sku_id", "location_id", "channel_id")
#: Master-data attributes used as static categoricals, by table.
MASTER_ATTRIBUTES = {"skus": ("category", "family", "brand"), "locations": ("region", "kind")}
#: Calendar inputs derived from the dates, by grid.
CALENDAR_INPUTS = {"D": ("weekday", "month"), "W": ("week_of_year",), "MS": ("month",)}
#: Name prefix of the seasonal target lag inputs (``log_qty_lag<k>`` = log1p(qty k periods earlier)).
LAG_PREFIX = "log_qty_lag"
_WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
_TENANT_REALS = ("price_ratio", "promo", "discount")


def pandas_freq(freq: str, weekday: int = 0) -> str:
    """The pandas frequency of a grid: ``"D"``, ``"MS"``, or ``"W-<DAY>"`` for weeks starting on ``weekday``.

    Args:
        freq: ``"D"``, ``"W"`` or ``"MS"`` (a pandas frequency is returned as is).
        weekday: first day of the weekly periods, 0 = Monday.
    """
    if freq == "W":
        return f"W-{_WEEKDAYS[weekday % 7]}"
    return freq


def grid_of(freq: str) -> str:
    """The grid (``"D"``, ``"W"``, ``"MS"``) of a pandas frequency such as ``"W-MON"``."""
    return "W" if freq.startswith("W") else freq


def _week_anchor(freq: str) -> int:
    return _WEEKDAYS.index(freq[2:]) if freq.startswith("W-") else 0


def snap_dates(col, freq: str):
    """A polars expression moving dates onto the grid ``freq`` (a pandas frequency of :func:`pandas_freq`).

    Monthly: any day of a month (month ends included) becomes the month start. Weekly: a date becomes the
    start of its week (the anchor weekday on or before it). Daily: unchanged.
    """
    import polars as pl

    col = pl.col(col) if isinstance(col, str) else col
    if freq == "MS":
        return col.dt.month_start()
    if freq.startswith("W"):
        back = (col.dt.weekday() - 1 - _week_anchor(freq)) % 7
        return col - pl.duration(days=back)
    return col
