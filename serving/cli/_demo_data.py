"""The demo's data: the bundled Stallion file mapped to the ingest contracts, as a tenant's plain files.

This is demo wiring, not product code: the product knows only ingested facts. ``replenish demo`` writes these
files into ``$REPLENISH_HOME/demo-files/`` and ingests them through :func:`features.ingest.ingest` like any
user's files (master data first, in :attr:`features.synth.SynthData.INGEST_ORDER`), as tenant ``demo``.

``data/stallion.parquet``: 350 agency x SKU series, monthly 2013-2017, with volume, regular and actual prices,
discount, holidays/events and weather (the data of pytorch-forecasting's TFT tutorial). Mapping:

* agency -> location (kind ``store``, under one generated warehouse ``WH_GENERATED``), SKU -> SKU, one channel
  ``wholesale``; volume -> ``qty``; ``price_actual`` -> ``price`` (Stallion writes 0 or a negative number
  where an agency had no price: those become empty, the demand row is kept); ``promo`` = any discount.
* prices and discounts -> ``promotions`` (rows without a positive price are left out; rows whose actual price
  exceeds the regular one break the contract and are quarantined, as any input would be).

Stallion has no supply data. For the end-to-end demo, suppliers, supplier terms, observed lead times,
inventory positions, open purchase orders and planning units are generated beside it with a fixed seed. They
are marked as generated: their KINDs are listed under ``generated`` in the summary, supplier names start with
``[generated]``, and their files are called ``generated_<kind>.parquet``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

__all__ = ["DEMO_FILES", "GENERATED_KINDS", "STALLION_PATH", "ingest_demo_files", "load_into_store",
           "read_stallion", "stallion_sales", "stallion_tables", "write_demo_files"]

STALLION_PATH = Path(__file__).resolve().parents[2] / "data" / "stallion.parquet"
#: Folder of the demo's files under ``$REPLENISH_HOME``.
DEMO_FILES = "demo-files"
CHANNEL = "wholesale"
WAREHOUSE = "WH_GENERATED"
#: KINDs that Stallion does not contain and that are generated (seeded) for the demo.
GENERATED_KINDS = ("suppliers", "supplier_terms", "lead_times", "inventory", "purchase_orders",
                   "planning_units")


def read_stallion(path: str | Path | None = None) -> pl.DataFrame:
    """The raw Stallion frame: 21,000 rows x 27 columns; ``agency``/``sku`` as String, ``date`` as Date."""
    df = pl.read_parquet(path or STALLION_PATH)
    return df.drop([c for c in df.columns if c.startswith("__index")]).with_columns(
        pl.col("agency").cast(pl.String), pl.col("sku").cast(pl.String), pl.col("date").cast(pl.Date))


def stallion_sales(path: str | Path | None = None) -> pl.DataFrame:
    """Stallion demand in the sales contract's shape, (21,000, 7).

    Columns: sku_id, location_id, channel_id, date, qty, price (null where Stallion has no positive price),
    promo.
    """
    df = read_stallion(path)
    return df.select(
        pl.col("sku").alias("sku_id"), pl.col("agency").alias("location_id"),
        pl.lit(CHANNEL).alias("channel_id"), "date", pl.col("volume").alias("qty"),
        pl.when(pl.col("price_actual") > 0).then(pl.col("price_actual")).alias("price"),
        (pl.col("discount") > 0).alias("promo"),
    ).sort("sku_id", "location_id", "date")


def stallion_tables(path: str | Path | None = None, seed: int = 0) -> dict[str, pl.DataFrame]:
    """Every ingest KIND for the demo: Stallion's own data plus the generated supply side (fixed ``seed``)."""
    from features.synth import observed_lead_times, suppliers_and_terms

    df = read_stallion(path)
    sales = stallion_sales(path)
    agencies = sorted(df["agency"].unique().to_list())
    skus_ids = sorted(df["sku"].unique().to_list())
    locations = pl.DataFrame({
        "location_id": [WAREHOUSE, *agencies],
        "name": ["[generated] warehouse", *[a.replace("_", " ") for a in agencies]],
        "kind": ["warehouse"] + ["store"] * len(agencies),
        "parent_id": [None] + [WAREHOUSE] * len(agencies),
    }, schema_overrides={"parent_id": pl.String})
    regular = (df.filter(pl.col("price_regular") > 0).group_by("sku")
               .agg(pl.col("price_regular").median().alias("_base_price")).rename({"sku": "sku_id"}))
    skus = (pl.DataFrame({"sku_id": skus_ids, "name": [s.replace("_", " ") for s in skus_ids]})
            .join(regular, on="sku_id", how="left").with_columns(pl.col("_base_price").fill_null(1.0)))
    promotions = df.filter(pl.col("price_actual") > 0, pl.col("price_regular") > 0).select(
        pl.col("sku").alias("sku_id"), pl.col("agency").alias("location_id"),
        pl.lit(CHANNEL).alias("channel_id"), "date", pl.col("price_actual").alias("price"),
        pl.col("price_regular").alias("regular_price"),
        (pl.col("discount_in_percent") / 100).clip(0, 1).alias("discount"),
        (pl.col("discount") > 0).alias("promo"),
    )

    rng = np.random.default_rng(seed)
    suppliers, terms = suppliers_and_terms(rng, skus, n_suppliers=4)
    suppliers = suppliers.with_columns(("[generated] " + pl.col("name")).alias("name"))
    dates = np.sort(df["date"].unique().to_numpy()).astype("datetime64[D]")
    lead_times = observed_lead_times(rng, terms, dates)
    last = dates[-1]
    mean = sales.group_by("sku_id", "location_id").agg(pl.col("qty").mean().alias("mean")).sort("sku_id",
                                                                                                "location_id")
    n = mean.height
    primary = terms.unique("sku_id", keep="first", maintain_order=True)
    pairs = mean.join(primary, on="sku_id", how="left", maintain_order="left")
    inventory = pl.DataFrame({
        "sku_id": pairs["sku_id"], "location_id": pairs["location_id"],
        "date": pl.Series(np.full(n, last)).cast(pl.Date),
        "on_hand": np.round(pairs["mean"].to_numpy() * rng.uniform(0.3, 1.5, n), 1),
    })
    has_po = rng.random(n) < 0.25
    lead = pairs["promised_lead_time_days"].to_numpy()[has_po]
    order_date = last - rng.integers(0, lead + 1).astype("timedelta64[D]")
    po = pairs.filter(pl.Series(has_po))
    purchase_orders = pl.DataFrame({
        "po_id": [f"PO_GEN_{i + 1:05d}" for i in range(po.height)], "kind": "purchase",
        "supplier_id": po["supplier_id"], "sku_id": po["sku_id"], "location_id": po["location_id"],
        "qty": np.maximum(np.ceil(po["mean"].to_numpy() / po["pack_size"].to_numpy()), 1) * po["pack_size"],
        "order_date": pl.Series(order_date).cast(pl.Date),
        "eta": pl.Series(order_date + lead.astype("timedelta64[D]")).cast(pl.Date), "status": "open",
    })
    planning_units = pairs.select(
        "sku_id", "location_id", pl.lit(CHANNEL).alias("channel_id"),
        pl.lit("periodic_review").alias("policy_kind"), pl.lit(30).alias("review_period_days"),
        pl.lit(0.95).alias("service_target"), pl.lit(6).alias("horizon_periods"),
        pl.lit("team_stallion").alias("owner_team"))
    return {
        "channels": pl.DataFrame({"channel_id": [CHANNEL], "name": ["Wholesale"]}),
        "locations": locations, "skus": skus.drop("_base_price"), "suppliers": suppliers,
        "supplier_terms": terms, "planning_units": planning_units, "sales": sales, "promotions": promotions,
        "inventory": inventory, "lead_times": lead_times, "purchase_orders": purchase_orders,
    }


