"""Evidence of a recommendation: what a planner needs to see why the plan proposes it.

Every recommendation row of a plan carries flat evidence columns; :func:`evidence_record` nests them into the
JSON document stored with the recommendation (and handed to the workflow, where it is kept immutable):

* ``forecast``: version (the forecast run id), model version, source (model or which baseline), quantile
  levels used, period-0 median; the stage it was read from (base / reconciled), the model name, the
  reconciliation method and the base run, the sales watermark the forecast was made from, the grid and the
  period length in days, how the stocking point's channels were combined, how promotions were priced in;
  per unit: the unit's own source (a unit the run lacks is planned on the history baseline), cold start, the
  horizon asked (``planning_units.horizon_periods``) and the horizon planned on, with a note when the
  forecast had fewer periods than asked, and the promotion adjustment applied;
* ``policy``: the unit's policy kind, its min (reorder point) and max for min/max units, its owner team;
* ``inventory``: on hand, on order, backorders, committed, inventory position;
* ``lead_time``: mean, standard deviation (periods), where they come from (observed / promised / given);
* ``simulation``: paths, fill-rate target (the unit's own and, with group targets, the group, its target and
  the unit's allocated share), order-up-to level, simulated fill rate at it and with no order,
  stockout probability before an order placed now arrives, protection-interval demand mean and P5/P50/P95,
  expected stock left at the next arrival;
* ``order``: raw and final quantity, value, lot, the term or constraint that bound it (pack_size, moq,
  max_order_qty, budget, capacity, supply, transfer, none);
* ``supplier``: chosen supplier, its effective unit cost and the runner-up;
* ``transfer`` (transfers only): donor, donor excess, receiver shortfall, transfer cost, alternative cost,
  saving;
* ``allocation`` (constrained supply only): requested and allocated quantity.

:func:`missing_evidence` lists what a record lacks; the tests require it empty for every recommendation kind.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

if TYPE_CHECKING:
    from planning._plan import Forecast, PlanConfig

__all__ = [
    "PROVENANCE_COLUMNS",
    "REQUIRED_EVIDENCE",
    "evidence_record",
    "with_evidence",
    "evidence_records",
    "missing_evidence",
]

#: Keys of a forecast's provenance (``planning._plan.Forecast.provenance``) written to every recommendation,
#: and the evidence column of each; the evidence's ``forecast`` section names them under the same keys.
PROVENANCE_COLUMNS = {
    "stage": "forecast_stage",
    "model_name": "forecast_model_name",
    "reconciliation_method": "reconciliation_method",
    "base_run": "forecast_base_run",
    "data_watermark": "data_watermark",
    "freq": "forecast_freq",
    "aggregation": "forecast_aggregation",
    "promotions": "forecast_promotions",
}

_SECTIONS: dict[str, dict[str, str]] = {
    "forecast": {
        "version": "forecast_version",
        "model_version": "model_version",
        "source": "forecast_source",
        "quantile_levels": "quantile_levels",
        "p50_period0": "forecast_p50_period0",
        "run_id": "forecast_version",
        **PROVENANCE_COLUMNS,
        "period_days": "period_days",
        "unit_source": "unit_forecast_source",
        "cold_start": "cold_start",
        "horizon_asked": "horizon_periods",
        "horizon_used": "horizon_used",
        "horizon_note": "horizon_note",
        "promotion_adjustment": "promotion_adjustment",
    },
    "policy": {
        "kind": "policy_kind",
        "reorder_point": "reorder_point",
        "max_level": "max_level",
        "owner_team": "owner_team",
    },
    "inventory": {
        "on_hand": "on_hand",
        "on_order": "on_order",
        "backorders": "backorders",
        "committed": "committed",
        "position": "inventory_position",
    },
    "lead_time": {
        "mean_periods": "lead_time_mean",
        "std_periods": "lead_time_std",
        "source": "lead_time_source",
        "review_periods": "review_periods",
    },
    "simulation": {
        "n_paths": "n_paths",
        "fill_target": "fill_target",
        "allocated_fill_target": "allocated_fill_target",
        "service_group": "service_group",
        "group_fill_target": "group_fill_target",
        "order_up_to": "order_up_to",
        "fill_rate_at_level": "fill_rate_at_level",
        "fill_rate_no_order": "fill_rate_no_order",
        "stockout_probability": "stockout_probability",
        "protection_demand_mean": "mean_protection_demand",
        "protection_demand_p05": "protection_demand_p05",
        "protection_demand_p50": "protection_demand_p50",
        "protection_demand_p95": "protection_demand_p95",
        "expected_on_hand_at_next_arrival": "expected_on_hand_at_level",
    },
    "order": {
        "raw_qty": "raw_qty",
        "order_qty": "order_qty",
        "order_value": "order_value",
        "lot_size": "lot_size",
        "bound_by": "bound_by",
        "expected_arrival": "expected_arrival",
    },
    "supplier": {
        "supplier_id": "supplier_id",
        "effective_unit_cost": "effective_unit_cost",
        "runner_up_id": "runner_up_id",
        "unit_cost": "unit_cost",
    },
    "transfer": {
        "from_location_id": "from_location_id",
        "donor_excess": "donor_excess",
        "receiver_shortfall": "receiver_shortfall",
        "transfer_cost": "transfer_cost",
        "alternative_cost": "alternative_cost",
        "saving": "saving",
    },
    "allocation": {
        "requested_qty": "requested_qty",
        "allocated_qty": "allocated_qty",
        "constrained": "constrained",
    },
}

# : Fields that must be present and not null, per recommendation kind (model_version may be null for a
# baseline, : runner-up and effective cost when there was one candidate supplier).
_OPTIONAL = {
    ("forecast", "model_version"),
    # provenance a history baseline or a plan on frames does not have (filled by planning.plan_stage)
    *(
        ("forecast", k)
        for k in (
            "stage",
            "model_name",
            "reconciliation_method",
            "base_run",
            "data_watermark",
            "freq",
            "aggregation",
            "promotions",
            "unit_source",
            "cold_start",
            "horizon_asked",
            "horizon_used",
            "horizon_note",
            "promotion_adjustment",
        )
    ),
    ("policy", "reorder_point"),  # min/max units only
    ("policy", "max_level"),
    ("policy", "owner_team"),
    ("supplier", "runner_up_id"),
    ("supplier", "effective_unit_cost"),
    ("simulation", "service_group"),  # set only with group fill targets (PlanConfig.service_group)
    ("simulation", "group_fill_target"),
}
_KIND_SECTIONS = {
    "purchase": ("forecast", "policy", "inventory", "lead_time", "simulation", "order", "supplier"),
    "allocation": (
        "forecast",
        "policy",
        "inventory",
        "lead_time",
        "simulation",
        "order",
        "supplier",
        "allocation",
    ),
    "transfer": ("forecast", "policy", "inventory", "lead_time", "simulation", "order", "transfer"),
}
REQUIRED_EVIDENCE = {
    kind: [
        (sec, key)
        for sec in secs
        for key in _SECTIONS[sec]
        if (sec, key) not in _OPTIONAL
        and not (kind == "transfer" and sec == "order" and key in ("raw_qty", "lot_size"))
    ]
    for kind, secs in _KIND_SECTIONS.items()
}


_PLAIN = (str, int, bool, type(None))


def _clean(v: Any) -> Any:
    if type(v) in _PLAIN:  # most values: nothing to do (checked first, it is the hot path of saving a run)
        return v
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if isinstance(v, list):
        return [_clean(x) for x in v]
    return v


def evidence_record(row: dict[str, Any]) -> dict[str, Any]:
    """Nest a recommendation row's evidence columns into a JSON-ready document (see the module docstring)."""
    kind = row.get("kind", "purchase")
    doc: dict[str, Any] = {"kind": kind}
    for sec in _KIND_SECTIONS.get(kind, _KIND_SECTIONS["purchase"]):
        doc[sec] = {key: _clean(row.get(col)) for key, col in _SECTIONS[sec].items()}
    if kind == "transfer":
        doc["order"] = {k: v for k, v in doc["order"].items() if k not in ("raw_qty", "lot_size")}
    return doc


