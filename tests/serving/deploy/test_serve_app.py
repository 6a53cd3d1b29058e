"""Integration: the Serve application on a real local Ray Serve (loopback), one instance for this module.

Tenants' data enter through the real ingest; their forecasts are stored with ``features.forecasts`` (no model
training). The API replica answers each caller's tenant from its stored forecasts; the optional batched model
deployment (a real torch quantile network logged to a real MLflow registry, SQLite backend in a temp folder,
as config + state_dict) is exercised through its handle: batching and alias hot swap.
"""

from __future__ import annotations

import asyncio
import os
import time

import httpx
import numpy as np
import pytest

from tests.serving._serve_tenants import make_tenants, quantile_matrix, store_forecasts, stored_matrix

pytestmark = pytest.mark.slow

MODEL = "serve-test-mlp"
SPEC = {"n_units": 40, "lookback": 24, "horizon": 6, "hidden": 32, "depth": 2}
CHECK_S = 0.3  # the API replicas' forecast check interval


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    from tests.serving._mlp_predictor import MLPSpec, log_mlp_version

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    spec = MLPSpec(**SPEC)
    v1 = log_mlp_version(
        spec, seed=1, model_name=MODEL, tracking_uri=uri, artifact_root=root / "art", alias="champion"
    )
    v2 = log_mlp_version(spec, seed=2, model_name=MODEL, tracking_uri=uri, artifact_root=root / "art")
    return {"uri": uri, "v1": v1, "v2": v2}


def _app_args(home, registry=None, **api):
    args = {
        "api": {
            "settings": {"home": str(home)},
            "forecast_check_interval_s": CHECK_S,
            "ray_actor_options": {"num_cpus": 0.1},
            **api,
        }
    }
    if registry is not None:
        kw = {"model_name": MODEL, "tracking_uri": registry["uri"]}
        args["model"] = {
            "loader": "tests.serving._mlp_predictor:load_mlflow_mlp",
            "loader_kwargs": kw,
            "resolver": "serving.deploy:mlflow_alias_version",
            "resolver_kwargs": {**kw, "alias": "champion"},
            "watch_interval_s": 0.5,
            "max_batch_size": 32,
            "batch_wait_timeout_s": 0.01,
            "torch_threads": 1,
            "ray_actor_options": {"num_cpus": 0.1},
        }
    return args


@pytest.fixture(scope="module")
def served(registry, tmp_path_factory):
    from features.store._db import session_scope
    from serving.deploy import build_app
    from serving.deploy._local import free_port, run_app, shutdown, start_serve
    from workflow import access

    os.environ["RAY_AUTH_MODE"] = "disabled"
    home = tmp_path_factory.mktemp("home")
    # a and b: champion forecasts with different numbers; s: goes stale; n: nothing stored; z: baselines only.
    w = make_tenants(home, {"a": 1, "b": 2, "s": 3, "n": 4, "z": 5})
    fd = w.settings.facts_dir
    stored = {
        "a": store_forecasts("a", w.data["a"], scale=1.0, run_id="a-1", facts_dir=fd),
        "b": store_forecasts("b", w.data["b"], scale=3.0, run_id="b-1", facts_dir=fd),
        "s": store_forecasts("s", w.data["s"], scale=2.0, run_id="s-1", facts_dir=fd),
    }
    store_forecasts("z", w.data["z"], scale=1.0, run_id="z-1", model_version=None, facts_dir=fd)
    from tests.workflow._helpers import seed_catalogue

    with session_scope(w.engine) as s:
        for tenant, role in (("a", "planner"), ("a", "service"), ("b", "planner"), ("a", "metrics")):
            w.keys[f"{tenant}-{role}"] = access.create_key(s, tenant, [role], actor="test")[1]
        seed_catalogue(s, "a", skus=("SKU-9",), cost=3.0)  # the server values proposals from it
    port = free_port()
    start_serve("127.0.0.1", port, num_cpus=4, object_store_memory=100 * 1024**2)
    try:
        main = _app_args(home, registry)
        # the jobs deployment: expiry every 2 s (a dispatcher would touch the outbox tests' items)
        main["jobs"] = {
            "settings": {"home": str(home)},
            "intervals_s": {"dispatch": 0, "expire": 2, "monitoring": 0, "escalate": 0},
            "lease_s": 5,
            "tick_s": 0.5,
            "ray_actor_options": {"num_cpus": 0.1},
        }
        run_app(build_app(main), name="main", route_prefix="/")
        # A second app with tiny queues, to provoke back-pressure without disturbing the main one.
        tight = _app_args(home, max_ongoing_requests=1, max_queued_requests=1, retry_after_s=3)
        run_app(build_app(tight), name="tight", route_prefix="/tight")
        yield {"url": f"http://127.0.0.1:{port}", "w": w, "stored": stored, **registry}
    finally:
        shutdown()
        w.engine.dispose()


