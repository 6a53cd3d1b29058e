"""Fixtures of the data-layer tests: settings on the per-test home, a small synthetic data set on disk."""

from __future__ import annotations

import pytest

from features.synth import generate


@pytest.fixture
def settings():
    from features.settings import get_settings

    s = get_settings()
    s.ensure_home()
    return s


@pytest.fixture(scope="session")
def small():
    """A small synthetic data set: 24 series x 40 days."""
    return generate(n_series=24, n_periods=40, freq="D", seed=11)


@pytest.fixture
def files(small, tmp_path):
    """The small data set written as CSV, one file per KIND."""
    return small.write(tmp_path / "synth", fmt="csv")


@pytest.fixture
def identities(engine, settings, files):
    """Channels, locations, SKUs and suppliers of the small data set stored for tenant ``t1``."""
    from features.ingest import ingest

    for kind in ("channels", "locations", "skus", "suppliers"):
        r = ingest(kind, files[kind], tenant="t1", engine=engine, settings=settings)
        assert r.exit_code == 0, r.summary()
    return files
