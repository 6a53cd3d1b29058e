"""Integration: the Serve application on a real local Ray Serve (loopback), one instance for this module.

The model is a real torch quantile network logged to a real MLflow registry (SQLite backend in a temp folder)
as
config + state_dict; the model deployment resolves the ``champion`` alias, batches, and swaps when it moves.
"""

from __future__ import annotations

import asyncio
import os
import time

import numpy as np
import pytest

pytestmark = pytest.mark.slow

MODEL = "serve-test-mlp"
SPEC = {"n_units": 40, "lookback": 24, "horizon": 6, "hidden": 32, "depth": 2}


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    from serving.deploy import MLPSpec, log_mlp_version

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    spec = MLPSpec(**SPEC)
    v1 = log_mlp_version(
        spec, seed=1, model_name=MODEL, tracking_uri=uri, artifact_root=root / "art", alias="champion"
    )
    v2 = log_mlp_version(spec, seed=2, model_name=MODEL, tracking_uri=uri, artifact_root=root / "art")
    return {"uri": uri, "v1": v1, "v2": v2}


def _app_args(registry, home, **model):
    kw = {"model_name": MODEL, "tracking_uri": registry["uri"]}
    return {
        "model": {
            "loader": "serving.deploy:load_mlflow_mlp",
            "loader_kwargs": kw,
            "resolver": "serving.deploy:mlflow_alias_version",
            "resolver_kwargs": {**kw, "alias": "champion"},
            "watch_interval_s": 0.5,
            "max_batch_size": 32,
            "batch_wait_timeout_s": 0.01,
            "torch_threads": 1,
            "ray_actor_options": {"num_cpus": 0.1},
            **model,
        },
        "api": {"settings": {"home": str(home)}, "ray_actor_options": {"num_cpus": 0.1}},
    }


def _keys(home) -> dict[str, str]:
    """Tenants a and b in the app's state store, with one key per role needed here."""
    from features.store._db import make_engine, session_scope
    from features.store._migrate import migrate
    from tests.workflow._helpers import seed_catalogue
    from workflow import access

    engine = make_engine(f"sqlite:///{home / 'state.db'}")
    migrate(engine)
    keys = {}
    with session_scope(engine) as s:
        for tenant, role in (
            ("a", "viewer"),
            ("a", "planner"),
            ("a", "service"),
            ("b", "planner"),
            ("a", "metrics"),
        ):
            access.ensure_tenant(s, tenant)
            seed_catalogue(s, tenant, skus=("SKU-9",), cost=3.0)  # the server values proposals from it
            keys[f"{tenant}-{role}"] = access.create_key(s, tenant, [role], actor="test")[1]
    engine.dispose()
    return keys


@pytest.fixture(scope="module")
def served(registry, tmp_path_factory):
    from serving.deploy import build_app
    from serving.deploy._local import free_port, run_app, shutdown, start_serve

    os.environ["RAY_AUTH_MODE"] = "disabled"
    home = tmp_path_factory.mktemp("home")
    keys = _keys(home)
    port = free_port()
    start_serve("127.0.0.1", port, num_cpus=4, object_store_memory=100 * 1024**2)
    try:
        run_app(build_app(_app_args(registry, home)), name="main", route_prefix="/")
        # A second app with tiny queues, to provoke back-pressure without disturbing the main one.
        tight = _app_args(
            registry,
            home,
            max_ongoing_requests=1,
            max_queued_requests=1,
            batch_wait_timeout_s=0.2,
            max_batch_size=1,
            watch_interval_s=0,
        )
        tight["api"].update(max_ongoing_requests=2, max_queued_requests=2, retry_after_s=3)
        run_app(build_app(tight), name="tight", route_prefix="/tight")
        yield {
            "url": f"http://127.0.0.1:{port}",
            "home": home,
            "keys": keys,
            "h": {"X-API-Key": keys["a-viewer"]},
            **registry,
        }
    finally:
        shutdown()


def _local(registry, version):
    from serving.deploy import load_mlflow_mlp

    return load_mlflow_mlp(version, model_name=MODEL, tracking_uri=registry["uri"])


