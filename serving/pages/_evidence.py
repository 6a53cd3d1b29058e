"""The recommendation's evidence as readable sections instead of raw JSON.

Sections: forecast, assumptions, simulation, supplier terms, constraints; keys no section claims are shown
under "other".
"""

from __future__ import annotations

from typing import Any

__all__ = ["sections"]

#: Section title -> evidence keys it shows (top-level keys of the merged evidence bodies).
_SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "Forecast and model",
        (
            "model_version",
            "forecast_version",
            "forecast_run",
            "model_name",
            "quantiles",
            "forecast",
            "method",
        ),
    ),
    (
        "Assumptions",
        (
            "inventory_position",
            "on_hand",
            "on_order",
            "backorders",
            "lead_time",
            "service_target",
            "service_level",
            "review_period",
            "demand",
            "assumptions",
            "policy",
        ),
    ),
    ("Simulation results", ("simulation", "fill_rate", "stockout_probability", "expected_cost", "risk")),
    (
        "Supplier terms",
        ("supplier_terms", "terms", "unit_cost", "moq", "pack_size", "supplier", "promised_lead_time_days"),
    ),
    ("Constraints applied", ("constraints", "constraints_applied", "capacity", "budget", "rounding")),
)


def _fmt(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return {True: "yes", False: "no", None: "—"}[v]
    if isinstance(v, float):
        return f"{v:,.2f}" if abs(v) < 1e6 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, list):
        return ", ".join(_fmt(x) for x in v[:20]) + (" …" if len(v) > 20 else "")
    return str(v)


def _rows(prefix: str, v: Any, out: list[tuple[str, str]], depth: int = 0) -> None:
    if isinstance(v, dict) and depth < 3:
        for k, x in v.items():
            _rows(f"{prefix} · {k}" if prefix else str(k), x, out, depth + 1)
    else:
        out.append((prefix.replace("_", " "), _fmt(v)))


def sections(ev: dict[str, Any], fc_version: str | None = None) -> list[tuple[str, list[tuple[str, str]]]]:
    """``[(title, [(label, value), ...]), ...]`` for the sections that have something to show."""
    seen: set[str] = set()
    out = []
    for title, keys in _SECTIONS:
        rows: list[tuple[str, str]] = []
        if title == "Forecast and model" and fc_version is not None:
            rows.append(("model version drawn in the chart", fc_version))
        for k in keys:
            if k in ev:
                seen.add(k)
                _rows(k, ev[k], rows)
        if rows:
            out.append((title, rows))
    other: list[tuple[str, str]] = []
    for k, v in ev.items():
        if k not in seen:
            _rows(k, v, other)
    if other:
        out.append(("Other evidence", other))
    return out