def write_demo_files(folder: str | Path, *, path: str | Path | None = None, seed: int = 0) -> dict[str, Path]:
    """Write every demo table as a Parquet file into ``folder`` (generated ones as ``generated_<kind>``).

    Returns:
        The files by ingest KIND, in :attr:`features.synth.SynthData.INGEST_ORDER`.
    """
    from features.synth import SynthData

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tables = stallion_tables(path, seed=seed)
    files = {}
    for kind in SynthData.INGEST_ORDER:
        name = f"generated_{kind}" if kind in GENERATED_KINDS else kind
        files[kind] = folder / f"{name}.parquet"
        tables[kind].write_parquet(files[kind])
    return files


def ingest_demo_files(files: dict[str, Path], tenant: str, *, engine=None, settings=None) -> dict:
    """Ingest the demo's files for ``tenant`` through ``features.ingest.ingest``, master data first.

    Contracts, quarantine and idempotence apply as to any user's file, so a second call adds nothing.

    Returns:
        ``{"tenant", "series", "periods", "first", "last", "generated": [kinds], "kinds": {kind: {"status",
        "rows", "stored", "updated", "duplicate", "quarantined", "generated", "exit_code"}}}``.
    """
    import polars as pl

    from features.synth import SynthData
    from serving.ingest import ingest_and_announce as ingest

    kinds = {}
    for kind in SynthData.INGEST_ORDER:
        r = ingest(kind, files[kind], tenant=tenant, engine=engine, settings=settings)
        kinds[kind] = {"status": r.status, "rows": r.rows_total, "stored": r.rows_stored,
                       "updated": r.rows_updated, "duplicate": r.rows_duplicate,
                       "quarantined": r.rows_quarantined, "generated": kind in GENERATED_KINDS,
                       "exit_code": r.exit_code}
    sales = pl.read_parquet(files["sales"], columns=["sku_id", "location_id", "date"])
    return {"tenant": tenant, "series": sales.select("sku_id", "location_id").n_unique(),
            "periods": sales["date"].n_unique(), "first": str(sales["date"].min()),
            "last": str(sales["date"].max()), "generated": list(GENERATED_KINDS), "kinds": kinds}


def load_into_store(settings=None, tenant: str | None = None, *, engine=None, path: str | Path | None = None,
                    seed: int = 0) -> dict:
    """Write the demo's files into ``<home>/demo-files/`` and ingest them for ``tenant`` (default: settings').

    Returns:
        :func:`ingest_demo_files`'s summary.
    """
    if settings is None:
        from features.settings import get_settings

        settings = get_settings()
    settings.ensure_home()
    files = write_demo_files(Path(settings.home) / DEMO_FILES, path=path, seed=seed)
    return ingest_demo_files(files, tenant or settings.tenant, engine=engine, settings=settings)