def test_forecast_over_http_matches_the_registered_model(served):
    import httpx

    units = ["u00003", "u00000", "u00017"]
    r = httpx.post(f"{served['url']}/v1/forecasts", json={"units": units}, headers=served["h"], timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_version"] == served["v1"]
    assert [f["unit"] for f in body["forecasts"]] == units
    got = np.array(
        [[f["quantiles"][k] for k in ("p10", "p50", "p90")] for f in body["forecasts"]]
    )  # (n, Q, H)
    want = _local(served, served["v1"]).predict(units).transpose(0, 2, 1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    assert np.all(np.diff(got, axis=1) >= 0), "quantiles cross"

    one = httpx.get(f"{served['url']}/v1/forecasts/u00017", headers=served["h"], timeout=30).json()
    np.testing.assert_allclose(one["forecasts"][0]["quantiles"]["p50"], want[2, 1], rtol=1e-5, atol=1e-4)


def test_forecasts_need_a_valid_key(served):
    import httpx

    r = httpx.post(f"{served['url']}/v1/forecasts", json={"units": ["u00001"]}, timeout=30)
    assert r.status_code == 401
    r = httpx.post(
        f"{served['url']}/v1/forecasts",
        json={"units": ["u00001"]},
        timeout=30,
        headers={"X-API-Key": served["keys"]["a-viewer"][:-3] + "xyz"},
    )
    assert r.status_code == 401


def test_approval_through_http_reaches_the_outbox_and_stays_in_its_tenant(served):
    import httpx

    url, keys = served["url"], served["keys"]
    rec = {
        "kind": "purchase_order",
        "sku_id": "SKU-9",
        "location_id": "DC-1",
        "supplier_id": "SUP-1",
        "quantity": 120.0,
        "need_by": "2027-01-15",
        "promised_lead_time_days": 14,
        "route": {"queue": "buyers", "role": "planner", "rule": "value>100", "reason": "test"},
        "evidence": {"model_version": served["v1"], "quantiles": {"p50": 100.0}},
    }
    with httpx.Client(base_url=url, timeout=30) as c:
        r = c.post("/v1/recommendations", json=rec, headers={"X-API-Key": keys["a-service"]})
        assert r.status_code == 201, r.text
        rid, version = r.json()["id"], r.json()["version"]
        # Another tenant can neither see nor decide it (404, so existence does not leak).
        assert (
            c.get(f"/v1/recommendations/{rid}", headers={"X-API-Key": keys["b-planner"]}).status_code == 404
        )
        r = c.post(
            f"/v1/recommendations/{rid}/approve",
            json={"version": version},
            headers={"X-API-Key": keys["b-planner"]},
        )
        assert r.status_code == 404
        # A viewer may read but not decide.
        r = c.post(
            f"/v1/recommendations/{rid}/approve",
            json={"version": version},
            headers={"X-API-Key": keys["a-viewer"]},
        )
        assert r.status_code == 403
        r = c.post(
            f"/v1/recommendations/{rid}/approve",
            json={"version": version, "comment": "ok"},
            headers={"X-API-Key": keys["a-planner"]},
        )
        assert r.status_code == 200 and r.json()["state"] == "approved", r.text
        items = c.get("/v1/outbox", headers={"X-API-Key": keys["a-viewer"]}).json()
        assert [i["recommendation_id"] for i in items].count(rid) == 1, items
        assert c.get("/v1/outbox", headers={"X-API-Key": keys["b-planner"]}).json() == []


def test_what_if_plan_through_http(served):
    import httpx

    units = ["Agency_01|SKU_01", "Agency_02|SKU_01", "Agency_03|SKU_02"]
    with httpx.Client(base_url=served["url"], timeout=120) as c:
        r = c.post("/v1/plans/what-if", json={"units": units, "fill_target": 0.99}, headers=served["h"])
        assert r.status_code == 200, r.text
        body = r.json()
        # The served test model does not know Stallion units: the plan says it used planning's baseline.
        assert "baseline" in body["forecast_source"]
        for b, s in zip(body["base"], body["scenario"], strict=True):
            assert s["fill_rate"] >= b["fill_rate"] - 1e-3 and s["order_up_to"] >= b["order_up_to"] - 1e-6
        r = c.post("/v1/plans/what-if", json={"units": units, "fill_target": 2}, headers=served["h"])
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "fill_target"]
        assert c.get("/v1/plans/latest", headers=served["h"]).status_code == 404  # nothing was saved


def test_bad_input_gets_field_errors_and_unknown_units_404(served):
    import httpx

    r = httpx.post(f"{served['url']}/v1/forecasts", json={"units": []}, headers=served["h"], timeout=30)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "units"]
    r = httpx.post(
        f"{served['url']}/v1/forecasts",
        json={"units": ["u00001", "bad unit!"]},
        headers=served["h"],
        timeout=30,
    )
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][:2] == ["body", "units"]
    r = httpx.post(
        f"{served['url']}/v1/forecasts",
        json={"units": ["u00001", "zz-missing"]},
        headers=served["h"],
        timeout=30,
    )
    assert r.status_code == 404 and r.json()["detail"]["units"] == ["zz-missing"]


