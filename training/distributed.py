"""The forecast stage over partitions of planning units on a Ray cluster: Ray Data, actors holding the model.

:func:`forecast_stage_distributed` is :func:`training.stage.forecast_stage` with the units cut into partitions
(``partition_units`` each, in the run's order) and forecast by a pool of Ray actors: each actor loads the
tenant's champion once (the version the driver resolved, from the same MLflow registry) and forecasts the
partitions Ray Data gives it (``Dataset.map_batches`` over one block per partition; an actor pool of ``n``
spread over the nodes, which shrinks to what is left when a node goes). Each partition reads its own units'
recent sales and promotions from the fact store and runs the in-process stage's chunk code
(:func:`training.forecast_work.forecast_chunk`), so a unit's forecast does not depend on where it ran.

Writes are idempotent. A partition writes its rows to its own staging file
(``<facts>/forecasts/_partitions/tenant=<t>/run=<id>/part=<k>.parquet``), replaced atomically: a partition
re-run after a node failure replaces its file, never adds a second one. When every partition is there the
driver commits them as the one forecast run ``run_id`` (:func:`training.forecast_work.commit_forecast`, which
replaces an earlier write of that run) and removes the staging folder; a run that failed before its commit
leaves no run behind, and re-running it replaces the staged parts.
"""

from __future__ import annotations

import os
import resource
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pyarrow as pa

from training.forecast_work import (
    ForecastWork,
    commit_forecast,
    forecast_chunk,
    forecast_work,
    new_forecast_counts,
)

__all__ = ["DEFAULT_PARTITION_UNITS", "forecast_stage_distributed", "staging_dir"]

#: Units per partition by default (a partition is one Ray Data block and one staged file).
DEFAULT_PARTITION_UNITS = 50_000
_PART = "_part"


def staging_dir(facts_dir: Path, tenant: str, run_id: str) -> Path:
    """Where the partitions of forecast run ``run_id`` are staged before the run is committed."""
    return Path(facts_dir) / "forecasts" / "_partitions" / f"tenant={tenant}" / f"run={run_id}"


def _write_part(folder: Path, part: int, rows: pl.DataFrame) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"part={part:06d}.parquet"
    tmp = folder / f".part={part:06d}.{os.getpid()}.tmp"
    try:
        rows.write_parquet(tmp)
        os.replace(tmp, path)  # a re-run partition replaces its rows
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


class ForecastPartitions:
    """A Ray Data actor: the champion loaded once, then one staged file per partition it is given."""

    def __init__(
        self, work: ForecastWork, version: str, settings, folder: str, delay_s: float = 0.0, gpu: bool = False
    ):
        import dataclasses

        from training.predict import load_predictor

        pred = load_predictor(version, work.window.name, settings.mlflow_tracking_uri)
        if gpu:  # an actor given a GPU by Ray forecasts on it (the same code path, the model on the device)
            pred = pred.to("cuda")
        self.work = dataclasses.replace(work, window=dataclasses.replace(work.window, pred=pred))
        self.settings, self.folder, self.delay_s = settings, Path(folder), delay_s
        import ray

        self.node = ray.get_runtime_context().get_node_id()

    def __call__(self, batch: pa.Table) -> pa.Table:
        frame = pl.from_arrow(batch)
        out = []
        for part in sorted(frame[_PART].unique().to_list()):
            units = frame.filter(pl.col(_PART) == part).drop(_PART)
            counts = new_forecast_counts()
            rows = forecast_chunk(self.work, units, counts, settings=self.settings)
            if self.delay_s:  # tests: keep a partition in flight long enough to lose its node
                time.sleep(self.delay_s)
            path = _write_part(self.folder, int(part), pl.concat(rows) if rows else pl.DataFrame())
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # MiB (Linux: KiB)
            out.append({_PART: int(part), "path": str(path), "node": self.node, "peak_mb": peak, **counts})
        return pa.Table.from_pylist(out)