def _h(served, key: str) -> dict[str, str]:
    return {"X-API-Key": served["w"].keys[key]}


def _post(served, key: str, units, path: str = "/v1/forecasts") -> httpx.Response:
    return httpx.post(f"{served['url']}{path}", json={"units": units}, headers=_h(served, key), timeout=30)


def test_forecasts_over_http_are_each_tenants_stored_forecasts(served):
    w = served["w"]
    got = {}
    for tenant in ("a", "b"):
        units = w.units[tenant][:4]
        r = _post(served, f"{tenant}-viewer", units)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["tenant"] == tenant and body["run_id"] == f"{tenant}-1" and body["stage"] == "base"
        assert body["model_version"] == "7" and body["data_watermark"]
        assert [f["unit"] for f in body["forecasts"]] == units
        got[tenant] = quantile_matrix(body)
        np.testing.assert_allclose(got[tenant], stored_matrix(served["stored"][tenant], units), rtol=1e-6)
        assert np.all(np.diff(got[tenant], axis=1) >= 0), "quantiles cross"
    # Both tenants' synthetic ids overlap (SKU_001|STORE_001|...): the same id gets each tenant's numbers.
    shared = sorted(set(w.units["a"]) & set(w.units["b"]))
    assert shared, "the synthetic tenants share unit ids, so isolation is tested on the same ids"
    ra = _post(served, "a-viewer", shared[:2]).json()
    rb = _post(served, "b-viewer", shared[:2]).json()
    assert not np.allclose(quantile_matrix(ra), quantile_matrix(rb))
    one = httpx.get(f"{served['url']}/v1/forecasts/{shared[0]}", headers=_h(served, "b-viewer"), timeout=30)
    assert one.status_code == 200 and one.json()["tenant"] == "b"
    np.testing.assert_allclose(quantile_matrix(one.json())[0], quantile_matrix(rb)[0], rtol=1e-6)
    run = httpx.get(f"{served['url']}/v1/forecasts/run", headers=_h(served, "a-viewer"), timeout=30).json()
    assert run["run_id"] == "a-1" and run["model_version"] == "7" and run["levels"][2] == 0.5


def test_a_key_of_one_tenant_never_reads_another_tenants_forecasts(served):
    w = served["w"]
    only_b = sorted(set(w.units["b"]) - set(w.units["a"]))
    if only_b:  # a unit only b has is unknown to a: 404, no numbers
        r = _post(served, "a-viewer", only_b[:1])
        assert r.status_code == 404 and "forecasts" not in r.json(), r.text
    # n has no forecasts: its key gets 409, never another tenant's rows for the same ids.
    r = _post(served, "n-viewer", w.units["a"][:1])
    assert r.status_code == 409 and "forecasts" not in r.json()
    for key in ("a-viewer", "a-planner", "b-viewer"):
        tenant = key.split("-")[0]
        assert _post(served, key, w.units[tenant][:1]).json()["tenant"] == tenant


def test_no_forecasts_or_no_champion_is_409_naming_the_command(served):
    r = _post(served, "n-viewer", ["SKU_001|STORE_001|store"])
    assert r.status_code == 409, r.text
    assert r.json()["detail"]["command"] == "replenish cycle --tenant n --train"
    assert "replenish cycle --tenant n --train" in r.json()["detail"]["msg"]
    r = _post(served, "z-viewer", served["w"].units["z"][:1])
    assert r.status_code == 409 and r.json()["detail"]["command"] == "replenish cycle --tenant z --train"
    assert "champion" in r.json()["detail"]["msg"]
    r = httpx.get(f"{served['url']}/v1/forecasts/run", headers=_h(served, "n-viewer"), timeout=30)
    assert r.status_code == 409


