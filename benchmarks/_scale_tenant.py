"""The scale benchmarks' tenant: weekly synthetic series ingested file by file, a small TFT trained.

Shared by ``benchmarks/scale.py`` and ``benchmarks/gpu_distributed_forecast.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

TRAIN = {
    "model": {"hidden_size": 8, "attention_head_size": 1, "hidden_continuous_size": 4},
    "fit": {
        "encoder_length": 12,
        "min_encoder_length": 6,
        "horizon": 8,
        "batch_size": 64,
        "batches_per_epoch": 5,
        "max_epochs": 1,
        "patience": 1,
        "refit": False,
    },
}


def tenant(home: Path, n_series: int):
    """Ingest ``n_series`` weekly series under ``home`` and train + promote the tenant's model."""
    os.environ["REPLENISH_HOME"] = str(home)
    from features.ingest import ingest
    from features.profile import update_profile
    from features.settings import get_settings
    from features.store._db import make_engine
    from features.synth import SynthData, generate
    from serving.cycle import run_cycle
    from serving.migrations import migrate_store

    settings = get_settings()
    settings.ensure_home()
    engine = make_engine(settings.database_url)
    migrate_store(engine)
    data = generate(n_series, 60, freq="W", seed=3)
    paths = data.write(home / "files", fmt="parquet")
    for kind in SynthData.INGEST_ORDER:
        ingest(kind, paths[kind], tenant="bench", engine=engine, settings=settings)
    update_profile(engine, "bench", train=TRAIN)
    run = run_cycle(
        "bench", stages=["train"], train=True, promote_first=True, settings=settings, engine=engine
    )
    if run.status != "succeeded":
        raise SystemExit(f"training failed: {run.error}")
    return settings, engine