def test_health_ready_metrics_and_openapi(served):
    import httpx

    assert httpx.get(f"{served['url']}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{served['url']}/readyz", timeout=30)
    assert ready.status_code == 200 and ready.json()["checks"]["database"] == "ok"
    assert httpx.get(f"{served['url']}/metrics").status_code == 401  # a metrics key is needed
    text = httpx.get(f"{served['url']}/metrics", headers={"X-API-Key": served["keys"]["a-metrics"]}).text
    assert 'replenish_http_requests_total{method="GET",route="/readyz",status="200"}' in text
    paths = httpx.get(f"{served['url']}/openapi.json").json()["paths"]
    assert "/v1/forecasts" in paths and "/v1/forecasts/{unit_id}" in paths


def test_concurrent_calls_are_batched_and_each_gets_its_own_rows(served):
    from ray import serve

    handle = serve.get_deployment_handle("ForecastModel", app_name="main")
    before = handle.info.remote().result()
    units = [f"u{i:05d}" for i in range(40)]

    async def fire():
        return await asyncio.gather(*[handle.forecast.remote([u]) for u in units])

    out = asyncio.run(fire())
    after = handle.info.remote().result()
    n_batches = after["batches"] - before["batches"]
    assert after["batched_requests"] - before["batched_requests"] == len(units)
    assert n_batches < len(units) / 2, f"{len(units)} concurrent calls ran in {n_batches} batches"
    want = _local(served, out[0]["version"]).predict(units)
    got = np.concatenate([o["values"] for o in out])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_overload_answers_503_with_retry_after_never_hangs(served):
    import httpx

    async def burst():
        async with httpx.AsyncClient(timeout=60) as c:
            return await asyncio.gather(
                *[
                    c.post(
                        f"{served['url']}/tight/v1/forecasts", json={"units": ["u00001"]}, headers=served["h"]
                    )
                    for _ in range(40)
                ]
            )

    t0 = time.perf_counter()
    rs = asyncio.run(burst())
    codes = [r.status_code for r in rs]
    assert set(codes) <= {200, 503}, codes
    assert codes.count(503) > 0 and codes.count(200) > 0, codes
    assert all(r.headers.get("retry-after") for r in rs if r.status_code == 503)
    assert time.perf_counter() - t0 < 30


def test_hot_swap_under_load_drops_nothing(served):
    import httpx
    from mlflow import MlflowClient

    url = f"{served['url']}/v1/forecasts"
    units = ["u00005", "u00006"]
    seen: list[tuple[float, float, int, str | None]] = []  # (sent, answered, status, version or error)
    swapped_at: list[float] = []

    async def client(c, stop):
        while not stop.is_set():
            t0 = time.perf_counter()
            r = await c.post(url, json={"units": units}, headers=served["h"])
            seen.append(
                (
                    t0,
                    time.perf_counter(),
                    r.status_code,
                    r.json()["model_version"] if r.status_code == 200 else r.text,
                )
            )

    async def run():
        stop = asyncio.Event()
        async with httpx.AsyncClient(timeout=60) as c:
            tasks = [asyncio.create_task(client(c, stop)) for _ in range(8)]
            await asyncio.sleep(1.5)
            MlflowClient(tracking_uri=served["uri"], registry_uri=served["uri"]).set_registered_model_alias(
                MODEL, "champion", served["v2"]
            )
            swapped_at.append(time.perf_counter())
            deadline = time.perf_counter() + 30
            while time.perf_counter() < deadline:
                await asyncio.sleep(0.25)
                recent = [v for _, _, s, v in seen[-8:] if s == 200]
                if recent and all(v == served["v2"] for v in recent):
                    break
            await asyncio.sleep(1.0)
            stop.set()
            await asyncio.gather(*tasks)

    asyncio.run(run())
    failures = [(s, v) for _, _, s, v in seen if s != 200]
    assert not failures, failures[:5]
    versions = [v for *_, v in seen]
    assert served["v1"] in versions and served["v2"] in versions, set(versions)
    first_v2_at = min(t1 for _, t1, _, v in seen if v == served["v2"])
    late_old = [(t0 - first_v2_at) for t0, _, _, v in seen if v == served["v1"] and t0 > first_v2_at]
    assert not late_old, f"{len(late_old)} requests sent after the first v2 answer got v1: {late_old[:5]}"
    # After the swap the answers are the new model's numbers, not just its label.
    body = httpx.post(url, json={"units": units}, headers=served["h"], timeout=30).json()
    got = np.array([[f["quantiles"]["p50"]] for f in body["forecasts"]])[:, 0]
    np.testing.assert_allclose(got, _local(served, served["v2"]).predict(units)[..., 1], rtol=1e-5, atol=1e-4)
    print(
        f"hot swap: {len(seen)} requests, 0 failed, v2 first answered {first_v2_at - swapped_at[0]:.2f} s "
        "after the alias moved"
    )