def test_newer_sales_make_the_forecast_stale_409_never_the_old_numbers(served, tmp_path):
    import polars as pl

    from features.ingest import ingest

    w = served["w"]
    units = w.units["s"][:2]
    assert _post(served, "s-viewer", units).status_code == 200
    sales = w.data["s"].sales
    last = sales.filter(pl.col("date") == pl.col("date").max())
    later = last.with_columns(pl.col("date") + pl.duration(days=7))
    later.write_csv(tmp_path / "sales-next-week.csv")
    result = ingest(
        "sales", tmp_path / "sales-next-week.csv", tenant="s", engine=w.engine, settings=w.settings
    )
    assert result.exit_code == 0, result.summary()
    time.sleep(CHECK_S + 0.2)  # one check interval: every answer from here on knows about the new sales
    for _ in range(3):
        r = _post(served, "s-viewer", units)
        assert r.status_code == 409, r.text
        detail = r.json()["detail"]
        assert detail["command"] == "replenish cycle --tenant s" and detail["run_id"] == "s-1"
        assert detail["data_watermark"] != detail["sales_watermark"]
    # A new run made from the new sales is served again (the cache reloads on the next check).
    new = store_forecasts("s", w.data["s"], scale=5.0, run_id="s-2", facts_dir=w.settings.facts_dir)
    time.sleep(CHECK_S + 0.2)
    r = _post(served, "s-viewer", units)
    assert r.status_code == 200 and r.json()["run_id"] == "s-2", r.text
    np.testing.assert_allclose(quantile_matrix(r.json()), stored_matrix(new, units), rtol=1e-6)


def test_bad_input_gets_field_errors_and_unknown_units_404(served):
    units = served["w"].units["a"]
    r = _post(served, "a-viewer", [])
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "units"]
    r = _post(served, "a-viewer", [units[0], "bad unit!"])
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][:2] == ["body", "units"]
    r = _post(served, "a-viewer", [units[0], "zz-missing"])
    assert r.status_code == 404 and r.json()["detail"]["units"] == ["zz-missing"]
    assert "zz-missing" in r.json()["detail"]["msg"]
    assert (
        httpx.post(f"{served['url']}/v1/forecasts", json={"units": units[:1]}, timeout=30).status_code == 401
    )


def test_approval_through_http_reaches_the_outbox_and_stays_in_its_tenant(served):
    url = served["url"]
    rec = {
        "kind": "purchase_order",
        "sku_id": "SKU-9",
        "location_id": "DC-1",
        "supplier_id": "SUP-1",
        "quantity": 120.0,
        "need_by": "2027-01-15",
        "promised_lead_time_days": 14,
        "route": {"queue": "buyers", "role": "planner", "rule": "value>100", "reason": "test"},
        "evidence": {"model_version": "7", "quantiles": {"p50": 100.0}},
    }
    with httpx.Client(base_url=url, timeout=30) as c:
        r = c.post("/v1/recommendations", json=rec, headers=_h(served, "a-service"))
        assert r.status_code == 201, r.text
        rid, version = r.json()["id"], r.json()["version"]
        # Another tenant can neither see nor decide it (404, so existence does not leak).
        assert c.get(f"/v1/recommendations/{rid}", headers=_h(served, "b-planner")).status_code == 404
        r = c.post(
            f"/v1/recommendations/{rid}/approve", json={"version": version}, headers=_h(served, "b-planner")
        )
        assert r.status_code == 404
        # A viewer may read but not decide.
        r = c.post(
            f"/v1/recommendations/{rid}/approve", json={"version": version}, headers=_h(served, "a-viewer")
        )
        assert r.status_code == 403
        r = c.post(
            f"/v1/recommendations/{rid}/approve",
            json={"version": version, "comment": "ok"},
            headers=_h(served, "a-planner"),
        )
        assert r.status_code == 200 and r.json()["state"] == "approved", r.text
        items = c.get("/v1/outbox", headers=_h(served, "a-viewer")).json()
        assert [i["recommendation_id"] for i in items].count(rid) == 1, items
        assert c.get("/v1/outbox", headers=_h(served, "b-planner")).json() == []


def test_health_ready_metrics_and_openapi(served):
    assert httpx.get(f"{served['url']}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{served['url']}/readyz", timeout=30)
    assert ready.status_code == 200 and ready.json()["checks"]["database"] == "ok"
    assert httpx.get(f"{served['url']}/metrics").status_code == 401  # a metrics key is needed
    text = httpx.get(f"{served['url']}/metrics", headers=_h(served, "a-metrics")).text
    assert 'replenish_http_requests_total{method="GET",route="/readyz",status="200"}' in text
    paths = httpx.get(f"{served['url']}/openapi.json").json()["paths"]
    assert "/v1/forecasts" in paths and "/v1/forecasts/run" in paths and "/v1/plans/what-if" in paths


