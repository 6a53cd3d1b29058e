"""A tenant's facts for training and forecasting: reads from the stores and the training panel.

Shared by :mod:`training.pipeline` (train, backtest) and :mod:`training.stage` (the forecast stage).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from features.frames import (
    TENANT_KEYS,
    FrameSpec,
    Panel,
    build_panel,
    master_attributes,
    tenant_frame,
    tenant_spec,
    unit_statics,
)

__all__ = [
    "TenantFacts",
    "grid_weekday",
    "open_engine",
    "read_master",
    "read_tenant_sales",
    "recent_sales",
    "sample_series",
    "tenant_panel",
]


@contextlib.contextmanager
def open_engine(settings, engine=None) -> Iterator:
    """``engine`` as is, or a migrated engine on ``settings.database_url`` disposed of on exit."""
    if engine is not None:
        yield engine
        return
    from features.store import make_engine, migrate

    settings.ensure_home()
    eng = make_engine(settings.database_url)
    migrate(eng)
    try:
        yield eng
    finally:
        eng.dispose()


def read_master(tenant: str, kind: str, *, settings, engine) -> pl.DataFrame:
    """A master-data table (``skus``, ``locations``, ``planning_units``) of the tenant."""
    from features.tables import read_table

    return read_table(kind, tenant, engine=engine, settings=settings)


def read_tenant_sales(tenant: str, *, settings, start: date | None = None) -> pl.DataFrame:
    """The tenant's sales facts from ``start`` on (all when None).

    Raises:
        ValueError: the tenant has no sales facts (the message names the ingest command).
    """
    from features.facts import read_sales

    sales = read_sales(tenant, start=start, facts_dir=settings.facts_dir)
    if sales.height == 0 and start is None:
        raise ValueError(
            f"tenant {tenant!r} has no sales facts; ingest them first "
            f"(replenish ingest sales FILE --tenant {tenant}, after its skus/locations/channels)"
        )
    return sales


def grid_weekday(dates: pl.Series) -> int:
    """The most common weekday of the dates (0 = Monday): the start of a weekly grid."""
    wd = dates.dt.weekday().mode()
    return int(wd.sort()[0]) - 1 if wd.len() else 0


@dataclass
class TenantFacts:
    """What a tenant's model frame is built from.

    Attributes:
        sales: sales facts (contract columns).
        promotions: promotions calendar (past and planned).
        skus: SKU master data.
        locations: location master data.
    """

    sales: pl.DataFrame
    promotions: pl.DataFrame
    skus: pl.DataFrame
    locations: pl.DataFrame

    @classmethod
    def read(
        cls, tenant: str, *, settings, engine, start: date | None = None, series: pl.DataFrame | None = None
    ) -> TenantFacts:
        """Everything of ``tenant``: sales and promotions from ``start`` on, only ``series`` when given."""
        from features.facts import read_promotions, scan_facts

        if series is None:
            sales = read_tenant_sales(tenant, settings=settings, start=start)
        else:  # a sample: stream the fact store through a semi-join instead of reading every row
            lf = scan_facts("sales", tenant, start=start, facts_dir=settings.facts_dir)
            sales = lf.join(series.lazy(), on=list(TENANT_KEYS), how="semi").collect(engine="streaming")
        return cls(
            sales=sales,
            promotions=read_promotions(tenant, start=start, facts_dir=settings.facts_dir),
            skus=read_master(tenant, "skus", settings=settings, engine=engine),
            locations=read_master(tenant, "locations", settings=settings, engine=engine),
        )

    def spec(self, freq: str, lags, attributes=None) -> FrameSpec:
        """The frame spec on ``freq`` with the master data's attributes (or ``attributes``)."""
        attrs = master_attributes(self.skus, self.locations) if attributes is None else tuple(attributes)
        weekday = grid_weekday(self.sales["date"]) if freq == "W" else 0
        return tenant_spec(freq, attributes=attrs, lags=lags, weekday=weekday)


def recent_sales(tenant: str, *, settings, months: int = 3) -> pl.DataFrame:
    """The sales of the last ``months`` stored months: enough dates to read the grid, and the active series.

    Raises:
        ValueError: the tenant has no sales facts.
    """
    from features.facts import list_periods

    periods = list_periods("sales", tenant, facts_dir=settings.facts_dir)
    if not periods:
        read_tenant_sales(tenant, settings=settings)  # raises the "ingest first" error
    y, m = (int(v) for v in periods[max(0, len(periods) - months)].split("-"))
    return read_tenant_sales(tenant, settings=settings, start=date(y, m, 1))


def sample_series(keys: pl.DataFrame, n: int, seed: int) -> pl.DataFrame:
    """``n`` of the series ``keys`` drawn at random (seeded), all of them when there are fewer.

    The sample covers every SKU, location and channel first (one random series each, as far as ``n``
    allows), so that the model learns an embedding for each id it will forecast; the rest is uniform.
    """
    keys = keys.select(TENANT_KEYS).unique().sort(TENANT_KEYS)
    if keys.height <= n:
        return keys
    rng = np.random.default_rng(seed)
    order = rng.permutation(keys.height)
    shuffled = keys[order].with_row_index("_r")
    cover = pl.concat(
        [shuffled.unique(k, keep="first", maintain_order=True)["_r"] for k in TENANT_KEYS]
    ).unique()
    cover = cover.sort()[:n]
    rest = np.setdiff1d(np.arange(keys.height), cover.to_numpy())[: n - len(cover)]
    pick = np.sort(order[np.concatenate([cover.to_numpy(), rest])])
    return keys[pick]


def tenant_panel(facts: TenantFacts, spec: FrameSpec, *, future: int = 0, vocab=None) -> Panel:
    """The dense panel of the tenant's facts (``future`` periods of known inputs after the history)."""
    df = tenant_frame(
        facts.sales,
        spec,
        promotions=facts.promotions,
        skus=facts.skus,
        locations=facts.locations,
        future=future,
    )
    statics = unit_statics(df.select(TENANT_KEYS).unique(), spec, skus=facts.skus, locations=facts.locations)
    return build_panel(df, spec, vocab=vocab, statics=statics)
