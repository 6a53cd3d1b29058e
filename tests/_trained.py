"""Synthetic tenants trained once per session on a tiny budget, for the training and CLI tests.

One intra-op thread for torch: the CI box has 2 cores shared by several jobs, and OpenMP threads spinning on
an oversubscribed machine slow small models down by orders of magnitude.

``trained`` ingests three synthetic tenants (daily with one short series, weekly, monthly with month-end
dates) into one session home (a real SQLite store, Parquet facts and MLflow backend), trains each once with a
tiny TFT and makes it champion; ``shared_home`` points a test's ``REPLENISH_HOME`` at that home. Registered
for the whole suite in ``tests/conftest.py`` (``pytest_plugins``), so it is trained at most once per session
whichever folder asks for it.
"""


from __future__ import annotations

import os
from dataclasses import dataclass

import polars as pl
import pytest


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    import torch

    torch.set_num_threads(1)


@dataclass
class Tenants:
    """The session's trained tenants: their data and train results."""

    home: str
    data: dict
    results: dict


#: Tiny windows per grid (the tiny budget of ``_tenant.TINY_TRAIN`` for the rest).
WINDOWS = {
    "daily": {"fit": {"encoder_length": 14, "horizon": 7}, "holdout": 7},
    "weekly": {"fit": {"encoder_length": 12, "horizon": 4}, "holdout": 4},
    "monthly": {"fit": {"encoder_length": 12, "min_encoder_length": 6, "horizon": 3}, "holdout": 3},
}
#: The short daily series (10 days of sales: no training window) added to the daily tenant.
SHORT_SERIES = ("SKU_007", "STORE_002", "online")


def _month_end(data):
    import dataclasses

    def shift(df):
        return df.with_columns(pl.col("date").dt.month_end()) if "date" in df.columns else df

    return dataclasses.replace(data, sales=shift(data.sales), promotions=shift(data.promotions))


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """Three tenants ingested and trained once (daily, weekly, monthly with month-end dates)."""
    from features.synth import generate
    from tests.training._tenant import TINY_TRAIN, ingest_synth
    from training.pipeline import promote
    from training.quiet import ShortSeriesWarning, quiet
    from training.stage import _merge, train_tenant

    root = tmp_path_factory.mktemp("trained")
    home = str(root / "home")
    mp = pytest.MonkeyPatch()
    mp.setenv("REPLENISH_HOME", home)
    daily = generate(30, 150, "D", seed=1)
    sku, loc, ch = SHORT_SERIES
    last = daily.sales["date"].max()
    from datetime import timedelta

    short = pl.DataFrame(
        {
            "sku_id": sku,
            "location_id": loc,
            "channel_id": ch,
            "date": [last - timedelta(days=k) for k in range(9, -1, -1)],
            "qty": [3] * 10,
            "price": [2.0] * 10,
            "promo": [False] * 10,
        }
    ).with_columns(pl.col("qty").cast(pl.Int64))
    import dataclasses

    daily = dataclasses.replace(daily, sales=pl.concat([daily.sales, short]))
    data = {
        "daily": daily,
        "weekly": generate(24, 90, "W", seed=2, start="2024-01-01"),
        "monthly": _month_end(generate(16, 40, "M", seed=3, start="2020-01-01")),
    }
    results = {}
    try:
        with quiet():
            for tenant, d in data.items():
                ingest_synth(tenant, root / f"in-{tenant}", data=d)
                if tenant == "daily":  # the short series is named in a warning, never silently dropped
                    with pytest.warns(
                        ShortSeriesWarning, match=r"1 of 31 series .*SKU_007\|STORE_002\|online"
                    ):
                        r = train_tenant(tenant, overrides=_merge(TINY_TRAIN, WINDOWS[tenant]))
                else:
                    r = train_tenant(tenant, overrides=_merge(TINY_TRAIN, WINDOWS[tenant]))
                if not r.promoted:
                    promote(r.version, r.model_name)
                results[tenant] = r
    finally:
        mp.undo()
    return Tenants(home=home, data=data, results=results)


@pytest.fixture
def shared_home(trained, monkeypatch):
    """This test's REPLENISH_HOME is the session's trained home."""
    monkeypatch.setenv("REPLENISH_HOME", trained.home)
    assert os.environ["REPLENISH_HOME"] == trained.home
    return trained
