"""The cycle's heavy stages over partitions on a real multi-node Ray cluster on this machine.

One ``ray.cluster_utils.Cluster`` per module: a head (no CPUs: the driver only) and two worker nodes (2 CPUs,
100 MB object store each). A weekly synthetic tenant is ingested and a small TFT trained once; then

* the distributed cycle (forecast as Ray Data actors over partitions, plan as Ray tasks over SKU partitions)
  gives the same forecasts (1e-6 relative), recommendations, levels and proposals as the in-process cycle;
* a worker node killed while the forecast stage is in flight: the stage completes on the node that remains
  with the same forecasts, one row per (unit, horizon), and nothing staged left behind; the plan stage after
  a node loss gives the same plan and proposing it again adds no proposal.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import polars as pl
import pytest

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

TENANT = "acme"
QCOLS = ["p10", "p25", "p50", "p75", "p90"]
TRAIN = {
    "model": {"hidden_size": 8, "attention_head_size": 1, "hidden_continuous_size": 4},
    "fit": {
        "encoder_length": 12,
        "min_encoder_length": 6,
        "horizon": 8,
        "batch_size": 32,
        "batches_per_epoch": 3,
        "max_epochs": 1,
        "patience": 1,
        "refit": False,
    },
}


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "object_store_memory": 100 * 1024**2},
    )
    workers = [c.add_node(num_cpus=2, object_store_memory=100 * 1024**2) for _ in range(2)]
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False)
    try:
        yield c, workers
    finally:
        ray.shutdown()
        c.shutdown()


@pytest.fixture(scope="module")
def tenant(tmp_path_factory):
    """A weekly tenant with a champion, its stores under one folder (the module's REPLENISH_HOME)."""
    import os

    from features.ingest import ingest
    from features.profile import update_profile
    from features.settings import Settings
    from features.store._db import make_engine
    from features.synth import SynthData, generate
    from serving.cycle import run_cycle
    from serving.migrations import migrate_store

    home = tmp_path_factory.mktemp("dist-home")
    old = os.environ.get("REPLENISH_HOME")
    os.environ["REPLENISH_HOME"] = str(home)
    settings = Settings(home=home)
    settings.ensure_home()
    engine = make_engine(settings.database_url)
    migrate_store(engine)
    data = generate(24, 60, freq="W", seed=5)
    paths = data.write(home / "files", fmt="parquet")
    for kind in SynthData.INGEST_ORDER:
        ingest(kind, paths[kind], tenant=TENANT, engine=engine, settings=settings)
    update_profile(engine, TENANT, train=TRAIN)
    run = run_cycle(
        TENANT, stages=["train"], train=True, promote_first=True, settings=settings, engine=engine
    )
    assert run.status == "succeeded", run.error
    try:
        yield settings, engine
    finally:
        engine.dispose()
        if old is None:
            os.environ.pop("REPLENISH_HOME", None)
        else:
            os.environ["REPLENISH_HOME"] = old


@pytest.fixture
def stores(tenant, monkeypatch):
    """The module's tenant, with this test's REPLENISH_HOME pointed at its stores (the registry's default)."""
    settings, engine = tenant
    monkeypatch.setenv("REPLENISH_HOME", str(settings.home))
    return settings, engine


def _forecasts(settings, run_id):
    from features.forecasts import read_forecasts

    return read_forecasts(TENANT, "base", run_id, level=None, facts_dir=settings.facts_dir).sort(
        "unique_id", "horizon"
    )


def _same_forecasts(a: pl.DataFrame, b: pl.DataFrame, *, of_scale: float | None = None):
    """Same units, horizons, sources; quantiles within 1e-6 relative (or ``of_scale`` of the row max)."""
    assert a.height == b.height > 0
    assert a.select("unique_id", "horizon", "source", "cold_start").equals(
        b.select("unique_id", "horizon", "source", "cold_start")
    )
    x, y = a.select(QCOLS).to_numpy(), b.select(QCOLS).to_numpy()
    if of_scale is None:
        np.testing.assert_allclose(y, x, rtol=1e-6, atol=1e-12)
    else:
        err = np.abs(y - x) / np.maximum(np.abs(x).max(axis=1, keepdims=True), 1e-9)
        assert err.max() <= of_scale, f"max difference {err.max():.2e} of the forecast's scale"
    assert b.select(pl.struct("unique_id", "horizon").is_duplicated().sum()).item() == 0


_RUN_KEYS = ("run", "created", "evidence_sha256", "id")


def _plan_view(engine, run_id) -> pl.DataFrame:
    """The stored recommendations of a plan run, without ids: kind, unit, quantities, route, levels."""
    from planning import load_run

    recs = load_run(engine, TENANT, run_id)["recommendations"]
    rows = []
    for r in recs.iter_rows(named=True):
        ev = {k: v for k, v in (r["evidence"] or {}).items() if not any(t in k for t in _RUN_KEYS)}
        levels = {
            k: ev[k] for k in sorted(ev) if isinstance(ev[k], int | float) and not isinstance(ev[k], bool)
        }
        rows.append(
            {
                "kind": r["kind"],
                "sku_id": r["sku_id"],
                "location_id": r["location_id"],
                "from_location_id": r["from_location_id"],
                "order_qty": r["order_qty"],
                "order_value": r["order_value"],
                "action": r["action"],
                "rule": r["rule"],
                "levels": str(levels),
            }
        )
    return pl.DataFrame(rows).sort("kind", "sku_id", "location_id", "from_location_id", nulls_last=True)


def test_distributed_cycle_gives_the_in_process_forecasts_recommendations_and_levels(cluster, stores):
    from serving.cluster import ClusterOptions
    from serving.cycle import run_cycle

    c, _ = cluster
    settings, engine = stores
    stages = ["forecast", "reconcile", "plan", "propose"]
    local = run_cycle(TENANT, stages=stages, settings=settings, engine=engine)
    assert local.status == "succeeded", local.error
    opts = ClusterOptions(address=c.address, partition_units=4, plan_partitions=5)
    dist = run_cycle(TENANT, stages=stages, settings=settings, engine=engine, cluster=opts)
    assert dist.status == "succeeded", dist.error

    fc = dist.stage("forecast").counts
    assert (
        fc["partitions"] == 6 and 1 <= fc["partition_nodes"] <= 2
    )  # 24 units, 4 a partition, on the workers
    assert fc["model_units"] == local.stage("forecast").counts["model_units"] > 0
    assert 100 < fc["partition_peak_mb"] < 4096  # what a worker's memory request is sized from
    print(f"forecast actor peak {fc['partition_peak_mb']} MB")
    # The TFT runs in float32 and a forward pass rounds by its batch: the in-process stage itself moves by
    # up to 1.1e-6 of a forecast's scale between chunk sizes (2 vs 50,000 units, measured). Same chunks, same
    # numbers: the fault test below compares partitions with in-process chunks of their size at 1e-6 relative.
    _same_forecasts(_forecasts(settings, local.run_id), _forecasts(settings, dist.run_id), of_scale=2e-6)

    lp, dp = local.stage("plan").counts, dist.stage("plan").counts
    assert (
        dp["units"] == lp["units"] and dp["by_kind"] == lp["by_kind"] and dp["exceptions"] == lp["exceptions"]
    )
    assert dp["order_value"] == pytest.approx(lp["order_value"], rel=1e-9)
    a, b = _plan_view(engine, local.run_id), _plan_view(engine, dist.run_id)
    assert a.height > 0 and a.equals(b)
    assert dist.stage("propose").counts["total"] == local.stage("propose").counts["total"] == a.height


def test_a_worker_node_killed_mid_forecast_the_stage_completes_with_the_same_facts(cluster, stores):
    from features.forecasts import forecast_runs
    from training.distributed import forecast_stage_distributed, staging_dir
    from training.stage import forecast_stage

    c, workers = cluster
    settings, engine = stores
    ref = forecast_stage(TENANT, run_id="ref", settings=settings, engine=engine, chunk_size=2)
    seen, killed = [], threading.Event()

    def progress(done, total):
        seen.append(done)
        if done > 0 and not killed.is_set():  # the first partition is in: kill a worker with work on it
            killed.set()
            c.remove_node(workers[1], allow_graceful=False)

    t0 = time.perf_counter()
    meta = forecast_stage_distributed(
        TENANT,
        run_id="killed",
        settings=settings,
        engine=engine,
        progress=progress,
        partition_units=2,
        delay_s=0.5,
    )
    assert killed.is_set() and time.perf_counter() - t0 > 0
    assert meta.extra["units"] == ref.extra["units"] and meta.extra["model_units"] == ref.extra["model_units"]
    assert meta.extra["partitions"] == -(-ref.extra["units"] // 2)
    _same_forecasts(_forecasts(settings, "ref"), _forecasts(settings, "killed"))
    assert [m.run_id for m in forecast_runs(TENANT, "base", facts_dir=settings.facts_dir)].count(
        "killed"
    ) == 1
    assert not staging_dir(settings.facts_dir, TENANT, "killed").exists()
    alive = [n for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU")]
    assert len(alive) == 1  # the stage finished on the one worker left

    # Re-running the same run id replaces it: one run, the same rows, no duplicate (unit, horizon).
    again = forecast_stage_distributed(
        TENANT, run_id="killed", settings=settings, engine=engine, partition_units=2
    )
    assert again.extra["units"] == meta.extra["units"]
    _same_forecasts(_forecasts(settings, "ref"), _forecasts(settings, "killed"))


def test_plan_stage_on_the_remaining_node_gives_the_same_plan_and_no_duplicate_proposals(cluster, stores):
    from planning import plan_partitioned, plan_stage, ray_map
    from workflow.proposals import propose_plan

    settings, engine = stores
    import functools

    plan_stage(engine, TENANT, run_id="plan-local", forecast_run="ref", settings=settings)
    planner = functools.partial(plan_partitioned, partitions=6, map_parts=ray_map)
    dist = plan_stage(
        engine, TENANT, run_id="plan-dist", forecast_run="ref", settings=settings, planner=planner
    )
    assert dist.result.meta["partitions"] > 1
    assert _plan_view(engine, "plan-local").equals(_plan_view(engine, "plan-dist"))
    # re-planning the same run id replaces it; proposing it twice adds nothing the second time
    plan_stage(engine, TENANT, run_id="plan-dist", forecast_run="ref", settings=settings, planner=planner)
    first = propose_plan(engine, TENANT, "plan-dist", actor="test")
    second = propose_plan(engine, TENANT, "plan-dist", actor="test")
    assert first.to_dict()["total"] == dist.counts["recommendations"] > 0
    assert second.to_dict()["created"] == 0


def test_the_cli_cycle_uses_the_cluster_named_by_the_ray_address_setting(cluster, stores, monkeypatch):
    """`replenish cycle` with REPLENISH_RAY_ADDRESS set (the RayJob's configuration) runs over partitions."""
    import json

    from typer.testing import CliRunner

    from serving.cli import app

    c, _ = cluster
    settings, _engine = stores
    monkeypatch.setenv("REPLENISH_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REPLENISH_RAY_ADDRESS", c.address)
    result = CliRunner().invoke(app, ["cycle", "--tenant", TENANT, "--stage", "forecast", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.strip().splitlines()[-1])
    forecast = next(s for s in record["stages"] if s["stage"] == "forecast")
    assert forecast["status"] == "succeeded"
    assert forecast["counts"]["partitions"] >= 1 and forecast["counts"]["partition_peak_mb"] > 0
    monkeypatch.delenv("REPLENISH_RAY_ADDRESS")
    result = CliRunner().invoke(app, ["cycle", "--tenant", TENANT, "--stage", "forecast", "--json"])
    record = json.loads(result.stdout.strip().splitlines()[-1])
    forecast = next(s for s in record["stages"] if s["stage"] == "forecast")
    assert "partitions" not in forecast["counts"]  # unset: in this process, the default
