"""Planner pages under ``/ui``: review queue, recommendation, exceptions, accuracy.

The recommendation page shows the fan chart, inventory projection, evidence and decision forms.
Server-rendered with Jinja2; plots are inline SVG drawn by matplotlib.

Sign-in: the planner pastes an API key once; the server checks it and opens an opaque session
(:mod:`workflow.sessions`): the cookie holds a random token, never the key, and is ``HttpOnly``,
``SameSite=Strict``, ``Secure`` when the page is served over HTTPS, limited to ``/ui``, with an idle and an
absolute expiry (``settings.session_idle_minutes`` / ``session_absolute_hours``). Signing out revokes the
session on the server; revoking the key ends its sessions. Every form carries the session's CSRF token (the
sign-in form a double-submit token), checked before anything changes. Pages see the same tenant scoping and
roles as the API. Decisions go through the control plane's lifecycle functions, so a form approval is the same
state change, audit entry and outbox item as an API approval.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import numpy as np
from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from serving.api.deps import PolicyDep, SessionDep, check_rate
from serving.pages import _evidence, _plots
from serving.pages._links import item_link
from workflow import sessions as page_sessions
from workflow.access import Principal, authenticate

__all__ = ["COOKIE", "Projection", "recommendation_context", "router"]

COOKIE = "replenish_session"
LOGIN_CSRF_COOKIE = "replenish_login_csrf"
router = APIRouter(prefix="/ui", include_in_schema=False)
_TEMPLATES = Path(__file__).resolve().parent / "templates"


def _env():
    import jinja2

    env = getattr(_env, "cached", None)
    if env is None:
        env = _env.cached = jinja2.Environment(
            loader=jinja2.FileSystemLoader(_TEMPLATES), autoescape=jinja2.select_autoescape(["html"])
        )
        env.globals["item_link"] = item_link  # every page links an item the same way
    return env


def render(name: str, status_code: int = 200, **ctx: Any) -> HTMLResponse:
    """Render ``templates/<name>`` with ``ctx``."""
    return HTMLResponse(_env().get_template(name).render(**ctx), status_code=status_code)


class _SignIn(Exception):
    """No live session in the cookie: answered with a redirect to the sign-in page."""


def _limits(request: Request) -> tuple[timedelta, timedelta]:
    st = getattr(request.app.state, "settings", None)
    idle = timedelta(minutes=getattr(st, "session_idle_minutes", 30))
    return idle, timedelta(hours=getattr(st, "session_absolute_hours", 12))


def _https(request: Request) -> bool:
    proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or proto == "https"


def page_principal(request: Request, session: SessionDep) -> Principal:
    """The planner of the session cookie (redirects to ``/ui/login`` when missing, ended or expired)."""
    live = page_sessions.resolve(session, request.cookies.get(COOKIE), idle=_limits(request)[0])
    if live is None:
        raise _SignIn()
    request.state.csrf_token = live.csrf_token
    request.state.tenant_id = live.principal.tenant_id
    check_rate(request, live.principal)  # the pages count against the key's and tenant's limits too
    return live.principal


PagePrincipal = Annotated[Principal, Depends(page_principal)]


def checked_form(request: Request, p: PagePrincipal, csrf_token: Annotated[str, Form()] = "") -> Principal:
    """The signed-in planner, after checking the form's CSRF token against the session's (403 otherwise)."""
    if not page_sessions.csrf_matches(getattr(request.state, "csrf_token", None), csrf_token):
        raise HTTPException(403, detail="csrf_token: missing or wrong; reload the page and try again")
    return p


FormPrincipal = Annotated[Principal, Depends(checked_form)]


def page(request: Request, name: str, status_code: int = 200, **ctx: Any) -> HTMLResponse:
    """Render a signed-in page: the templates' forms get the session's CSRF token."""
    return render(name, status_code, csrf_token=getattr(request.state, "csrf_token", ""), **ctx)


async def _sign_in_redirect(request: Request, exc: _SignIn) -> Response:
    return RedirectResponse(f"/ui/login?next={quote(str(request.url.path))}", status_code=303)


def setup_app(app) -> None:
    """Hook the pages' sign-in redirect into the app (called by the app builder)."""
    app.add_exception_handler(_SignIn, _sign_in_redirect)