def test_the_jobs_deployment_runs_the_scheduled_jobs_leader_elected(served):
    """The application's Jobs replica leads and runs expiry once per 2-s window, each run recorded."""
    from workflow.jobs import list_runs

    engine = served["w"].engine
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list_runs(engine, job="expire")) < 3:
        time.sleep(0.5)
    runs = list_runs(engine, job="expire")
    assert len(runs) >= 3, runs
    assert {r["status"] for r in runs if r["status"] != "running"} == {"succeeded"}
    assert len({r["window_start"] for r in runs}) == len(runs)
    assert all(r["owner"] != "" and r["fence"] >= 1 for r in runs)
    assert {r["job"] for r in list_runs(engine)} == {"expire"}  # the jobs set to 0 never ran


def test_overload_answers_503_with_retry_after_never_hangs(served):
    units = served["w"].units["a"][:1]

    async def burst():
        async with httpx.AsyncClient(timeout=60) as c:
            return await asyncio.gather(
                *[
                    c.post(
                        f"{served['url']}/tight/v1/forecasts",
                        json={"units": units},
                        headers=_h(served, "a-viewer"),
                    )
                    for _ in range(60)
                ]
            )

    t0 = time.perf_counter()
    rs = asyncio.run(burst())
    codes = [r.status_code for r in rs]
    assert set(codes) <= {200, 503}, codes
    assert codes.count(503) > 0 and codes.count(200) > 0, codes
    assert all(r.headers.get("retry-after") for r in rs if r.status_code == 503)
    assert time.perf_counter() - t0 < 30


# -- the optional batched model deployment (through its handle) ----------------------------------------------


def _local(registry, version):
    from tests.serving._mlp_predictor import load_mlflow_mlp

    return load_mlflow_mlp(version, model_name=MODEL, tracking_uri=registry["uri"])


def test_concurrent_model_calls_are_batched_and_each_gets_its_own_rows(served):
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


def test_model_hot_swap_under_load_drops_nothing(served):
    from mlflow import MlflowClient
    from ray import serve

    handle = serve.get_deployment_handle("ForecastModel", app_name="main")
    units = ["u00005", "u00006"]
    seen: list[tuple[float, float, str]] = []  # (sent, answered, version)
    swapped_at: list[float] = []

    async def client(stop):
        while not stop.is_set():
            t0 = time.perf_counter()
            out = await handle.forecast.remote(units)
            seen.append((t0, time.perf_counter(), out["version"]))

    async def run():
        stop = asyncio.Event()
        tasks = [asyncio.create_task(client(stop)) for _ in range(8)]
        await asyncio.sleep(1.5)
        MlflowClient(tracking_uri=served["uri"], registry_uri=served["uri"]).set_registered_model_alias(
            MODEL, "champion", served["v2"]
        )
        swapped_at.append(time.perf_counter())
        deadline = time.perf_counter() + 30
        while time.perf_counter() < deadline:
            await asyncio.sleep(0.25)
            recent = [v for *_, v in seen[-8:]]
            if recent and all(v == served["v2"] for v in recent):
                break
        await asyncio.sleep(1.0)
        stop.set()
        await asyncio.gather(*tasks)

    asyncio.run(run())
    versions = [v for *_, v in seen]
    assert served["v1"] in versions and served["v2"] in versions, set(versions)
    first_v2_at = min(t1 for _, t1, v in seen if v == served["v2"])
    late_old = [(t0 - first_v2_at) for t0, _, v in seen if v == served["v1"] and t0 > first_v2_at]
    assert not late_old, f"{len(late_old)} calls sent after the first v2 answer got v1: {late_old[:5]}"
    out = handle.forecast.remote(units).result()
    np.testing.assert_allclose(
        out["values"], _local(served, served["v2"]).predict(units), rtol=1e-5, atol=1e-4
    )
    print(
        f"hot swap: {len(seen)} calls, 0 failed, v2 first answered {first_v2_at - swapped_at[0]:.2f} s "
        "after the alias moved"
    )
