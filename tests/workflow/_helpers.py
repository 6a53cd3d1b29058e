"""Shared helpers of the control-plane tests: catalogue, recommendations, a small plan, a webhook receiver."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from features.store._db import session_scope
from workflow import lifecycle
from workflow.adapters import SIGNATURE_HEADER, TIMESTAMP_HEADER, SignatureError, verify_signature
from workflow.schemas import RecommendationIn, Route

SECRET = "test-webhook-secret"


#: SKUs whose unit cost (2.5 from SUP-1) the catalogue fixture stores: values are computed from it.
CATALOGUE_SKUS = tuple(f"SKU-{i}" for i in range(60)) + tuple(f"S{i}" for i in range(60))


def seed_catalogue(session, tenant: str, skus=CATALOGUE_SKUS, supplier: str = "SUP-1", cost: float = 2.5):
    """Store SKUs, a supplier and its terms (unit cost ``cost``) as ingest would, in ``session``."""
    from sqlalchemy import select

    from features.store._schema import Sku, Supplier, SupplierTerm

    have = set(session.scalars(select(Sku.sku_id).where(Sku.tenant_id == tenant)))
    if session.get(Supplier, (tenant, supplier)) is None:
        session.add(Supplier(tenant_id=tenant, supplier_id=supplier))
    for sku in skus:
        if sku not in have:
            session.add(Sku(tenant_id=tenant, sku_id=sku))
    session.flush()
    for sku in skus:
        session.merge(
            SupplierTerm(
                tenant_id=tenant, supplier_id=supplier, sku_id=sku, unit_cost=cost, moq=0, pack_size=1,
                promised_lead_time_days=14,
            )
        )
    session.flush()


#: Routing rules of the small plan: purchases over 400 go to the buyers, everything else is auto-approved.
PLAN_RULES = """
version: 1
default: {action: auto_approve, reason: "within policy"}
rules:
  - name: big_buy
    applies_to: [purchase]
    when: {order_value: {gt: 400}}
    route: {queue: buyers, role: planner}
    reason: "order value {order_value} over 400"
"""
#: The synthetic data set behind the small plan: 40 series x 60 weeks, seed 3.
PLAN_DATA = {"n_series": 40, "n_periods": 60, "freq": "W", "seed": 3}


def small_plan():
    """One small weekly plan (not stored) whose rules route some purchases and let the others through."""
    from features.synth import generate
    from planning import PlanConfig, inputs_from_frames, parse_rules, plan

    inputs = inputs_from_frames(**generate(**PLAN_DATA).tables())
    return plan(
        inputs.units,
        inputs.forecast,
        inputs.lead_time_pmf,
        as_of=inputs.as_of,
        lead_time_counts=inputs.lead_time_counts,
        config=PlanConfig(n_paths=64, seed=0),
        rules=parse_rules(PLAN_RULES),
        extra_exceptions=inputs.exceptions,
    )


def ingest_plan_catalogue(engine, tenant: str, folder) -> None:
    """The small plan's SKUs, suppliers and terms through the real ingest: proposals are valued from them."""
    from features.ingest import ingest
    from features.synth import generate

    paths = generate(**PLAN_DATA).write(folder, fmt="parquet")
    for kind in ("channels", "locations", "skus", "suppliers", "supplier_terms"):
        res = ingest(kind, paths[kind], tenant=tenant, engine=engine)
        assert res.status == "stored", (kind, res.status)


def rec_in(**kw) -> RecommendationIn:
    base = dict(
        kind="purchase_order",
        sku_id="SKU-1",
        location_id="DC-1",
        supplier_id="SUP-1",
        quantity=100.0,
        unit_cost=2.5,
        need_by="2026-12-20",
        promised_lead_time_days=14,
        route=Route(queue="buyers", role="planner", rule="value>100", reason="needs review"),
        evidence={"forecast_version": "fc-1", "model_version": "tft:3", "quantiles": {"p50": 90.0}},
    )
    base.update(kw)
    return RecommendationIn(**base)


def propose(engine, tenant: str, **kw):
    with session_scope(engine) as s:
        return lifecycle.propose(s, tenant, rec_in(**kw), actor="planning:test")


class Receiver:
    """A real HTTP receiver on 127.0.0.1 that verifies signatures and honours idempotency keys.

    ``processed[key]`` counts how many times each key was *processed* (must stay 1); repeats are answered 200
    without processing and counted in ``duplicates``. ``stop()`` closes the socket (the endpoint is down) and
    ``start()`` opens it again on the same port.
    """

    def __init__(self, secret: str = SECRET, port: int = 0, tolerance_s: float = 300.0):
        self.secret, self.tolerance_s = secret, tolerance_s
        self.processed: dict[str, int] = {}
        self.bodies: dict[str, dict] = {}
        self.requests = 0
        self.duplicates = 0
        self.rejected_signatures = 0
        self.fail_next = 0  # answer this many requests with 503
        self.lock = threading.Lock()
        self.port = port
        self._server = None
        self._thread = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def do_POST(self):  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer.lock:
                    outer.requests += 1
                    if outer.fail_next > 0:
                        outer.fail_next -= 1
                        return self._send(503, {"error": "busy"})
                    try:
                        verify_signature(
                            outer.secret,
                            body,
                            self.headers.get(TIMESTAMP_HEADER),
                            self.headers.get(SIGNATURE_HEADER),
                            tolerance_s=outer.tolerance_s,
                        )
                    except SignatureError as exc:
                        outer.rejected_signatures += 1
                        return self._send(401, {"error": str(exc)})
                    key = self.headers.get("Idempotency-Key")
                    if not key:
                        return self._send(400, {"error": "Idempotency-Key missing"})
                    if key in outer.processed:
                        outer.duplicates += 1
                        return self._send(200, {"status": "duplicate", "reference": f"ERP-{key}"})
                    outer.processed[key] = outer.processed.get(key, 0) + 1
                    outer.bodies[key] = json.loads(body)
                return self._send(200, {"status": "accepted", "reference": f"ERP-{key}"})

            def _send(self, code, obj):
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
