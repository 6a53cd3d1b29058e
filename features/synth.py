"""Synthetic M5-like retail data of any size, for tests and scale benchmarks.

One call builds a consistent data set: a product hierarchy (category > family > brand > SKU), a location
hierarchy (national warehouse > regional DCs > stores), sales channels, suppliers with terms and noisy
observed lead times, daily/weekly/monthly sales with intermittent and seasonal demand and promotions,
inventory snapshots, open purchase orders and transfers, and one planning unit per series (SKU x store x
channel).

Every table is a :class:`polars.DataFrame` whose columns follow the ingest contracts of the same name in
:mod:`features.contracts`, so ``SynthData.write(dir)`` produces files that ``replenish ingest KIND FILE``
accepts as they are.

Example::

    from features.synth import generate
    data = generate(n_series=5_000, n_periods=3 * 365, freq="D", seed=0)
    data.sales   # (n_series * n_periods) rows: sku_id, location_id, channel_id, date, qty, price, promo
    data.write("out/", fmt="parquet")

Everything is vectorised NumPy (10 million sales rows take a few seconds); the random stream comes from
``numpy.random.default_rng(seed)`` only, so the same arguments give the same data.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

__all__ = ["FREQS", "SynthData", "generate", "observed_lead_times", "suppliers_and_terms"]

#: Supported frequencies: period length in days for D and W; M is calendar months.
FREQS = {"D": 1, "W": 7, "M": 30}
_CATEGORIES = ("FOODS", "HOBBIES", "HOUSEHOLD", "BEVERAGES", "PERSONAL_CARE")
_CHANNELS = ("store", "online", "wholesale")


@dataclasses.dataclass(frozen=True)
class SynthData:
    """A generated data set; every field is a polars DataFrame shaped like the ingest contract of its name.

    Attributes:
        sales: (n_series * n_periods) rows: sku_id, location_id, channel_id, date, qty (Int64 >= 0),
            price (Float64 > 0), promo (Boolean).
        skus: sku_id, name, category, family, brand, uom.
        locations: location_id, name, kind (store/dc/warehouse), region, parent_id (null for the warehouse).
        channels: channel_id, name.
        suppliers: supplier_id, name, country.
        supplier_terms: supplier_id, sku_id, unit_cost, moq, pack_size, max_order_qty,
            promised_lead_time_days.
        lead_times: observed deliveries: supplier_id, sku_id, order_date, receipt_date, lead_time_days.
        inventory: snapshots: sku_id, location_id, date, on_hand, on_order, backorders.
        purchase_orders: open lines: po_id, kind (purchase/transfer), supplier_id, from_location_id, sku_id,
            location_id, qty, order_date, eta, status.
        promotions: promoted rows: sku_id, location_id, channel_id, date, price, regular_price, discount,
            promo.
        planning_units: sku_id, location_id, channel_id, policy_kind, review_period_days, service_target,
            horizon_periods, owner_team.
        freq: "D", "W" or "M".
    """

    sales: pl.DataFrame
    skus: pl.DataFrame
    locations: pl.DataFrame
    channels: pl.DataFrame
    suppliers: pl.DataFrame
    supplier_terms: pl.DataFrame
    lead_times: pl.DataFrame
    inventory: pl.DataFrame
    purchase_orders: pl.DataFrame
    promotions: pl.DataFrame
    planning_units: pl.DataFrame
    freq: str = "D"

    #: Order in which the tables can be ingested (identities before the facts that refer to them).
    INGEST_ORDER = ("channels", "locations", "skus", "suppliers", "supplier_terms", "planning_units",
                    "sales", "promotions", "inventory", "lead_times", "purchase_orders")

    def tables(self) -> dict[str, pl.DataFrame]:
        """All tables by ingest KIND, in :attr:`INGEST_ORDER`."""
        return {name: getattr(self, name) for name in self.INGEST_ORDER}

    def write(self, directory: str | Path, fmt: str = "csv") -> dict[str, Path]:
        """Write every table to ``directory/<kind>.<fmt>`` and return the paths by KIND.

        Args:
            directory: created if missing.
            fmt: ``"csv"`` (ISO dates, ``true``/``false`` booleans) or ``"parquet"``.
        """
        if fmt not in ("csv", "parquet"):
            raise ValueError(f"fmt={fmt!r}: expected 'csv' or 'parquet'")
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        paths = {}
        for name, frame in self.tables().items():
            path = out / f"{name}.{fmt}"
            if fmt == "csv":
                frame.write_csv(path)
            else:
                frame.write_parquet(path)
            paths[name] = path
        return paths


def _period_dates(start: date, n_periods: int, freq: str) -> np.ndarray:
    """Period start dates, shape (n_periods,), dtype datetime64[D]."""
    d0 = np.datetime64(start, "D")
    if freq == "M":
        return (np.datetime64(start, "M") + np.arange(n_periods)).astype("datetime64[D]")
    return d0 + np.arange(n_periods) * FREQS[freq]


def _ids(prefix: str, n: int) -> np.ndarray:
    width = max(3, len(str(n)))
    return np.array([f"{prefix}_{i + 1:0{width}d}" for i in range(n)], dtype=object)


def _default_sizes(n_series: int, n_channels: int | None, n_locations: int | None) -> tuple[int, int, int]:
    if n_channels is None:
        n_channels = 1 if n_series < 8 else 2
    per_channel = math.ceil(n_series / n_channels)
    if n_locations is None:
        n_locations = max(1, round(math.sqrt(per_channel) / 2))
    n_locations = min(n_locations, per_channel)
    n_skus = math.ceil(per_channel / n_locations)
    return n_channels, n_locations, n_skus


def generate(
    n_series: int,
    n_periods: int,
    freq: str = "D",
    seed: int = 0,
    start: str | date = "2023-01-01",
    *,
    n_channels: int | None = None,
    n_locations: int | None = None,
    n_suppliers: int | None = None,
    intermittent_share: float = 0.3,
    promo_rate: float = 0.05,
    open_po_share: float = 0.2,
) -> SynthData:
    """Generate an M5-like data set of ``n_series`` SKU x store x channel series over ``n_periods`` periods.

    Demand per series is ``Poisson(level * trend * yearly * weekly * promo_lift * Gamma(5, 1/5))``: a share
    ``intermittent_share`` of the series have a level below one unit per period (mostly zeros, as in M5),
    the rest a log-normal level; the yearly season has a random amplitude and phase, the weekly one (daily
    data only) a weekend peak; promotions are Bernoulli per period with a random discount and lift.

    Args:
        n_series: number of planning units (SKU x store x channel), >= 1.
        n_periods: number of periods of sales history, >= 1.
        freq: "D" (daily), "W" (weekly, periods start on ``start``) or "M" (calendar months).
        seed: seed of the one ``numpy.random.Generator`` used.
        start: first period (ISO date or ``datetime.date``).
        n_channels: channels (default 1 below 8 series, else 2).
        n_locations: stores (default about sqrt(series per channel) / 2).
        n_suppliers: suppliers (default n_skus / 20, at least 2).
        intermittent_share: share of series with intermittent demand, in [0, 1].
        promo_rate: mean probability that a period is promoted, in [0, 1].
        open_po_share: share of SKU x store pairs with an open purchase order.

    Returns:
        A :class:`SynthData`; ``sales`` has exactly ``n_series * n_periods`` rows.
    """
    if freq not in FREQS:
        raise ValueError(f"freq={freq!r}: expected one of {sorted(FREQS)}")
    if n_series < 1 or n_periods < 1:
        raise ValueError(f"n_series={n_series}, n_periods={n_periods}: both must be >= 1")
    if not 0.0 <= intermittent_share <= 1.0 or not 0.0 <= promo_rate <= 1.0:
        raise ValueError("intermittent_share and promo_rate must lie in [0, 1]")
    rng = np.random.default_rng(seed)
    start_date = date.fromisoformat(start) if isinstance(start, str) else start
    n_channels, n_stores, n_skus = _default_sizes(n_series, n_channels, n_locations)
    if n_channels > len(_CHANNELS):
        raise ValueError(f"n_channels={n_channels}: at most {len(_CHANNELS)}")

    # --- identities: series i -> (sku, store, channel), unique by construction --------------------------
    idx = np.arange(n_series)
    sku_of = idx % n_skus
    store_of = (idx // n_skus) % n_stores
    chan_of = idx // (n_skus * n_stores)
    sku_ids = _ids("SKU", n_skus)
    store_ids = _ids("STORE", n_stores)
    chan_ids = np.array(_CHANNELS[:n_channels], dtype=object)

    skus = _skus(rng, sku_ids)
    locations, dc_of_store = _locations(rng, store_ids)
    channels = pl.DataFrame({"channel_id": chan_ids.tolist(),
                             "name": [c.capitalize() for c in chan_ids]})

    # --- demand ------------------------------------------------------------------------------------------
    dates = _period_dates(start_date, n_periods, freq)
    t = np.arange(n_periods)
    intermittent = rng.random(n_series) < intermittent_share
    level = np.where(intermittent, rng.uniform(0.05, 0.8, n_series),
                     rng.lognormal(np.log(8.0), 0.9, n_series)) * (FREQS[freq] if freq != "D" else 1)
    trend = 1.0 + rng.uniform(-0.2, 0.3, n_series)[:, None] * (t / max(n_periods - 1, 1))[None, :]
    doy = (dates - dates.astype("datetime64[Y]")).astype(np.int64)
    amp = rng.uniform(0.0, 0.4, n_series)[:, None]
    phase = rng.uniform(0.0, 2 * np.pi, n_series)[:, None]
    yearly = 1.0 + amp * np.sin(2 * np.pi * doy[None, :] / 365.25 + phase)
    if freq == "D":
        weekday = (dates.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
        weekly = np.array([0.9, 0.85, 0.9, 0.95, 1.1, 1.3, 1.2])[weekday][None, :]
    else:
        weekly = np.ones((1, n_periods))
    p_promo = rng.uniform(0.0, 2.0 * promo_rate, n_series)[:, None]
    promo = rng.random((n_series, n_periods)) < p_promo
    discount = np.where(promo, np.round(rng.uniform(0.1, 0.35, (n_series, n_periods)), 2), 0.0)
    lift = 1.0 + promo * rng.uniform(0.3, 1.2, n_series)[:, None]
    lam = level[:, None] * trend * yearly * weekly * lift
    lam *= rng.gamma(5.0, 1.0 / 5.0, (n_series, n_periods))
    qty = rng.poisson(lam)

    base_price = skus["_base_price"].to_numpy()[sku_of]
    price = np.round(base_price[:, None] * (1.0 - discount), 2)
    n_rows = n_series * n_periods
    series_cols = {
        "sku_id": pl.Series(sku_ids.tolist(), dtype=pl.String)[sku_of],
        "location_id": pl.Series(store_ids.tolist(), dtype=pl.String)[store_of],
        "channel_id": pl.Series(chan_ids.tolist(), dtype=pl.String)[chan_of],
    }
    rep = pl.Series(np.repeat(np.arange(n_series), n_periods))
    sales = pl.DataFrame({
        **{k: v.gather(rep) for k, v in series_cols.items()},
        "date": pl.Series(np.tile(dates, n_series)).cast(pl.Date),
        "qty": pl.Series(qty.reshape(n_rows), dtype=pl.Int64),
        "price": pl.Series(price.reshape(n_rows)),
        "promo": pl.Series(promo.reshape(n_rows)),
    })
    promotions = (sales.with_columns(pl.Series("discount", discount.reshape(n_rows)))
                  .filter(pl.col("promo"))
                  .join(skus.select("sku_id", pl.col("_base_price").alias("regular_price")), on="sku_id",
                        maintain_order="left")
                  .select("sku_id", "location_id", "channel_id", "date", "price", "regular_price",
                          "discount", "promo"))
    del lam, trend, yearly, promo, discount, price, qty

    # --- supply ------------------------------------------------------------------------------------------
    suppliers, terms = _suppliers_and_terms(rng, skus, n_suppliers)
    lead_times = _observed_lead_times(rng, terms, dates)
    mean_demand = pl.DataFrame({"sku_id": series_cols["sku_id"], "location_id": series_cols["location_id"],
                                "mean": level}).group_by("sku_id", "location_id").agg(pl.col("mean").sum())
    mean_demand = mean_demand.sort("sku_id", "location_id")  # group_by's order varies run to run
    inventory, purchase_orders = _inventory_and_orders(rng, mean_demand, dc_of_store, terms, dates, freq,
                                                       open_po_share)
    planning_units = _planning_units(rng, series_cols, skus, freq)
    return SynthData(sales=sales, skus=skus.drop("_base_price"), locations=locations, channels=channels,
                     suppliers=suppliers, supplier_terms=terms, lead_times=lead_times, inventory=inventory,
                     purchase_orders=purchase_orders, promotions=promotions, planning_units=planning_units,
                     freq=freq)


def _skus(rng: np.random.Generator, sku_ids: np.ndarray) -> pl.DataFrame:
    n = len(sku_ids)
    n_cat = min(len(_CATEGORIES), max(1, n // 40))
    cat = rng.integers(0, n_cat, n)
    fam = rng.integers(0, max(1, min(5, n // 20)), n)
    brand = rng.integers(0, max(1, n // 10), n)
    return pl.DataFrame({
        "sku_id": sku_ids.tolist(),
        "name": [f"Product {s[4:]}" for s in sku_ids],
        "category": [_CATEGORIES[c] for c in cat],
        "family": [f"{_CATEGORIES[c]}_{f + 1}" for c, f in zip(cat, fam, strict=True)],
        "brand": [f"BRAND_{b + 1:03d}" for b in brand],
        "uom": "each",
        "_base_price": np.round(rng.lognormal(np.log(4.0), 0.6, n), 2),
    })


def _locations(rng: np.random.Generator, store_ids: np.ndarray) -> tuple[pl.DataFrame, np.ndarray]:
    n_stores = len(store_ids)
    n_regions = max(1, n_stores // 8)
    region_of_store = np.sort(rng.integers(0, n_regions, n_stores))
    region_of_store[: min(n_regions, n_stores)] = np.arange(min(n_regions, n_stores))  # every region used
    regions = [f"REGION_{r + 1:02d}" for r in range(n_regions)]
    dc_ids = [f"DC_{r + 1:02d}" for r in range(n_regions)]
    dc_of_store = np.array(dc_ids, dtype=object)[region_of_store]
    ids = ["WH_01", *dc_ids, *store_ids.tolist()]
    frame = pl.DataFrame({
        "location_id": ids,
        "name": ["National warehouse", *[f"Distribution centre {r}" for r in regions],
                 *[f"Store {s[6:]}" for s in store_ids]],
        "kind": ["warehouse"] + ["dc"] * n_regions + ["store"] * n_stores,
        "region": [None, *regions, *[regions[r] for r in region_of_store]],
        "parent_id": [None] + ["WH_01"] * n_regions + dc_of_store.tolist(),
    }, schema_overrides={"region": pl.String, "parent_id": pl.String})
    return frame, dc_of_store


def _suppliers_and_terms(rng: np.random.Generator, skus: pl.DataFrame,
                         n_suppliers: int | None) -> tuple[pl.DataFrame, pl.DataFrame]:
    n_skus = skus.height
    n_sup = n_suppliers or max(2, n_skus // 20)
    sup_ids = _ids("SUP", n_sup)
    promised = rng.choice(np.array([3, 5, 7, 10, 14, 21]), n_sup)
    suppliers = pl.DataFrame({"supplier_id": sup_ids.tolist(),
                              "name": [f"Supplier {s[4:]}" for s in sup_ids],
                              "country": rng.choice(np.array(["DE", "FR", "PL", "CN", "US", "MX"]),
                                                    n_sup).tolist()})
    # Every SKU has a primary supplier; about a third a second one (when there is another supplier).
    primary = np.arange(n_skus) % n_sup
    has_second = (rng.random(n_skus) < 0.35) & (n_sup > 1)
    second = (primary + 1 + rng.integers(0, max(n_sup - 1, 1), n_skus)) % n_sup
    sku_idx = np.concatenate([np.arange(n_skus), np.flatnonzero(has_second)])
    sup_idx = np.concatenate([primary, second[has_second]])
    m = len(sku_idx)
    base_price = skus["_base_price"].to_numpy()[sku_idx]
    pack = rng.choice(np.array([1, 6, 12, 24]), m)
    moq = pack * rng.choice(np.array([1, 2, 4]), m)
    terms = pl.DataFrame({
        "supplier_id": sup_ids[sup_idx].tolist(),
        "sku_id": skus["sku_id"].to_numpy()[sku_idx].tolist(),
        "unit_cost": np.round(base_price * rng.uniform(0.4, 0.7, m), 2),
        "moq": moq.astype(np.int64),
        "pack_size": pack.astype(np.int64),
        "max_order_qty": (moq * rng.choice(np.array([50, 100, 200]), m)).astype(np.int64),
        "promised_lead_time_days": promised[sup_idx].astype(np.int64),
    })
    return suppliers, terms


def _observed_lead_times(rng: np.random.Generator, terms: pl.DataFrame, dates: np.ndarray) -> pl.DataFrame:
    """About one delivery a month per supplier-SKU term (>= 2); lead time = promise x noise + delay."""
    first, last = dates[0], dates[-1]
    span = int((last - first).astype(np.int64)) + 1
    k = int(np.clip(span // 30, 2, 24))
    m = terms.height
    # k distinct order days per term: a random offset inside each of k equal slices of the history.
    slice_len = max(span // k, 1)
    offsets = np.arange(k)[None, :] * slice_len + rng.integers(0, slice_len, (m, k))
    order_date = first + np.minimum(offsets, span - 1).astype("timedelta64[D]")
    promised = terms["promised_lead_time_days"].to_numpy()[:, None].astype(float)
    late = rng.random((m, k)) < 0.12
    lt = promised * rng.lognormal(0.0, 0.2, (m, k)) + late * rng.gamma(2.0, promised / 3.0, (m, k))
    lt = np.maximum(np.rint(lt), 1).astype(np.int64)
    rep = np.repeat(np.arange(m), k)
    return pl.DataFrame({
        "supplier_id": terms["supplier_id"].gather(rep),
        "sku_id": terms["sku_id"].gather(rep),
        "order_date": pl.Series(order_date.reshape(-1)).cast(pl.Date),
        "receipt_date": pl.Series((order_date + lt.astype("timedelta64[D]")).reshape(-1)).cast(pl.Date),
        "lead_time_days": lt.reshape(-1),
    }).unique(["supplier_id", "sku_id", "order_date"], keep="first", maintain_order=True)


def suppliers_and_terms(rng: np.random.Generator, skus: pl.DataFrame,
                        n_suppliers: int | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Generated suppliers and supplier terms for ``skus`` (``sku_id`` and ``_base_price`` columns).

    The generator's own supply side, for data sets that carry demand only (the demo's bundled files).
    """
    return _suppliers_and_terms(rng, skus, n_suppliers)


