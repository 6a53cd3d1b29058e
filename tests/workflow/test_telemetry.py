"""Telemetry figures against hand computations, and the Prometheus text they export."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.store._db import session_scope
from tests.workflow._helpers import propose
from workflow import lifecycle, telemetry
from workflow.errors import InvalidInput
from workflow.schemas import ApproveIn, OverrideIn, RejectIn
from workflow.telemetry import accuracy_by_group, forecast_value_added, inventory_outcomes


def test_accuracy_by_level_and_model_version():
    rows = accuracy_by_group(
        level=["sku", "sku", "total", "sku"],
        model_version=["v1", "v1", "v1", "v2"],
        y=[10, 30, 40, 5],
        y_hat=[12, 27, 44, 5],
        lo=[8, 20, 30, 6],
        hi=[14, 29, 50, 9],
    )
    by = {(r["level"], r["model_version"]): r for r in rows}
    assert by[("sku", "v1")]["wape"] == pytest.approx((2 + 3) / 40)
    assert by[("sku", "v1")]["bias"] == pytest.approx((2 - 3) / 40)
    assert by[("sku", "v1")]["coverage"] == 0.5
    assert by[("total", "v1")] == {
        "level": "total",
        "model_version": "v1",
        "n": 1,
        "wape": 0.1,
        "bias": 0.1,
        "coverage": 1.0,
    }
    assert by[("sku", "v2")]["wape"] == 0.0 and by[("sku", "v2")]["coverage"] == 0.0
    with pytest.raises(InvalidInput, match="y_hat: expected 2 values"):
        accuracy_by_group(["a", "a"], ["m", "m"], [1, 2], [1])
    with pytest.raises(InvalidInput, match="non-finite value at row 1"):
        accuracy_by_group(["a", "a"], ["m", "m"], [1, float("nan")], [1, 1])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1e4), st.floats(0, 1e4)), min_size=1, max_size=40))
def test_wape_is_scale_free_and_zero_only_when_exact(pairs):
    y, f = np.array(pairs).T
    if y.sum() == 0:
        return
    (r,) = accuracy_by_group(["l"] * len(y), ["m"] * len(y), y, f)
    (r10,) = accuracy_by_group(["l"] * len(y), ["m"] * len(y), 10 * y, 10 * f)
    assert r["wape"] == pytest.approx(r10["wape"], rel=1e-9, abs=1e-12)
    assert (r["wape"] == 0) == bool(np.all(y == f))
    assert abs(r["bias"]) <= r["wape"] + 1e-12


def test_inventory_outcomes():
    out = inventory_outcomes(
        available=[10, 5, 0, 20], demand=[8, 7, 3, 2], max_stock=[5, 5, 5, 5], unit_cost=[1, 1, 1, 2]
    )
    assert out["stockout_rate"] == 0.5 and out["lost_units"] == 2 + 3
    assert out["fill_rate"] == pytest.approx(15 / 20)
    assert out["excess_units"] == 0 + 0 + 0 + 13 and out["excess_value"] == 26


def test_forecast_value_added():
    assert forecast_value_added([10, 10], [20, 0], [12, 8]) == pytest.approx(1 - 2 / 10)
    assert forecast_value_added([10], [12], [15]) == pytest.approx(1 - 5 / 2)  # overrides made it worse
    assert math.isnan(forecast_value_added([10], [10], [11]))


def _samples(text: str) -> dict[str, float]:
    samples = {}
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.match(r"# (HELP|TYPE) replenish_\w+ ", line)
            continue
        m = re.fullmatch(r"(replenish_\w+)(\{[^}]*\})? (\S+)", line)
        assert m, line
        samples[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return samples


def test_override_rate_fva_and_prometheus(engine, tenants):
    planner = tenants[("a", "planner")][0]
    ids = [propose(engine, "a").id for _ in range(4)]
    with session_scope(engine) as s:
        lifecycle.approve(s, planner, ids[0], ApproveIn(version=2))
        lifecycle.override(s, planner, ids[1], OverrideIn(version=2, quantity=60, reason_code="promo"))
        lifecycle.override(s, planner, ids[2], OverrideIn(version=2, quantity=140, reason_code="event"))
        lifecycle.reject(s, planner, ids[3], RejectIn(version=2, reason_code="dup"))
    from workflow.schemas import AutoApprove

    propose(engine, "a", route=None, auto_approve=AutoApprove(rule="small"))  # policy: not a human decision
    with session_scope(engine) as s:
        assert telemetry.override_stats(s, "a") == {
            "human_decisions": 4,
            "overrides": 2,
            "override_rate": 0.5,
        }
        # hindsight: 70 was right for ids[1] (system 100, override 60) and 150 for ids[2] (system 100, o. 140)
        res = telemetry.record_override_outcomes(s, "a", {ids[1]: 70.0, ids[2]: 150.0, ids[0]: 1.0})
        assert res["n"] == 2 and res["fva"] == pytest.approx(1 - 10 / 40)
        telemetry.record_accuracy(s, "a", level=["sku"], model_version=["tft:1"], y=[10], y_hat=[12])
        telemetry.record_inventory(s, "a", available=[1, 9], demand=[2, 1], max_stock=[5, 5], location="DC-1")
    meter = telemetry.RequestMeter()
    meter.observe("a", "/v1/recommendations", 201, 0.01)
    meter.observe("b", "/v1/recommendations", 201, 0.02)
    with session_scope(engine) as s:
        service = _samples(telemetry.prometheus_text(s, meter))
        own = _samples(telemetry.tenant_prometheus_text(s, "a"))
        other = _samples(telemetry.tenant_prometheus_text(s, "b"))
    # the service-wide exposition: no tenant label, business figures absent, requests summed over tenants
    assert not any("tenant=" in k or "wape" in k or "override" in k for k in service)
    assert service['replenish_recommendations{state="overridden"}'] == 2
    assert service['replenish_outbox_items{status="pending"}'] == 4
    assert service['replenish_requests_total{route="/v1/recommendations",status="201"}'] == 2
    # the tenant's own figures, without a tenant label
    assert own["replenish_override_rate"] == 0.5
    assert own["replenish_override_fva"] == pytest.approx(0.75)
    assert own['replenish_forecast_wape{level="sku",model_version="tft:1"}'] == 0.2
    assert own['replenish_inventory_stockout_rate{location="DC-1"}'] == 0.5
    assert own['replenish_inventory_excess_units{location="DC-1"}'] == 3.0
    assert own["replenish_series_truncated"] == 0.0
    assert not any("wape" in k or "inventory" in k for k in other)
    with session_scope(engine) as s:
        assert telemetry.summary(s, "b")["metrics"] == []  # tenant b sees none of a's figures
