"""Write a plan to the state store (one transaction) and read runs back."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from datetime import date
from typing import Any

import polars as pl
from sqlalchemy import delete, func, select
from sqlalchemy.engine import Engine

from features.store import Tenant, ensure_tenant, session_scope
from planning._evidence import evidence_records
from planning._exceptions import exception_keys
from planning._plan import PlanResult
from planning._tables import PlanException, PlanPoDraft, PlanRecommendation, PlanRun

__all__ = ["IDENTITY_FIELDS", "identity_issues", "load_run", "save_plan"]

#: Quarantined fields that name an identity: a rejected value there is an identity problem for planning.
IDENTITY_FIELDS = ("sku_id", "location_id", "supplier_id", "channel_id", "po_id", "from_location_id")

_EXC_COLS = (
    "exception_type",
    "severity",
    "sku_id",
    "location_id",
    "supplier_id",
    "po_id",
    "value",
    "threshold",
    "customer_impacting",
    "message",
    "action",
    "route_queue",
    "route_role",
    "rule",
    "reason",
    "owner_team",
    "exception_key",
)


def _id() -> str:
    return uuid.uuid4().hex


def _row_ids() -> Iterator[str]:
    """Unique 32-character row ids: one random prefix per run and a counter (a uuid per row costs more)."""
    prefix = uuid.uuid4().hex[:20]
    return (f"{prefix}{i:012x}" for i in itertools.count())


def _num(v: Any) -> float | None:
    if v is None:
        return None
    v = float(v)
    return None if v != v else v  # NaN -> NULL


def save_plan(
    engine: Engine,
    tenant_id: str,
    result: PlanResult,
    *,
    create_tenant: bool = False,
    run_id: str | None = None,
) -> str:
    """Store a plan run with its recommendations (and evidence), exceptions and PO drafts in one transaction.

    Args:
        engine: a migrated state store.
        tenant_id: owning tenant; must exist unless ``create_tenant``.
        result: from :func:`planning._plan.plan`.
        create_tenant: create the tenant row when missing (demo and tests).
        run_id: the run's id (a cycle's run id; 1-32 characters); None: a new one. Saving a run id the
            tenant already has replaces that run and everything it produced (a re-run never duplicates).

    Returns:
        The run id.

    Raises:
        ValueError: the tenant does not exist, ``run_id`` is malformed or belongs to another tenant.
    """
    if run_id is not None and not (isinstance(run_id, str) and 0 < len(run_id) <= 32):
        raise ValueError(f"run_id={run_id!r}: expected 1 to 32 characters")
    run_id = run_id or _id()
    ids = _row_ids()
    with session_scope(engine) as s:
        old = s.get(PlanRun, run_id)
        if old is not None:
            if old.tenant_id != tenant_id:
                raise ValueError(f"run_id={run_id!r} is already used by another tenant")
            for table in (PlanRecommendation, PlanException, PlanPoDraft):
                s.execute(delete(table).where(table.run_id == run_id))
            s.delete(old)
            s.flush()
        if s.get(Tenant, tenant_id) is None:
            if not create_tenant:
                raise ValueError(
                    f"tenant {tenant_id!r} does not exist; create it first (or pass create_tenant)"
                )
            ensure_tenant(s, tenant_id)
        m = result.meta
        s.add(
            PlanRun(
                run_id=run_id,
                tenant_id=tenant_id,
                as_of=date.fromisoformat(m["as_of"]),
                forecast_version=m["forecast_version"],
                model_version=m["model_version"],
                forecast_source=m["forecast_source"],
                n_units=m["n_units"],
                n_recommendations=result.recommendations.height,
                n_exceptions=result.exceptions.height,
                params=m,
            )
        )
        s.flush()
        recs = []
        docs = evidence_records(result.recommendations)
        for r, doc in zip(result.recommendations.iter_rows(named=True), docs, strict=True):
            recs.append(
                {
                    "id": next(ids),
                    "run_id": run_id,
                    "tenant_id": tenant_id,
                    "kind": r["kind"],
                    "sku_id": r["sku_id"],
                    "location_id": r["location_id"],
                    "from_location_id": r.get("from_location_id"),
                    "supplier_id": r.get("supplier_id"),
                    "order_qty": float(r["order_qty"]),
                    "order_value": float(r["order_value"] or 0.0),
                    "expected_arrival": r.get("expected_arrival"),
                    "action": r["action"],
                    "route_queue": r["route_queue"],
                    "route_role": r["route_role"],
                    "rule": r["rule"],
                    "reason": r["reason"],
                    "evidence": doc,
                    "owner_team": r.get("owner_team"),
                }
            )
        if recs:
            s.execute(PlanRecommendation.__table__.insert(), recs)  # Core executemany
        excs = []
        exc_frame = result.exceptions
        if "exception_key" not in exc_frame.columns:  # a plan made by plan() itself: keyed here
            exc_frame = exc_frame.with_columns(exception_keys(exc_frame, tenant_id))
        for r in exc_frame.iter_rows(named=True):
            row = {c: r.get(c) for c in _EXC_COLS}
            row["value"], row["threshold"] = _num(row["value"]), _num(row["threshold"])
            row["customer_impacting"] = bool(row["customer_impacting"])
            excs.append({"id": next(ids), "run_id": run_id, "tenant_id": tenant_id, **row})
        if excs:
            s.execute(PlanException.__table__.insert(), excs)
        drafts = [
            {
                "id": next(ids),
                "run_id": run_id,
                "tenant_id": tenant_id,
                "draft_id": r["draft_id"],
                "supplier_id": r["supplier_id"],
                "location_id": r["location_id"],
                "n_lines": int(r["n_lines"]),
                "total_qty": float(r["total_qty"]),
                "total_value": float(r["total_value"]),
                "expected_arrival": r["expected_arrival"],
                "lines": r["lines"],
            }
            for r in result.po_drafts.iter_rows(named=True)
        ]
        if drafts:
            s.execute(PlanPoDraft.__table__.insert(), drafts)
    return run_id


def load_run(engine: Engine, tenant_id: str, run_id: str | None = None) -> dict[str, Any]:
    """Read a stored run (the latest of the tenant when ``run_id`` is None) as frames.

    Returns:
        ``{"run": dict, "recommendations": DataFrame, "exceptions": DataFrame, "po_drafts": DataFrame}``.

    Raises:
        LookupError: no such run for this tenant (another tenant's run is never returned).
    """
    with session_scope(engine) as s:
        q = select(PlanRun).where(PlanRun.tenant_id == tenant_id)
        q = q.where(PlanRun.run_id == run_id) if run_id else q.order_by(PlanRun.created_at.desc())
        run = s.execute(q.limit(1)).scalar_one_or_none()
        if run is None:
            raise LookupError(f"no plan run {run_id or '(latest)'} for tenant {tenant_id!r}")
        out: dict[str, Any] = {"run": {c.name: getattr(run, c.name) for c in PlanRun.__table__.columns}}
        for key, table in (
            ("recommendations", PlanRecommendation),
            ("exceptions", PlanException),
            ("po_drafts", PlanPoDraft),
        ):
            rows = s.execute(
                select(table).where(table.tenant_id == tenant_id, table.run_id == run.run_id)
            ).scalars()
            cols = [c.name for c in table.__table__.columns]
            data = [{c: getattr(r, c) for c in cols} for r in rows]
            out[key] = (
                pl.DataFrame(data, infer_schema_length=None)
                if data
                else pl.DataFrame(schema={c: pl.Object for c in cols})
            )
        out["run"]["count"] = s.execute(
            select(func.count()).select_from(PlanRun).where(PlanRun.tenant_id == tenant_id)
        ).scalar_one()
    return out


def identity_issues(engine: Engine, tenant_id: str) -> pl.DataFrame:
    """Identity problems found at ingest that still stand: quarantined identity values not known since.

    A value quarantined because its SKU or location was unknown stops being a problem once that master
    data is ingested (the rows can then be re-sent); each remaining value is reported once, with how many
    rows carried it and where the first one was, not once per rejected row.

    Returns:
        sku_id, location_id, message (one row per unknown identity value), for
        :func:`planning._exceptions.identity_exceptions`.
    """
    from features.store import Location, QuarantineRow, Sku

    with session_scope(engine) as s:
        rows = s.execute(
            select(
                QuarantineRow.field,
                QuarantineRow.value,
                func.count().label("n"),
                func.min(QuarantineRow.file_name).label("file_name"),
                func.min(QuarantineRow.row_number).label("row_number"),
                func.min(QuarantineRow.expected).label("expected"),
            )
            .where(QuarantineRow.tenant_id == tenant_id, QuarantineRow.field.in_(IDENTITY_FIELDS))
            .group_by(QuarantineRow.field, QuarantineRow.value)
        ).all()
        skus = set(s.execute(select(Sku.sku_id).where(Sku.tenant_id == tenant_id)).scalars())
        locations = set(
            s.execute(select(Location.location_id).where(Location.tenant_id == tenant_id)).scalars()
        )
    data = []
    for r in rows:
        is_sku = r.field == "sku_id"
        is_loc = r.field in ("location_id", "from_location_id")
        if (is_sku and r.value in skus) or (is_loc and r.value in locations):
            continue  # known now: the problem was solved by ingesting the master data
        data.append(
            {
                "sku_id": r.value if is_sku else None,
                "location_id": r.value if is_loc else None,
                "message": f"{r.field}={r.value!r} rejected in {r.n} row(s) (first: {r.file_name} row "
                f"{r.row_number}), expected {r.expected}",
            }
        )
    return pl.DataFrame(data, schema={"sku_id": pl.String, "location_id": pl.String, "message": pl.String})
