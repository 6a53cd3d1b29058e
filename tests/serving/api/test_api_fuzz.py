"""Property-based run over the whole OpenAPI schema of the decision app (schemathesis, in-process ASGI).

Every operation gets positive (schema-valid) and negative (schema-violating) examples from a fixed seed, each
sent with a valid key of one role in turn (viewer, planner, approver, admin, service, metrics), on a real
SQLite file and on PostgreSQL. Two properties must hold for every answer: no 5xx, and the body conforms to
the documented response schema. The operations and examples covered are printed (``-s`` shows them).
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, seed, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402

from features.settings import load_settings  # noqa: E402
from features.store._db import session_scope  # noqa: E402
from tests.workflow._helpers import seed_catalogue  # noqa: E402
from workflow import access  # noqa: E402

ROLES = ("viewer", "planner", "approver", "admin", "service", "metrics")
EXAMPLES = 12  # per operation and mode: ~40 operations x 2 modes x 12 = ~1,000 requests per store


def _world(engine, db_url, tmp_path):
    """Tenant ``a`` ingested through the real path, with a stored forecast run and a routed proposal."""
    from features import synth
    from serving.api.main import build_decision_app
    from tests.serving._serve_tenants import ingest_tenant, store_forecasts
    from workflow.lifecycle import propose
    from workflow.schemas import RecommendationIn

    st = load_settings(
        database_url=db_url, home=tmp_path / "home", rate_limit_per_key=1e6, rate_limit_per_tenant=1e6
    )
    st.ensure_home()
    data = synth.generate(n_series=6, n_periods=40, freq="W", seed=5, start="2024-01-01")
    ingest_tenant(st, engine, "a", data, tmp_path / "files")
    store_forecasts("a", data, scale=1.0, run_id="a-1", facts_dir=st.facts_dir)
    keys = {}
    with session_scope(engine) as s:
        access.ensure_tenant(s, "a")
        seed_catalogue(s, "a", skus=("SKU-1",))
        for role in ROLES:
            keys[role] = access.create_key(s, "a", [role], name=f"fuzz-{role}")[1]
        propose(  # something for the id routes to find
            s,
            "a",
            RecommendationIn(
                kind="purchase_order", sku_id="SKU-1", location_id="DC-1", supplier_id="SUP-1", quantity=5,
                route={"queue": "q", "role": "planner", "rule": "r", "reason": "fuzz"},
            ),
            actor="planning:fuzz",
        )
    return build_decision_app(st, forecast_check_interval_s=0.0), keys


def _runner(op, mode, strategy, keys, role_cycle, covered, statuses, failures):
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import response_schema_conformance

    @seed(13)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case):
        role = next(role_cycle)
        headers = {"X-API-Key": keys[role]}
        if "metrics" in case.path:
            headers["Authorization"] = f"Bearer {keys[role]}"
        response = case.call(headers=headers)
        covered[(op.label, mode.value)] += 1
        statuses[response.status_code] += 1
        try:
            case.validate_response(
                response, checks=[not_a_server_error, response_schema_conformance], headers=headers
            )
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collect every failure, report together
            failures.append(f"{op.label} [{mode.value}, {role}] -> {response.status_code}: {exc}"[:600])

    return run


def test_whole_schema_no_5xx_and_responses_conform(engine, db_url, tmp_path, capsys):
    from schemathesis import GenerationMode

    app, keys = _world(engine, db_url, tmp_path)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) >= 30
    role_cycle = itertools.cycle(ROLES)
    covered: Counter = Counter()
    statuses: Counter = Counter()
    failures: list[str] = []
    unsatisfiable: list[str] = []

    for op in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                strategy = op.as_strategy(generation_mode=mode)
            except Exception as exc:  # noqa: BLE001 - an operation without anything to negate
                covered[(op.label, mode.value, "unsupported: " + type(exc).__name__)] += 0
                continue

            try:
                _runner(op, mode, strategy, keys, role_cycle, covered, statuses, failures)()
            except Unsatisfiable:  # e.g. nothing in the operation can be made invalid
                unsatisfiable.append(f"{op.label} [{mode.value}]")
    # POST /v1/cycles examples start real cycles on background threads; let them end before the stores go.
    for t in threading.enumerate():
        if t.name.startswith("cycle-"):
            t.join(timeout=600)
    with capsys.disabled():
        ops = sorted({k[0] for k in covered})
        n = sum(covered.values())
        print(f"\nschemathesis: {len(ops)} operations, {n} examples, statuses {dict(statuses)}")
        print(f"  no examples could be generated for: {unsatisfiable}")
        for label in ops:
            pos, neg = covered[(label, "positive")], covered[(label, "negative")]
            print(f"  {label}: positive {pos}, negative {neg}")
    assert not failures, "\n".join(failures[:20])
    assert all(covered[(op.label, "positive")] > 0 for op in operations)
    assert not any(code >= 500 for code in statuses)