# -- sign in -------------------------------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/ui/queue", error: str | None = None):  # noqa: A002 - the query's name
    """The sign-in form (with a double-submit CSRF token)."""
    token = secrets.token_urlsafe(24)
    resp = render(
        "login.html", next=next if next.startswith("/ui/") else "/ui/queue", error=error, csrf_token=token
    )
    resp.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        path="/ui",
        secure=_https(request),
        max_age=3600,
    )
    return resp


@router.post("/login")
def login(
    request: Request,
    session: SessionDep,
    api_key: Annotated[str, Form(max_length=256)],
    next: Annotated[str, Form(max_length=2000)] = "/ui/queue",  # noqa: A002
    csrf_token: Annotated[str, Form(max_length=128)] = "",
):
    """Check the key and open a server-side session (the cookie holds the session token, not the key)."""
    target = next if next.startswith("/ui/") and "//" not in next else "/ui/queue"
    if not page_sessions.csrf_matches(request.cookies.get(LOGIN_CSRF_COOKIE), csrf_token):
        return render(
            "login.html",
            status_code=403,
            next=target,
            error="the form expired; please sign in again",
            csrf_token="",
        )
    principal = authenticate(session, api_key)
    if principal is None:
        return render(
            "login.html",
            status_code=401,
            next=target,
            error="unknown, revoked or expired API key",
            csrf_token=csrf_token,
        )
    idle, absolute = _limits(request)
    token, _ = page_sessions.open_session(session, principal, absolute=absolute)
    resp = RedirectResponse(target, status_code=303)
    resp.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="strict",
        path="/ui",
        secure=_https(request),
        max_age=int(absolute.total_seconds()),
    )
    resp.delete_cookie(LOGIN_CSRF_COOKIE, path="/ui")
    return resp


@router.post("/logout")
def logout(request: Request, session: SessionDep, p: FormPrincipal):
    """End the session on the server and forget the cookie."""
    page_sessions.revoke(session, request.cookies.get(COOKIE))
    resp = RedirectResponse("/ui/login", status_code=303)
    resp.delete_cookie(COOKIE, path="/ui")
    return resp


# -- one recommendation --------------------------------------------------------------------------------------