def evidence_records(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """:func:`evidence_record` of every row of ``frame``, cleaned column-wise (what saving a large run uses).

    NaN becomes null and dates ISO strings in the frame at once; the rare row holding an infinity goes
    through :func:`evidence_record` itself. Same documents, several times faster on many rows.
    """
    cols = [c for c in dict.fromkeys(["kind", *(c for sec in _SECTIONS.values() for c in sec.values())])]
    f = frame.select([c for c in cols if c in frame.columns])
    if any(t.is_temporal() and t != pl.Date for t in f.schema.values()):
        return [evidence_record(r) for r in frame.iter_rows(named=True)]
    floats = [c for c, t in f.schema.items() if t.is_float()]
    inf = (
        f.select(pl.any_horizontal([pl.col(c).is_infinite().fill_null(False) for c in floats]))
        .to_series()
        .to_list()
        if floats
        else [False] * f.height
    )
    f = f.with_columns(
        [pl.col(c).fill_nan(None) for c in floats]
        + [pl.col(c).cast(pl.String) for c, t in f.schema.items() if t == pl.Date]
    )
    plan = {
        kind: [(sec, list(_SECTIONS[sec].items())) for sec in secs] for kind, secs in _KIND_SECTIONS.items()
    }
    out = []
    for row, bad in zip(f.iter_rows(named=True), inf, strict=True):
        if bad:
            out.append(evidence_record(row))
            continue
        kind = row.get("kind", "purchase")
        doc: dict[str, Any] = {"kind": kind}
        for sec, items in plan.get(kind, plan["purchase"]):
            doc[sec] = {key: row.get(col) for key, col in items}
        if kind == "transfer":
            doc["order"] = {k: v for k, v in doc["order"].items() if k not in ("raw_qty", "lot_size")}
        out.append(doc)
    return out


def missing_evidence(doc: dict[str, Any]) -> list[str]:
    """``section.key`` of every required evidence field that is absent or null in ``doc``."""
    kind = doc.get("kind", "purchase")
    return [
        f"{sec}.{key}"
        for sec, key in REQUIRED_EVIDENCE.get(kind, REQUIRED_EVIDENCE["purchase"])
        if doc.get(sec, {}).get(key) is None
    ]


def with_evidence(frame: pl.DataFrame, forecast: Forecast, config: PlanConfig, kind: str) -> pl.DataFrame:
    """``frame`` (planned units) as recommendations of ``kind`` with the run's evidence columns added."""
    levels = [float(x) for x in np.asarray(forecast.levels)]
    add = [
        pl.lit(kind).alias("kind"),
        pl.lit(forecast.version).alias("forecast_version"),
        pl.lit(forecast.model_version, dtype=pl.String).alias("model_version"),
        pl.lit(forecast.source).alias("forecast_source"),
        pl.lit(levels, dtype=pl.List(pl.Float64)).alias("quantile_levels"),
        pl.lit(config.n_paths).alias("n_paths"),
        pl.lit(float(config.period_days)).alias("period_days"),
        pl.col("fill_rate_at_level").alias("fill_rate"),
        *[
            pl.lit(None if v is None else str(v), dtype=pl.String).alias(PROVENANCE_COLUMNS[k])
            for k, v in forecast.provenance.items()
            if k in PROVENANCE_COLUMNS
        ],
    ]
    for c, default in (
        ("lead_time_source", "given"),
        ("effective_unit_cost", None),
        ("runner_up_id", None),
        ("region", None),
        ("owner_team", None),
    ):
        if c not in frame.columns:
            add.append(
                pl.lit(default, dtype=pl.Float64 if c == "effective_unit_cost" else pl.String).alias(c)
            )
    return frame.with_columns(add)
