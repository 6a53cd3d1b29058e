"""Synthetic tenants ingested into the test's REPLENISH_HOME, and a tiny training budget."""

from __future__ import annotations

from pathlib import Path

from features.synth import SynthData, generate

#: A tiny TFT with a few batches: seconds per training on one CPU thread.
TINY_TRAIN = {
    "model": {"hidden_size": 8, "attention_head_size": 1, "hidden_continuous_size": 4},
    "fit": {
        "batch_size": 32,
        "batches_per_epoch": 3,
        "max_epochs": 1,
        "patience": 1,
        "refit": False,
        "threads": 1,
        "seed": 3,
    },
}


def ingest_synth(tenant: str, folder: Path, data: SynthData | None = None, kinds=None, **kw) -> SynthData:
    """Generate (unless given) and ingest a synthetic data set for ``tenant``, every KIND in ingest order."""
    from features.ingest import ingest

    data = data if data is not None else generate(**kw)
    paths = data.write(folder, fmt="parquet")
    for kind in kinds or SynthData.INGEST_ORDER:
        r = ingest(kind, paths[kind], tenant=tenant)
        assert r.status in ("stored", "partial"), (kind, r.status, r.message)
    return data
