"""Where the heavy stages of a cycle run: in this process (the default) or over partitions on a Ray cluster.

Selected by configuration: ``ray_address`` in the settings (``REPLENISH_RAY_ADDRESS``, or ``ray.address`` in
the YAML config; ``auto`` joins the cluster this process runs in, as a RayJob's driver does). With an address
the forecast stage runs as Ray Data over partitions with actors holding the model
(:func:`training.distributed.forecast_stage_distributed`) and the plan stage as Ray tasks over partitions by
SKU (:func:`planning.plan_partitioned` with :func:`planning.ray_map`); without one, both run in this process.
Both give the same facts either way (tests/serving/test_distributed_cycle.py).

The reconcile stage stays on the driver: the hierarchy's top node (``total``) couples every unit, so there is
no independent sub-tree to hand out, and its solve is sparse and small (aggregates only, see
``training.reconcile_stage``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

__all__ = ["ClusterOptions", "cluster_options", "connect"]


@dataclass(frozen=True)
class ClusterOptions:
    """How a cycle uses a Ray cluster.

    Attributes:
        address: the cluster (``ray://host:10001``, ``host:6379`` or ``auto``).
        partition_units: units per forecast partition (one Ray Data block, one staged file).
        plan_partitions: planning parts (default: twice the cluster's CPUs, so a lost node's parts spread),
            more where a part would exceed ``plan_part_units``.
        plan_part_units: units per planning part at most (a part's memory grows with its units).
        max_actors: forecast actors at most (default: the cluster's CPUs).
    """

    address: str
    partition_units: int = 50_000
    plan_partitions: int | None = None
    plan_part_units: int = 100_000
    max_actors: int | None = None

    def __post_init__(self) -> None:
        if not self.address:
            raise ValueError("ClusterOptions.address: expected a Ray address (host:port, ray://..., auto)")
        for name in ("partition_units", "plan_partitions", "plan_part_units", "max_actors"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 1):
                raise ValueError(f"ClusterOptions.{name}={v!r}: expected an integer >= 1")


def cluster_options(settings: Any, given: ClusterOptions | None = None) -> ClusterOptions | None:
    """The options a cycle runs with: ``given``, else the settings' ``ray_address``; None: in-process."""
    if given is not None:
        return given
    address = getattr(settings, "ray_address", None)
    return ClusterOptions(address=address) if address else None


def connect(options: ClusterOptions) -> None:
    """Join the cluster (once per process; a process already connected keeps its connection)."""
    import ray

    if not ray.is_initialized():
        ray.init(address=options.address, log_to_driver=False)


def forecast(options: ClusterOptions, tenant: str, **kwargs: Any):
    """The forecast stage over partitions on the cluster (see the module docstring)."""
    from training.distributed import forecast_stage_distributed

    connect(options)
    return forecast_stage_distributed(
        tenant, partition_units=options.partition_units, max_actors=options.max_actors, **kwargs
    )


def planner(options: ClusterOptions):
    """The plan stage's planner: ``plan`` over partitions by SKU, the parts as Ray tasks."""
    import ray

    from planning import plan_partitioned, ray_map

    connect(options)
    parts = options.plan_partitions or max(1, 2 * int(ray.cluster_resources().get("CPU", 1)))
    return functools.partial(
        plan_partitioned, partitions=parts, map_parts=ray_map, max_part_units=options.plan_part_units
    )
