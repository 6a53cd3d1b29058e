"""Planning: replenishment recommendations, constraints, transfers, risks and exceptions, routing, evidence.

Python API (what the serving layer calls)::

    from planning import plan_stage
    staged = plan_stage(engine, "tenant")        # the tenant's stored forecasts + tables -> a stored plan run
    staged.run_id, staged.counts, staged.forecast  # what it used, what it made

    # or step by step, on frames:
    from planning import inputs_from_frames, plan, load_rules, save_plan
    inputs = inputs_from_frames(**synth_data.tables())          # or frames read from the stores
    result = plan(inputs.units, inputs.forecast, inputs.lead_time_pmf, as_of=inputs.as_of,
                  lead_time_counts=inputs.lead_time_counts, rules=load_rules("configs/routing.yaml"),
                  extra_exceptions=inputs.exceptions)
    run_id = save_plan(engine, "tenant", result)

``plan`` simulates with :func:`policy_samples` (the policy ``benchmarks/policy_backtest.py`` measures: orders
crossing, the lead-time posterior from ``lead_time_counts``, a history bootstrap for the baseline). It returns
plain Polars frames (:class:`PlanResult`); nothing is written until ``save_plan``. Names are resolved lazily
so that ``import planning`` does not compile Numba kernels; call :func:`warmup` (the kernels' engine warm-up,
``kernels.warmup``) at start-up. The simulation itself is ``kernels``' engine: this package only turns frames
into its arrays and its arrays into decisions.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from features.store import register_migrations

__all__ = [
    "MIGRATIONS",
    "Budget",
    "Capacity",
    "Forecast",
    "HistoryDemand",
    "PlanConfig",
    "PlanInputs",
    "PlanResult",
    "PlanStageResult",
    "QuantileDemand",
    "RuleError",
    "RuleSet",
    "apply_rules",
    "SUPPLIER_EXCEPTION_TYPES",
    "confirmed_supply_frame",
    "evidence_record",
    "inputs_from_frames",
    "load_plan_inputs",
    "load_rules",
    "load_run",
    "missing_evidence",
    "ray_map",
    "split_by_sku",
    "parse_rules",
    "local_map",
    "merge_plans",
    "plan",
    "plan_runs",
    "plan_partitioned",
    "plan_stage",
    "policy_samples",
    "response_exceptions",
    "save_plan",
    "warmup",
]

#: Planning's migration chain (its tables are in ``planning._tables``), registered with the data layer.
MIGRATIONS = register_migrations(
    "planning", Path(__file__).resolve().parent / "migrations" / "versions", models=("planning._tables",)
)

_WHERE = {
    "Budget": "planning._plan",
    "Capacity": "planning._plan",
    "Forecast": "planning._plan",
    "PlanConfig": "planning._plan",
    "PlanResult": "planning._plan",
    "plan": "planning._plan",
    "PlanInputs": "planning._inputs",
    "inputs_from_frames": "planning._inputs",
    "confirmed_supply_frame": "planning._inputs",
    "SUPPLIER_EXCEPTION_TYPES": "planning._supplier",
    "response_exceptions": "planning._supplier",
    "PlanStageResult": "planning._stage",
    "load_plan_inputs": "planning._stage",
    "plan_stage": "planning._stage",
    "RuleError": "planning._routing",
    "RuleSet": "planning._routing",
    "load_rules": "planning._routing",
    "parse_rules": "planning._routing",
    "apply_rules": "planning._routing",
    "evidence_record": "planning._evidence",
    "missing_evidence": "planning._evidence",
    "local_map": "planning.distributed",
    "merge_plans": "planning.distributed",
    "plan_partitioned": "planning.distributed",
    "ray_map": "planning.distributed",
    "split_by_sku": "planning.distributed",
    "load_run": "planning._store",
    "plan_runs": "planning._run_index",
    "save_plan": "planning._store",
    "warmup": "kernels",
    "HistoryDemand": "kernels",
    "QuantileDemand": "kernels",
    "policy_samples": "kernels",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'planning' has no attribute {name!r}")
