"""Array-level kernels: hierarchical reconciliation, the policy simulation engine, accuracy metrics.

Nothing here imports the rest of the project. Backends (NumPy/Numba on CPU, CuPy on GPU) are chosen from the
input arrays; mixed devices raise :class:`BackendError`. Nothing is compiled at import: call :func:`warmup`
(the engine) and ``kernels.reconcile.warmup`` at start-up.

The engine (what ``planning.plan`` ships and the benchmarks measure):
:func:`policy_samples` (protection-interval demand paths: bootstrap or quantile demand, crossing orders, the
lead-time posterior as a Polya urn) -> :func:`order_up_to_levels` (least level meeting a fill target, risks)
-> :func:`service_menu` / :func:`allocated_targets` (group fill targets) -> :func:`expected_served` /
:func:`allocate_increments` (orders under budgets and capacities).
"""

from kernels._backend import BackendError, get_array_module, gpu_available
from kernels.accuracy import bias, coverage, mae, mase, pinball, point_metrics, smape, wape
from kernels.allocate import Allocation, Constraint, allocate_increments
from kernels.engine import warmup
from kernels.levels import (
    ServiceAllocation,
    ServiceMenu,
    UnitLevels,
    allocate_group_fill,
    allocated_targets,
    effective_lot,
    expected_served,
    fill_grid,
    order_up_to_levels,
    service_menu,
)
from kernels.policy import (
    HistoryDemand,
    ProtectionSamples,
    QuantileDemand,
    check_lead_times,
    policy_samples,
    protection_samples,
)
from kernels.reconcile import Hierarchy, reconcile, reconcile_quantiles

__all__ = ["BackendError", "get_array_module", "gpu_available", "warmup"]
__all__ += ["Hierarchy", "reconcile", "reconcile_quantiles"]
__all__ += ["HistoryDemand", "ProtectionSamples", "QuantileDemand", "check_lead_times", "policy_samples"]
__all__ += ["protection_samples", "UnitLevels", "effective_lot", "expected_served", "order_up_to_levels"]
__all__ += ["ServiceAllocation", "ServiceMenu", "allocate_group_fill", "allocated_targets", "fill_grid"]
__all__ += ["service_menu", "Allocation", "Constraint", "allocate_increments"]
__all__ += ["bias", "coverage", "mae", "mase", "pinball", "point_metrics", "smape", "wape"]
