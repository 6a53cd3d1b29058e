"""Suppliers' responses to purchase orders, and what each response changes: the supplier loop.

A response (EDI-like ORDRSP: ``order_number``, ``status``, ``quantity``, ``on_date``, ``comment``; see
``docs/suppliers.md``) arrives by API, by the planner pages' form or in a file (CSV or JSON,
:func:`read_response_file`). :func:`record_responses` checks every line before storing any (an unknown order,
a negative quantity, more than was ordered, a date before the order was sent: a clear error naming the line
and the field, nothing stored), then records them in one transaction through
:func:`workflow.lifecycle.record_supplier_response` (the order's confirmed quantity and date, OTIF, the
observed lead time, the audit entry and a ``supplier`` event).

:func:`apply_responses` then closes the loop, after that transaction has committed:

1. the purchase-order facts (``purchase_orders``: the confirmed quantity and date as the line's qty and ETA,
   ``received``/``cancelled`` status) and, for receipts, the observed lead time (``lead_times``) are ingested
   through the data layer's own ingest, so the next plan learns from them like from any other fact;
2. the exceptions the responses raise (short, late, rejected: :func:`planning.response_exceptions`);
3. a re-plan of the affected units (the SKU x locations of the responded orders and of the other open orders
   of those SKUs confirmed short) with the confirmed supply (:func:`planning.plan_stage` with
   ``confirmed_supply``: the plan splits what the supplier confirmed across the locations by stockout risk
   and customer commitments, as ``allocation`` recommendations); the exceptions are stored, keyed and routed
   with that plan run (planning's exception rows, ``exception_key`` for the exception workflow);
4. the re-plan's allocations are proposed to the workflow (routed by the tenant's rules; an approved one goes
   to the OMS).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
import uuid
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import Field, ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from features.store import session_scope
from workflow._models import Recommendation, SupplierResponse
from workflow.confirmations import CONFIRMATION_SCHEMA, confirmed_supply, open_confirmations
from workflow.errors import InvalidInput, NotFound, WorkflowError
from workflow.lifecycle import get, record_supplier_response
from workflow.schemas import RecommendationOut, SupplierResponseIn

__all__ = [
    "RESPONSE_FIELDS",
    "ConcurrentResponse",
    "LoopResult",
    "ResponseLine",
    "ResponseOutcome",
    "apply_responses",
    "import_folder",
    "open_confirmations",
    "read_response_file",
    "record_responses",
    "responses_of",
]

log = logging.getLogger(__name__)

#: Columns of a response file (and fields of the API body), in order.
RESPONSE_FIELDS = ("order_number", "status", "quantity", "on_date", "comment", "response_id")
_R = Recommendation.__table__
_S = SupplierResponse.__table__
#: Most lines in one batch (a file or one API call).
MAX_LINES = 10_000


class ConcurrentResponse(WorkflowError):
    """The same response (same ``response_id``) was being recorded at the same moment by another request."""

    status_code = 409


class ResponseLine(SupplierResponseIn):
    """One response line: which order (``order_number``, the purchase order's id as sent) and the answer.

    ``response_id`` (optional, the supplier's own document number, ORDRSP BGM 1004): a response whose id was
    already recorded for the order is a repeat (a retried delivery) and is not applied again.
    """

    order_number: str = Field(min_length=1, max_length=64)
    response_id: str | None = Field(default=None, min_length=1, max_length=64)


@dataclasses.dataclass(frozen=True)
class ResponseOutcome:
    """A recorded response and the order it answered."""

    order_number: str
    status: str
    supplier_id: str
    sku_id: str
    location_id: str
    ordered_qty: float
    confirmed_qty: float | None
    confirmed_date: date | None
    need_by: date | None
    sent_date: date | None
    on_date: date | None
    quantity: float | None
    recommendation: RecommendationOut
    duplicate: bool = False


def _check(row: dict[str, Any] | None, line: ResponseLine, where: str) -> None:
    """Refuse a line that cannot apply to its order, naming the field."""
    if row is None:
        raise NotFound(f"{where}purchase order (order_number)", line.order_number)
    if row["kind"] != "purchase_order":
        raise InvalidInput(
            f"{where}order_number", f"{line.order_number} is a {row['kind']}, not a purchase order"
        )
    ordered = row["final_quantity"] if row["final_quantity"] is not None else row["quantity"]
    if line.quantity is not None and line.quantity > ordered + 1e-9:
        raise InvalidInput(
            f"{where}quantity",
            f"{line.quantity:g} is above the {ordered:g} ordered on {line.order_number}; a response "
            "confirms or delivers at most the ordered quantity",
        )
    if line.status == "partial" and line.quantity is not None and line.quantity >= ordered:
        raise InvalidInput(
            f"{where}quantity", f"a partial confirmation is below the {ordered:g} ordered (use 'confirmed')"
        )
    sent = row["sent_at"].date() if row["sent_at"] is not None else None
    if line.on_date is not None and sent is not None and line.on_date < sent:
        raise InvalidInput(
            f"{where}on_date",
            f"{line.on_date.isoformat()} is before the order was sent ({sent.isoformat()}); expected a date "
            "on or after it (YYYY-MM-DD)",
        )


def record_responses(
    session: Session, tenant_id: str, lines: Sequence[ResponseLine], *, actor: str
) -> list[ResponseOutcome]:
    """Check every line, then record them all in ``session``'s transaction (all or nothing).

    Raises:
        NotFound: an ``order_number`` names no purchase order of the tenant.
        InvalidInput: a quantity above the ordered one, a date before the order was sent, a line that is not
            a purchase order, too many lines; the message names the line (``line N``) and the field.
        IllegalTransition: an order that was not sent yet.
    """
    if len(lines) > MAX_LINES:
        raise InvalidInput("lines", f"{len(lines)} lines; at most {MAX_LINES} per batch")
    ids = sorted({ln.order_number for ln in lines})
    rows = {
        r["id"]: dict(r)
        for r in session.execute(select(_R).where(_R.c.tenant_id == tenant_id, _R.c.id.in_(ids))).mappings()
    }
    many = len(lines) > 1
    for n, ln in enumerate(lines, start=1):
        _check(rows.get(ln.order_number), ln, f"line {n}: " if many else "")
    seen = _known_response_ids(session, tenant_id, lines)
    out = []
    for ln in lines:
        row = rows[ln.order_number]
        if ln.response_id is not None and (ln.order_number, ln.response_id) in seen:
            out.append(_outcome(ln, row, get(session, tenant_id, ln.order_number), duplicate=True))
            continue
        rec = record_supplier_response(
            session,
            tenant_id,
            ln.order_number,
            SupplierResponseIn(**ln.model_dump(exclude={"order_number", "response_id"})),
            actor=actor,
        )
        if ln.response_id is not None:
            _tag(session, tenant_id, ln)
            seen.add((ln.order_number, ln.response_id))
        out.append(_outcome(ln, row, rec))
    return out


def _known_response_ids(
    session: Session, tenant_id: str, lines: Sequence[ResponseLine]
) -> set[tuple[str, str]]:
    ids = sorted({ln.order_number for ln in lines if ln.response_id is not None})
    if not ids:
        return set()
    q = select(_S.c.recommendation_id, _S.c.response_id).where(
        _S.c.tenant_id == tenant_id, _S.c.recommendation_id.in_(ids), _S.c.response_id.is_not(None)
    )
    return {(r, i) for r, i in session.execute(q)}


def _tag(session: Session, tenant_id: str, ln: ResponseLine) -> None:
    """Put the supplier's response id on the response row just written (the order's newest)."""
    newest = (
        select(func.max(_S.c.id))
        .where(_S.c.tenant_id == tenant_id, _S.c.recommendation_id == ln.order_number)
        .scalar_subquery()
    )
    try:
        with session.begin_nested():
            session.execute(update(_S).where(_S.c.id == newest).values(response_id=ln.response_id))
    except IntegrityError:  # the same response recorded meanwhile by a concurrent delivery
        raise ConcurrentResponse(
            f"response_id {ln.response_id!r} of order {ln.order_number} was recorded by a concurrent "
            "delivery; send it again to get it answered as a repeat"
        ) from None


def _outcome(ln: ResponseLine, row: dict[str, Any], rec: RecommendationOut, duplicate: bool = False):
    return ResponseOutcome(
        order_number=ln.order_number,
        status=ln.status,
        supplier_id=rec.supplier_id or "",
        sku_id=rec.sku_id,
        location_id=rec.location_id,
        ordered_qty=float(row["final_quantity"] if row["final_quantity"] is not None else row["quantity"]),
        confirmed_qty=rec.confirmed_quantity,
        confirmed_date=rec.confirmed_date,
        need_by=row["final_need_by"] or row["need_by"],
        sent_date=row["sent_at"].date() if row["sent_at"] is not None else None,
        on_date=ln.on_date,
        quantity=ln.quantity,
        recommendation=rec,
        duplicate=duplicate,
    )


def read_response_file(path: str | Path) -> list[ResponseLine]:
    """Response lines from a CSV (columns :data:`RESPONSE_FIELDS`) or a JSON file.

    A JSON file holds a list of responses, or ``{"responses": [...]}``.

    Raises:
        InvalidInput: unreadable file, unknown columns, or a bad line (``line N: field: message``; lines count
            from 1, the first data row of a CSV).
    """
    path = Path(path)
    try:
        if path.suffix.lower() == ".json":
            doc = json.loads(path.read_text())
            raw = doc.get("responses") if isinstance(doc, dict) else doc
            if not isinstance(raw, list):
                raise InvalidInput("file", 'expected a JSON list of responses or {"responses": [...]}')
        elif path.suffix.lower() == ".csv":
            frame = pl.read_csv(path, infer_schema=False)
            unknown = [c for c in frame.columns if c not in RESPONSE_FIELDS]
            if unknown or "order_number" not in frame.columns or "status" not in frame.columns:
                raise InvalidInput(
                    "file",
                    f"columns {frame.columns}: expected order_number, status and optionally quantity, "
                    "on_date, comment",
                )
            raw = [{k: v for k, v in r.items() if v not in (None, "")} for r in frame.iter_rows(named=True)]
        else:
            raise InvalidInput("file", f"{path.name}: expected a .csv or .json file")
    except (OSError, ValueError, pl.exceptions.PolarsError) as exc:
        if isinstance(exc, InvalidInput):
            raise
        raise InvalidInput("file", f"{path.name}: cannot read it ({exc})") from None
    lines = []
    for n, item in enumerate(raw, start=1):
        try:
            lines.append(ResponseLine.model_validate(item))
        except ValidationError as exc:
            e = exc.errors()[0]
            field = ".".join(str(x) for x in e.get("loc", ())) or "line"
            raise InvalidInput(f"line {n}: {field}", e.get("msg", "invalid")) from None
    return lines


@dataclasses.dataclass
class LoopResult:
    """What :func:`apply_responses` did after the responses were stored."""

    facts: dict[str, str] = dataclasses.field(default_factory=dict)
    exceptions: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    confirmed_supply: dict[str, float] = dataclasses.field(default_factory=dict)
    replan_run_id: str | None = None
    allocations: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    proposed: int = 0
    notes: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return dataclasses.asdict(self)


def _fact_frames(outcomes: Sequence[ResponseOutcome]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The purchase-order lines and observed deliveries the responses make, as ingest contracts want them."""
    po, lt = [], []
    for o in outcomes:
        order_date = o.sent_date or o.on_date or o.need_by
        if order_date is None:
            continue
        status, qty = "open", o.confirmed_qty if o.confirmed_qty is not None else o.ordered_qty
        if o.status == "rejected" or qty <= 0:
            status, qty = "cancelled", o.ordered_qty
        if o.status == "received":
            status, qty = "received", o.quantity if o.quantity else o.ordered_qty
            lt.append((o.supplier_id, o.sku_id, order_date, o.on_date, float((o.on_date - order_date).days)))
        eta = o.on_date if o.status == "received" else (o.confirmed_date or o.need_by or order_date)
        po.append(
            (
                o.order_number,
                o.sku_id,
                o.location_id,
                "purchase",
                o.supplier_id,
                float(qty),
                order_date,
                max(eta, order_date),
                status,
            )
        )
    po_cols = ["po_id", "sku_id", "location_id", "kind", "supplier_id", "qty", "order_date", "eta", "status"]
    lt_cols = ["supplier_id", "sku_id", "order_date", "receipt_date", "lead_time_days"]
    return (
        pl.DataFrame(po, schema=po_cols, orient="row").unique(
            ["po_id", "sku_id", "location_id"], keep="last"
        ),
        pl.DataFrame(lt, schema=lt_cols, orient="row").unique(
            ["supplier_id", "sku_id", "order_date"], keep="last"
        ),
    )


def _ingest_facts(engine: Engine, tenant: str, outcomes, settings, result: LoopResult) -> None:
    """Ingest the purchase-order and lead-time facts of the responses (the data layer's own path)."""
    from features.ingest import ingest

    po, lt = _fact_frames(outcomes)
    with tempfile.TemporaryDirectory(prefix="supplier-responses-") as tmp:
        for kind, frame in (("purchase_orders", po), ("lead_times", lt)):
            if not frame.height:
                continue
            path = Path(tmp) / f"{kind}-{uuid.uuid4().hex[:8]}.csv"
            frame.write_csv(path)
            try:
                res = ingest(kind, path, tenant=tenant, engine=engine, settings=settings)
            except Exception as exc:  # the responses are stored; a fact that could not be written is said
                result.facts[kind] = f"error: {type(exc).__name__}: {exc}"
                continue
            result.facts[kind] = res.status
            if res.rows_quarantined:
                result.notes.append(
                    f"{kind}: {res.rows_quarantined} row(s) quarantined by ingest (batch {res.batch_id}): "
                    f"{', '.join(sorted(res.violations_by_field))}"
                )


def _exceptions(outcomes: Sequence[ResponseOutcome]) -> pl.DataFrame:
    from planning import response_exceptions

    lines = pl.DataFrame(
        [
            {
                "po_id": o.order_number,
                "supplier_id": o.supplier_id,
                "sku_id": o.sku_id,
                "location_id": o.location_id,
                "status": o.status,
                "ordered_qty": o.ordered_qty,
                "confirmed_qty": o.quantity if o.status == "received" else o.confirmed_qty,
                "need_by": o.need_by,
                "confirmed_date": o.on_date if o.status == "received" else o.confirmed_date,
            }
            for o in outcomes
        ],
        schema=dict.fromkeys(("po_id", "supplier_id", "sku_id", "location_id", "status"), pl.String)
        | dict.fromkeys(("ordered_qty", "confirmed_qty"), pl.Float64)
        | dict.fromkeys(("need_by", "confirmed_date"), pl.Date),
    )
    return response_exceptions(lines)


def apply_responses(
    engine: Engine,
    tenant: str,
    outcomes: Sequence[ResponseOutcome],
    *,
    settings=None,
    replan: bool = True,
    propose: bool = True,
    actor: str = "system:supplier-loop",
) -> LoopResult:
    """Facts, exceptions, re-plan and allocation proposals of recorded responses (module docstring, 1-4).

    Args:
        engine: the tenant's state store.
        tenant: whose responses.
        outcomes: from :func:`record_responses` (committed).
        settings: ``features.settings.Settings`` (fact store); default ``get_settings()``.
        replan: re-plan the affected units (False: facts only; the exceptions then wait for the next plan).
        propose: propose the re-plan's allocations to the workflow.
        actor: who proposes.

    Returns:
        :class:`LoopResult`; a step that could not run says why in ``notes`` (the responses stay stored).
    """
    if settings is None:
        from features.settings import get_settings

        settings = get_settings()
    result = LoopResult()
    outcomes = [o for o in outcomes if not o.duplicate]  # a repeat changed nothing: nothing to redo
    if not outcomes:
        return result
    _ingest_facts(engine, tenant, outcomes, settings, result)
    exc = _exceptions(outcomes)
    result.exceptions = exc.to_dicts()
    if not replan:
        return result
    short = confirmed_supply(engine, tenant, sorted({o.sku_id for o in outcomes}))
    if short is None:
        short = pl.DataFrame(schema=CONFIRMATION_SCHEMA)
    confirmed = short.group_by("sku_id").agg(pl.col("confirmed_qty").sum()).sort("sku_id")
    result.confirmed_supply = {k: float(v) for k, v in confirmed.iter_rows()}
    units = pl.concat(
        [
            pl.DataFrame(
                [(o.sku_id, o.location_id) for o in outcomes], schema=["sku_id", "location_id"], orient="row"
            ),
            short.select("sku_id", "location_id"),
        ]
    ).unique(maintain_order=True)
    if not exc.height and not confirmed.height:
        result.notes.append("no shortfall, delay or refusal: nothing to re-plan")
        return result
    _replan(engine, tenant, units, short, exc, settings, result, propose=propose, actor=actor)
    return result


def _replan(
    engine, tenant, units, confirmed, exc, settings, result: LoopResult, *, propose: bool, actor: str
):
    """Re-plan ``units`` with the confirmed supply, store the exceptions with it, propose its allocations."""
    from planning import load_run, plan_stage
    from workflow.lifecycle import propose_many
    from workflow.proposals import build_recommendations

    run_id = f"supplier-{uuid.uuid4().hex[:12]}"
    try:
        staged = plan_stage(
            engine,
            tenant,
            run_id=run_id,
            settings=settings,
            units=units,
            confirmed_supply=confirmed if confirmed.height else None,  # per order: on_order netted
            extra_exceptions=exc,
        )
    except Exception as exc_:  # the responses are stored; a re-plan that cannot run is said, never a 5xx
        result.notes.append(f"re-plan of the affected units failed: {type(exc_).__name__}: {exc_}")
        log.warning("supplier re-plan of tenant %s failed", tenant, exc_info=True)
        return
    result.replan_run_id = staged.run_id
    _announce_replan(engine, tenant, staged, result)
    recs = staged.result.recommendations
    if recs.height:
        alloc = recs.filter(pl.col("kind") == "allocation")
        result.allocations = alloc.select(
            [
                c
                for c in ("sku_id", "location_id", "requested_qty", "order_qty", "constrained")
                if c in alloc.columns
            ]
        ).to_dicts()
    if not propose or not result.allocations:
        return
    try:
        run = load_run(engine, tenant, staged.run_id)
        # One proposal per unit and confirmed supply: a repeated response re-plans to the same allocation,
        # which is then found by its key instead of being proposed again.
        todo = [
            r.model_copy(
                update={
                    "proposal_key": f"supplier-allocation:{r.sku_id}|{r.location_id}|"
                    f"{result.confirmed_supply.get(r.sku_id, 0.0):g}"
                }
            )
            for r in build_recommendations(run)
            if r.kind == "allocation"
        ]
        with session_scope(engine) as s:
            result.proposed = len(propose_many(s, tenant, todo, actor=actor)) if todo else 0
    except Exception as exc_:  # the re-plan run is stored; its allocations can be proposed from it later
        result.notes.append(
            f"allocations of re-plan {staged.run_id} not proposed: {type(exc_).__name__}: {exc_} "
            "(the run is stored: propose it with workflow.proposals.propose_plan)"
        )
        log.warning("proposing supplier re-plan %s failed", staged.run_id, exc_info=True)


def _announce_replan(engine: Engine, tenant: str, staged, result: LoopResult) -> None:
    """A ``plan.replanned`` event (topic ``plan``) after the re-plan run is stored (docs/events.md)."""
    from workflow.events import publish

    counts = {k: v for k, v in staged.counts.items() if isinstance(v, int | float)}
    payload = {"plan_run": staged.run_id, "confirmed_supply": result.confirmed_supply, "counts": counts}
    try:
        with session_scope(engine) as s:
            publish(s, tenant, "plan", "plan.replanned", staged.run_id, payload)
    except Exception:  # the run is stored; a missing announcement is logged, as the cycle's are
        log.warning("supplier re-plan %s: the event was not published", staged.run_id, exc_info=True)


def responses_of(session: Session, tenant_id: str, order_numbers: Sequence[str]) -> list[SupplierResponse]:
    """The recorded responses to the tenant's orders ``order_numbers``, oldest first."""
    if not order_numbers:
        return []
    return list(
        session.scalars(
            select(SupplierResponse)
            .where(
                SupplierResponse.tenant_id == tenant_id,
                SupplierResponse.recommendation_id.in_(list(order_numbers)),
            )
            .order_by(SupplierResponse.id)
        )
    )


def import_folder(
    engine: Engine,
    tenant: str,
    folder: str | Path,
    *,
    actor: str,
    settings=None,
    replan: bool = True,
) -> list[tuple[str, str, str]]:
    """Import every response file a supplier dropped in ``folder`` (its inbox), oldest name first.

    Each ``.csv`` / ``.json`` file is one batch (all lines or none): recorded and applied, then moved to
    ``done/``; refused, moved to ``rejected/`` beside a ``<name>.error.txt`` naming the line and field. Names
    starting with ``.`` are skipped: suppliers write to such a temporary name and rename when complete.

    Returns:
        ``(file name, "done" | "rejected", message)`` per file.
    """
    folder = Path(folder)
    out = []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        if path.suffix.lower() not in (".csv", ".json"):
            continue
        try:
            lines = read_response_file(path)
            with session_scope(engine) as s:
                outcomes = record_responses(s, tenant, lines, actor=actor)
        except WorkflowError as exc:
            dest = folder / "rejected"
            dest.mkdir(exist_ok=True)
            (dest / f"{path.name}.error.txt").write_text(f"{exc}\n")
            path.replace(dest / path.name)
            out.append((path.name, "rejected", str(exc)))
            continue
        dest = folder / "done"
        dest.mkdir(exist_ok=True)
        path.replace(dest / path.name)  # recorded: never imported twice, whatever the loop below does
        loop = apply_responses(engine, tenant, outcomes, settings=settings, replan=replan, actor=actor)
        said = f"{sum(not o.duplicate for o in outcomes)} response(s), {len(loop.exceptions)} exception(s)"
        if loop.replan_run_id:
            said += f", re-plan {loop.replan_run_id} ({loop.proposed} allocation(s) proposed)"
        out.append((path.name, "done", "; ".join([said, *loop.notes])))
    return out