def _partitions(units: pl.DataFrame, partition_units: int) -> list[pa.Table]:
    if partition_units < 1:
        raise ValueError(f"partition_units={partition_units}: expected an integer >= 1")
    n = units.height
    return [
        units.slice(i, partition_units).with_columns(pl.lit(i // partition_units).alias(_PART)).to_arrow()
        for i in range(0, n, partition_units)
    ]


def forecast_stage_distributed(
    tenant: str,
    *,
    run_id: str,
    settings=None,
    engine=None,
    progress: Callable[[int, int], None] | None = None,
    partition_units: int = DEFAULT_PARTITION_UNITS,
    max_actors: int | None = None,
    num_cpus: float = 1.0,
    num_gpus: float = 0.0,
    delay_s: float = 0.0,
):
    """:func:`training.stage.forecast_stage` over partitions on the connected Ray cluster; the same run.

    Ray must be initialised by the caller (``ray.init(address=...)``).

    Args:
        tenant: whose data and model.
        run_id: the run (re-running the same id replaces its rows).
        settings: ``features.settings.Settings`` (default ``get_settings()``); the fact store and the MLflow
            registry must be reachable from every node.
        engine: state store (default: one on ``settings.database_url``).
        progress: ``progress(units done, units total)`` as partitions finish.
        partition_units: units per partition.
        max_actors: actors at most (default: the cluster's CPUs / ``num_cpus``, at most the partitions).
        num_cpus: CPUs per actor.
        num_gpus: GPUs per actor (> 0: the model runs on the actor's GPU).
        delay_s: seconds each partition waits after forecasting (fault tests only).

    Returns:
        The stored run's ``features.forecasts.ForecastRunMeta``; its ``extra`` adds ``partitions``,
        ``partition_nodes`` (nodes that wrote a partition) and ``partition_peak_mb`` (the largest actor's peak
        resident memory, MiB: what a worker's memory request is sized from).

    Raises:
        LookupError: the tenant has no champion model.
        ValueError: the tenant has no sales facts, or ``partition_units`` < 1.
        RuntimeError: a partition is missing after the run (the message names it).
    """
    import ray

    from features.settings import get_settings

    settings = settings or get_settings()
    tick = progress or (lambda _d, _t: None)
    work = forecast_work(tenant, settings=settings, engine=engine, read_facts=False)
    total = work.units.height
    if total == 0:
        raise ValueError(f"tenant {tenant!r}: no planning units and no recent sales to forecast")
    tables = _partitions(work.units, partition_units)
    folder = staging_dir(settings.facts_dir, tenant, run_id)
    cpus = int(ray.cluster_resources().get("CPU", 1) // max(num_cpus, 1e-9)) or 1
    size = max(1, min(len(tables), max_actors or cpus))
    if num_gpus > 0:
        size = max(1, min(size, int(ray.cluster_resources().get("GPU", 0) // num_gpus)))
    ds = ray.data.from_arrow(tables).map_batches(
        ForecastPartitions,
        batch_format="pyarrow",
        batch_size=None,
        # start with every actor (one model load each), shrink to what is left when a node goes; Ray Data
        # spreads the actors over the nodes, restarts a lost one and retries its batch (its defaults)
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=size, initial_size=size),
        num_cpus=num_cpus,
        num_gpus=num_gpus or None,
        fn_constructor_kwargs={
            "work": work.without_model(),
            "version": str(work.window.pred.version),
            "settings": settings,
            "folder": str(folder),
            "delay_s": delay_s,
            "gpu": num_gpus > 0,
        },
    )
    tick(0, total)
    done: dict[int, dict] = {}
    for row in ds.iter_rows():
        done[int(row[_PART])] = row  # a partition reported twice (re-run) counts once
        tick(min(total, sum(_rows_of(tables, p) for p in done)), total)
    missing = sorted(set(range(len(tables))) - set(done))
    if missing:
        raise RuntimeError(
            f"forecast run {run_id!r}: partition(s) {missing} did not finish; re-run the stage"
        )
    counts = new_forecast_counts()
    for row in done.values():
        for k in counts:
            counts[k] += int(row[k])
    parts = [pl.read_parquet(done[p]["path"]) for p in range(len(tables))]
    nodes = sorted({str(r["node"]) for r in done.values()})
    extra = {
        "partitions": len(tables),
        "partition_nodes": len(nodes),
        "partition_peak_mb": round(max(float(r["peak_mb"]) for r in done.values())),  # largest actor's peak
    }
    meta = commit_forecast(
        work, run_id, [p for p in parts if p.height], counts, settings=settings, extra=extra
    )
    shutil.rmtree(folder, ignore_errors=True)
    return meta


def _rows_of(tables: list[pa.Table], part: int) -> int:
    return tables[part].num_rows