def _evidence_body(evidence: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge the bodies of the linked evidence (later records win) into one view."""
    merged: dict[str, Any] = {}
    for e in evidence:
        if isinstance(e.get("body"), dict):
            merged.update(e["body"])
    return merged


async def _forecast_for(
    request: Request, rec, tenant: str
) -> tuple[list[float], np.ndarray, str, str | None] | None:
    """The quantile forecast of the recommendation's SKU x location, if one can be shown.

    The tenant's served forecast run first (the ``sku_id/location_id`` node when the run has that level,
    else its channels' quantiles summed, as planning combines them); without a servable run (none stored,
    or stale), the optional model deployment (``app.state.forecaster``, unit ``location|sku``).
    """
    from serving.api.routes.forecasts import forecast_store

    try:
        fc = await forecast_store(request.app).get(tenant)
    except Exception:  # noqa: BLE001 - nothing servable (409 reasons): try the model deployment
        fc = None
    if fc is not None:
        node = f"sku_id={rec.sku_id}/location_id={rec.location_id}"
        spans = (
            [fc.index[node]]
            if node in fc.index
            else [
                span for unit, span in fc.index.items() if unit.startswith(f"{rec.sku_id}|{rec.location_id}|")
            ]
        )
        if spans:
            q = np.sum([fc.q[a:b] for a, b in spans], axis=0)
            version = fc.meta.model_version or "baseline"
            return [float(x) for x in fc.meta.levels], np.asarray(q, dtype=float), str(version), fc.meta.freq
    forecaster = getattr(request.app.state, "forecaster", None)
    if forecaster is None:
        return None
    unit = f"{rec.location_id}|{rec.sku_id}"
    try:
        out = await asyncio.wait_for(forecaster.forecast([unit]), timeout=10)
    except Exception:  # noqa: BLE001 - unknown unit, overload or model down: the page shows the evidence only
        return None
    return [float(x) for x in out["quantiles"]], np.asarray(out["values"])[0], str(out["version"]), None


def _num(d: dict[str, Any], *path: str) -> float | None:
    cur: Any = d
    for k in path:
        if not isinstance(cur, dict) or k not in cur:
            return None
        cur = cur[k]
    try:
        return float(cur)
    except (TypeError, ValueError):
        return None


def _levels(ev: dict[str, Any]) -> tuple[float | None, float | None]:
    """Safety stock and reorder point from the simulation evidence.

    Planning's order-up-to policy gives the level ``S`` and the mean demand over the protection interval; the
    safety stock is ``S`` minus that mean, and ``S`` is the point up to which each review orders. Evidence
    that names ``safety_stock`` / ``reorder_point`` directly is shown as given.
    """
    safety, reorder = _num(ev, "simulation", "safety_stock"), _num(ev, "simulation", "reorder_point")
    s_level, mean_p = _num(ev, "simulation", "order_up_to"), _num(ev, "simulation", "protection_demand_mean")
    if reorder is None and s_level is not None:
        reorder = s_level
    if safety is None and s_level is not None and mean_p is not None:
        safety = s_level - mean_p
    return safety, reorder


@dataclass
class Projection:
    """What the projected on-hand chart is drawn from, kept so that a what-if can redraw it."""

    levels: list[float]
    q: np.ndarray  # (H, Q) demand quantiles
    dates: list  # (H,) end of each period
    position: float
    lead_days: float
    period_days: float
    safety: float | None
    reorder: float | None

    def svg(
        self,
        qty: float,
        *,
        demand_factor: float = 1.0,
        lead_factor: float = 1.0,
        title: str = "",
        reorder: float | None = None,
        safety: float | None = None,
    ) -> str:
        """The projected on-hand band with an order of ``qty``, demand and lead time scaled."""
        lead = self.lead_days * lead_factor
        proj = _plots.project_inventory(
            self.position, self.q * demand_factor, qty, int(np.ceil(lead / self.period_days))
        )
        return _plots.inventory_projection(
            proj,
            self.levels,
            safety,
            reorder,
            title=title or f"projected on hand, order of {qty:,.0f} arriving in ~{lead:.0f} days",
            dates=self.dates,
        )


async def recommendation_context(
    request: Request, p: Principal, session, policy, rec_id: str
) -> dict[str, Any]:
    """Everything the recommendation page shows (404 for another tenant's id), and its ``projection``."""
    from workflow import evidence as evidence_store
    from workflow.lifecycle import get, history

    rec = get(session, p.tenant_id, rec_id)  # NotFound (404) for another tenant's id
    evidence = evidence_store.for_recommendation(session, p.tenant_id, rec_id)
    ev = _evidence_body(evidence)
    fc = await _forecast_for(request, rec, p.tenant_id)
    fan_svg = inv_svg = projection = None
    fc_version = None
    if fc is not None:
        levels, q, fc_version, freq = fc
        period_days = _num(ev, "lead_time", "period_days") or 30.0
        # periods start at the recommendation's as-of date (planning proposes from the latest data)
        starts = _plots.period_dates(rec.created_at.date(), q.shape[0] + 1, freq, period_days)
        fan_svg = _plots.fan_chart(
            levels,
            q,
            title=f"demand forecast {rec.location_id} | {rec.sku_id} (model {fc_version})",
            dates=starts[:-1],
        )
        position = _num(ev, "inventory_position")
        if position is not None:
            lead_periods = _num(ev, "lead_time", "mean_periods")
            lead_days = (
                lead_periods * period_days
                if lead_periods is not None
                else rec.promised_lead_time_days or period_days
            )
            safety, reorder = _levels(ev)
            projection = Projection(levels, q, starts[1:], position, lead_days, period_days, safety, reorder)
            qty = rec.final_quantity or rec.quantity
            inv_svg = projection.svg(
                qty,
                reorder=reorder,
                safety=safety,
                title=f"projected on hand, order of {rec.quantity:,.0f} arriving in ~{lead_days:.0f} days",
            )
    return dict(
        p=p,
        rec=rec,
        evidence=evidence,
        ev=ev,
        sections=_evidence.sections(ev, fc_version),
        fan_svg=fan_svg,
        inv_svg=inv_svg,
        fc_version=fc_version,
        history=history(session, p.tenant_id, rec_id),
        can_decide=p.has_any("planner", "approver"),
        reason_codes=policy.reason_codes,
        projection=projection,
    )


@router.get("/recommendations/{rec_id}", response_class=HTMLResponse)
async def recommendation(
    rec_id: str,
    request: Request,
    p: PagePrincipal,
    session: SessionDep,
    policy: PolicyDep,
    msg: str | None = None,
    error: str | None = None,
    override_qty: float | None = None,
    override_comment: Annotated[str | None, Query(max_length=500)] = None,
):
    """A recommendation with its forecast fan chart, inventory projection, evidence, history and forms.

    ``override_qty`` / ``override_comment`` pre-fill the override form (a what-if's "use as override").
    """
    ctx = await recommendation_context(request, p, session, policy, rec_id)
    prefill = {"quantity": override_qty, "comment": override_comment} if override_qty is not None else None
    return page(request, "recommendation.html", msg=msg, error=error, prefill=prefill, **ctx)


def _decide(
    rec_id: str, action: str, fn, body_cls, fields: dict[str, Any], p: Principal, session, policy
) -> Response:
    from workflow.errors import WorkflowError

    clean = {k: v for k, v in fields.items() if v not in (None, "")}
    try:
        body = body_cls(**clean)
        fn(session, p, rec_id, body, policy=policy)
    except ValidationError as exc:
        err = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return RedirectResponse(f"/ui/recommendations/{rec_id}?error={quote(err)}", status_code=303)
    except WorkflowError as exc:
        if exc.status_code == 404:
            raise
        return RedirectResponse(
            f"/ui/recommendations/{rec_id}?error={quote(str(exc.detail()))}", status_code=303
        )
    return RedirectResponse(f"/ui/recommendations/{rec_id}?msg={quote(action)}", status_code=303)


@router.post("/recommendations/{rec_id}/approve")
def approve_form(
    rec_id: str,
    p: FormPrincipal,
    session: SessionDep,
    policy: PolicyDep,
    version: Annotated[int, Form()],
    comment: Annotated[str | None, Form()] = None,
):
    """Approve from the page (same state change, audit and outbox item as the API)."""
    from workflow.lifecycle import approve
    from workflow.schemas import ApproveIn

    return _decide(
        rec_id, "approved", approve, ApproveIn, {"version": version, "comment": comment}, p, session, policy
    )


@router.post("/recommendations/{rec_id}/override")
def override_form(
    rec_id: str,
    p: FormPrincipal,
    session: SessionDep,
    policy: PolicyDep,
    version: Annotated[int, Form()],
    reason_code: Annotated[str, Form()],
    quantity: Annotated[str | None, Form()] = None,
    need_by: Annotated[str | None, Form()] = None,
    comment: Annotated[str | None, Form()] = None,
):
    """Override quantity and/or date from the page, with a reason code."""
    from workflow.lifecycle import override
    from workflow.schemas import OverrideIn

    return _decide(
        rec_id,
        "overridden",
        override,
        OverrideIn,
        {
            "version": version,
            "reason_code": reason_code,
            "quantity": quantity,
            "need_by": need_by,
            "comment": comment,
        },
        p,
        session,
        policy,
    )


@router.post("/recommendations/{rec_id}/reject")
def reject_form(
    rec_id: str,
    p: FormPrincipal,
    session: SessionDep,
    policy: PolicyDep,
    version: Annotated[int, Form()],
    reason_code: Annotated[str, Form()],
    comment: Annotated[str | None, Form()] = None,
):
    """Reject from the page, with a reason code."""
    from workflow.lifecycle import reject
    from workflow.schemas import RejectIn

    return _decide(
        rec_id,
        "rejected",
        reject,
        RejectIn,
        {"version": version, "reason_code": reason_code, "comment": comment},
        p,
        session,
        policy,
    )


# -- accuracy (the exceptions page: serving.pages._exception_views) -----------------------------------------


@router.get("/accuracy", response_class=HTMLResponse)
def accuracy(request: Request, p: PagePrincipal, session: SessionDep, metric: str = "wape"):
    """Forecast accuracy by hierarchy level and model version (latest figures recorded by telemetry)."""
    from workflow.telemetry import summary

    s = summary(session, p.tenant_id)
    points = [m for m in s["metrics"] if m["metric"].endswith(metric)]
    points.sort(key=lambda m: (str(m["labels"].get("level", "")), str(m["labels"].get("model_version", ""))))
    labels = [f"{m['labels'].get('level', '?')} / {m['labels'].get('model_version', '?')}" for m in points]
    chart = _plots.accuracy_bars(labels, [m["value"] for m in points], metric) if points else None
    metrics = sorted({m["metric"] for m in s["metrics"]})
    return page(
        request,
        "accuracy.html",
        p=p,
        points=points,
        chart=chart,
        metric=metric,
        metrics=metrics,
        overrides=s["overrides"],
        by_state=s["recommendations_by_state"],
    )