def observed_lead_times(rng: np.random.Generator, terms: pl.DataFrame, dates: np.ndarray) -> pl.DataFrame:
    """Generated deliveries of ``terms`` over ``dates`` (datetime64[D], sorted): the ``lead_times`` KIND."""
    return _observed_lead_times(rng, terms, dates)


def _inventory_and_orders(rng: np.random.Generator, mean_demand: pl.DataFrame, dc_of_store: np.ndarray,
                          terms: pl.DataFrame, dates: np.ndarray, freq: str,
                          open_po_share: float) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Snapshots of SKU x store and SKU x DC at the last period; open POs to stores, transfers DC -> store."""
    last = dates[-1]
    per_day = mean_demand["mean"].to_numpy() / FREQS[freq]
    n = mean_demand.height
    on_hand = rng.poisson(per_day * rng.uniform(2.0, 25.0, n))
    stores = mean_demand["location_id"].to_numpy()
    store_num = np.array([int(s.rsplit("_", 1)[1]) - 1 for s in np.unique(stores)])
    dc_map = dict(zip(np.unique(stores).tolist(), dc_of_store[store_num].tolist(), strict=True))
    primary = terms.unique("sku_id", keep="first", maintain_order=True)
    rows = mean_demand.with_columns(pl.Series("on_hand", on_hand),
                                    pl.col("location_id").replace_strict(dc_map).alias("dc_id"))
    rows = rows.join(primary, on="sku_id", how="left", maintain_order="left")
    has_po = rng.random(n) < open_po_share
    has_tr = (rng.random(n) < open_po_share / 4) & ~has_po
    lead = rows["promised_lead_time_days"].fill_null(7).to_numpy()
    pack = rows["pack_size"].fill_null(1).to_numpy()
    moq = rows["moq"].fill_null(1).to_numpy()
    need = np.maximum(np.ceil(per_day * 14.0 / pack) * pack, moq).astype(np.int64)
    age = rng.integers(0, np.maximum(lead, 1))
    order_date = last - age.astype("timedelta64[D]")
    eta = order_date + lead.astype("timedelta64[D]")
    on_order = np.where(has_po | has_tr, need, 0)
    store_snap = pl.DataFrame({
        "sku_id": rows["sku_id"], "location_id": rows["location_id"],
        "date": pl.Series(np.full(n, last)).cast(pl.Date),
        "on_hand": pl.Series(on_hand, dtype=pl.Float64), "on_order": pl.Series(on_order, dtype=pl.Float64),
        "backorders": pl.Series(np.zeros(n), dtype=pl.Float64),
    })
    dc_snap = (rows.group_by("sku_id", "dc_id").agg((pl.col("mean").sum() / FREQS[freq] * 30).alias("cover"))
               .sort("sku_id", "dc_id"))
    dc_snap = pl.DataFrame({
        "sku_id": dc_snap["sku_id"], "location_id": dc_snap["dc_id"],
        "date": pl.Series(np.full(dc_snap.height, last)).cast(pl.Date),
        "on_hand": pl.Series(rng.poisson(dc_snap["cover"].to_numpy()), dtype=pl.Float64),
        "on_order": 0.0, "backorders": 0.0,
    })
    inventory = pl.concat([store_snap, dc_snap])
    sel = np.flatnonzero(has_po | has_tr)
    is_tr = has_tr[sel]
    po = pl.DataFrame({
        "po_id": [f"{'TR' if t else 'PO'}_{i + 1:07d}" for i, t in enumerate(is_tr)],
        "kind": np.where(is_tr, "transfer", "purchase").tolist(),
        "supplier_id": pl.Series(np.where(is_tr, None, rows["supplier_id"].to_numpy()[sel]).tolist(),
                                 dtype=pl.String),
        "from_location_id": pl.Series(np.where(is_tr, rows["dc_id"].to_numpy()[sel], None).tolist(),
                                      dtype=pl.String),
        "sku_id": rows["sku_id"].to_numpy()[sel].tolist(),
        "location_id": rows["location_id"].to_numpy()[sel].tolist(),
        "qty": pl.Series(need[sel], dtype=pl.Float64),
        "order_date": pl.Series(order_date[sel]).cast(pl.Date),
        "eta": pl.Series(eta[sel]).cast(pl.Date),
        "status": "open",
    }, schema_overrides={"kind": pl.String})
    return inventory, po


def _planning_units(rng: np.random.Generator, series_cols: dict[str, pl.Series], skus: pl.DataFrame,
                    freq: str) -> pl.DataFrame:
    n = len(series_cols["sku_id"])
    review = {"D": 7, "W": 7, "M": 30}[freq]
    horizon = {"D": 28, "W": 13, "M": 6}[freq]
    units = pl.DataFrame({
        **series_cols,
        "policy_kind": rng.choice(np.array(["periodic_review", "continuous_review"]), n,
                                  p=[0.8, 0.2]).tolist(),
        "review_period_days": pl.Series(np.full(n, review), dtype=pl.Int64),
        "service_target": rng.choice(np.array([0.9, 0.95, 0.98]), n),
        "horizon_periods": pl.Series(np.full(n, horizon), dtype=pl.Int64),
    })
    owner = skus.select("sku_id", ("team_" + pl.col("category").str.to_lowercase()).alias("owner_team"))
    return units.join(owner, on="sku_id", how="left", maintain_order="left")
